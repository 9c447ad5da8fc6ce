//! The claim identity of first-boot enrolment (docs/identity.md) against a
//! real mosquitto with the fleet ACL: it hands in CSRs and reads issued
//! certificates, and can do nothing else.
// An integration test crate is test code throughout (clippy.toml allows
// unwrap/expect only inside #[test] functions and #[cfg(test)] modules).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::tests_outside_test_module)]

mod common;

use common::{tls, Broker, TestClient, CONTROLLER};

/// The claim certificate's CN, as fleet/acl/mosquitto.acl names it.
const CLAIM: &str = "enroll#claim";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_identity_can_only_hand_in_requests_and_read_certificates() {
    let broker = Broker::mtls(false);
    let mut ctl = TestClient::connect(&broker, CONTROLLER, Some(tls(&broker, CONTROLLER))).await.unwrap();
    ctl.subscribe("fleet/#").await;
    // What the claim identity must not read: a box's commands and desired
    // config, other boxes' telemetry (retained ones are delivered on subscribe).
    ctl.publish("fleet/v1/enc-a/config/desired", r#"{"secret":"desired"}"#, true).await;
    ctl.publish("fleet/v1/enc-a/cmd/req", r#"{"secret":"cmd"}"#, true).await;
    ctl.publish("fleet/v1/enroll/enc-a/cert", "CERT-FOR-A", true).await;
    let _ = ctl.drain(0.5).await;

    let mut claim = TestClient::connect(&broker, "enroll-enc-a", Some(tls(&broker, CLAIM))).await.unwrap();
    claim.subscribe("fleet/#").await;
    claim.subscribe("#").await;
    claim.subscribe("fleet/v1/enc-a/config/desired").await;
    // Allowed: its request.
    claim.publish("fleet/v1/enroll/enc-a/csr", "CSR-OF-A", true).await;
    // Refused: acting as a box (its own CN or another's), forging a
    // certificate, answering commands, pushing configs, the controller's topics.
    for topic in [
        "fleet/v1/enc-a/status",
        "fleet/v1/enc-a/info",
        "fleet/v1/enc-a/config/reported",
        "fleet/v1/enc-a/cmd/res",
        "fleet/v1/enc-b/config/desired",
        "fleet/v1/enc-b/cmd/req",
        "fleet/v1/enroll/enc-a/cert",
        "fleet/v1/enroll/status",
        "fleet/ctl/x/sync",
    ] {
        claim.publish(topic, format!("FORGED {topic}"), false).await;
    }
    let seen_by_claim = claim.drain(1.5).await;
    let topics: Vec<&str> = seen_by_claim.iter().map(|m| m.topic.as_str()).collect();
    assert!(topics.iter().all(|t| t.starts_with("fleet/v1/enroll/") && t.ends_with("/cert")), "{topics:?}");
    assert!(topics.contains(&"fleet/v1/enroll/enc-a/cert"), "the claim reads issued certificates: {topics:?}");

    let seen_by_ctl = ctl.drain(1.0).await;
    let forged: Vec<_> = seen_by_ctl.iter().filter(|m| String::from_utf8_lossy(&m.payload).contains("FORGED")).collect();
    assert!(forged.is_empty(), "{forged:?}");
    assert!(seen_by_ctl.iter().any(|m| m.topic == "fleet/v1/enroll/enc-a/csr" && m.payload == b"CSR-OF-A"), "{seen_by_ctl:?}");
    assert!(broker.log().contains("dangerous username"), "mosquitto refuses the patterns to the claim CN:\n{}", broker.log());
}
