//! mTLS and the direction-restricted ACL against a real mosquitto.
// An integration test crate is test code throughout (clippy.toml allows
// unwrap/expect only inside #[test] functions and #[cfg(test)] modules).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::tests_outside_test_module)]

mod common;

use common::{tls, Broker, TestClient, CONTROLLER};
use test_support::pki::Pki;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_works_and_clients_without_a_valid_certificate_are_refused() {
    let broker = Broker::mtls(false);
    let ok = TestClient::connect(&broker, CONTROLLER, Some(tls(&broker, CONTROLLER))).await;
    assert!(ok.is_ok(), "controller with its certificate: {:?}", ok.err());

    let plain = TestClient::connect(&broker, "enc-plain", None).await;
    assert!(plain.is_err(), "plain TCP to the TLS listener must fail");

    // A certificate from another CA: the handshake fails.
    let other = tempfile::tempdir().unwrap();
    let rogue = Pki::new(other.path()).client("enc-rogue");
    let mut tls = tls(&broker, "enc-rogue");
    tls.cert = rogue.cert;
    tls.key = rogue.key;
    let r = TestClient::connect(&broker, "enc-rogue", Some(tls)).await;
    assert!(r.is_err(), "a certificate from a foreign CA must be refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_read_or_write_another_devices_topics() {
    let broker = Broker::mtls(false);
    let mut ctl = TestClient::connect(&broker, CONTROLLER, Some(tls(&broker, CONTROLLER))).await.unwrap();
    ctl.subscribe("fleet/#").await;
    let mut a = TestClient::connect(&broker, "enc-a", Some(tls(&broker, "enc-a"))).await.unwrap();
    a.subscribe("fleet/v1/enc-b/cmd/req").await;
    a.subscribe("fleet/v1/+/cmd/req").await;
    a.subscribe("fleet/v1/enc-b/#").await;

    // The controller commands B: A must not see it, even through `+` or `#`.
    ctl.publish("fleet/v1/enc-b/cmd/req", r#"{"id":"x","name":"reboot"}"#, false).await;
    // A tries to forge B's status, its own desired config and its own commands.
    a.publish("fleet/v1/enc-b/status", r#"{"forged":true}"#, true).await;
    a.publish("fleet/v1/enc-a/config/desired", r#"{"forged":true}"#, true).await;
    a.publish("fleet/v1/enc-a/cmd/req", r#"{"forged":true}"#, false).await;
    // Positive controls: A may publish its own status and read its own commands.
    a.publish("fleet/v1/enc-a/status", r#"{"mine":true}"#, false).await;
    ctl.publish("fleet/v1/enc-a/cmd/req", r#"{"id":"y","name":"identify"}"#, false).await;

    let seen_by_a = a.drain(1.5).await;
    let topics: Vec<&str> = seen_by_a.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, vec!["fleet/v1/enc-a/cmd/req"], "A sees only its own command");

    let seen_by_ctl = ctl.drain(0.5).await;
    assert!(seen_by_ctl.iter().all(|m| !String::from_utf8_lossy(&m.payload).contains("forged")), "{seen_by_ctl:?}");
    assert!(seen_by_ctl.iter().any(|m| m.topic == "fleet/v1/enc-a/status"), "own status goes through");
}

/// The ACL operators read in fleet/README.md is the one the brokers of
/// these tests enforce (fleet/acl/mosquitto.acl, embedded by test-support):
/// the README shows the file in a fenced block after a marker comment.
#[test]
fn the_readme_shows_the_acl_file_verbatim() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let marker = "<!-- acl/mosquitto.acl, checked by tests/mtls_acl.rs -->";
    let after = &readme[readme.find(marker).expect("the ACL marker in README.md") + marker.len()..];
    let body = after.trim_start().strip_prefix("```text\n").expect("a ```text block right after the marker");
    let block = &body[..body.find("```\n").expect("the end of the ACL block")];
    assert_eq!(block, test_support::acl::FLEET_ACL, "fleet/README.md's ACL block differs from fleet/acl/mosquitto.acl");
}
