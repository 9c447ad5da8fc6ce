//! A desired configuration from the fleet (`config/desired`'s `config`
//! object, JSON) checked against a fixed running configuration
//! (examples/fleet-local.toml, so `[fleet]` comparisons are exercised):
//! `agent::fleet_device::parse_desired` must answer `Ok` or a rejection.
#![no_main]

use std::sync::LazyLock;

use agent::config::AgentConfig;
use libfuzzer_sys::fuzz_target;

static RUNNING: LazyLock<AgentConfig> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    agent::config::from_str(include_str!("../../examples/fleet-local.toml")).expect("examples/fleet-local.toml loads")
});

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = agent::fleet_device::parse_desired(&value, &RUNNING);
});
