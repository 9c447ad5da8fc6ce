//! Presence with a real broker and a device process: Will on kill -9,
//! higher bdseq after restart, explicit offline on SIGTERM.
// An integration test crate is test code throughout (clippy.toml allows
// unwrap/expect only inside #[test] functions and #[cfg(test)] modules).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::tests_outside_test_module)]

mod common;

use common::{tls, Broker, SimDevice, TestClient, CONTROLLER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_publishes_the_will_and_a_restart_comes_back_with_a_higher_bdseq() {
    let broker = Broker::mtls(false);
    let state = tempfile::tempdir().unwrap();
    let mut ctl = TestClient::connect(&broker, CONTROLLER, Some(tls(&broker, CONTROLLER))).await.unwrap();
    ctl.subscribe("fleet/v1/enc-k/status").await;

    let mut dev = SimDevice::start(&broker, "enc-k", state.path());
    let online = ctl.wait_for("/status", 20, |v| v["online"] == true).await.expect("online status");
    let b1 = online["bdseq"].as_u64().unwrap();
    assert_eq!(online["state"], "ready");

    dev.kill9();
    let will = ctl.wait_for("/status", 20, |v| v["online"] == false).await.expect("the Will");
    assert_eq!((will["state"].as_str(), will["bdseq"].as_u64()), (Some("lost"), Some(b1)));

    let mut dev = SimDevice::start(&broker, "enc-k", state.path());
    let again = ctl.wait_for("/status", 20, |v| v["online"] == true).await.expect("online again");
    assert!(again["bdseq"].as_u64().unwrap() > b1, "bdseq rises across restarts: {again}");

    assert!(dev.terminate(), "clean exit on SIGTERM");
    let off = ctl.wait_for("/status", 10, |v| v["online"] == false).await.expect("explicit offline");
    assert_eq!(off["state"], "disconnected");
}
