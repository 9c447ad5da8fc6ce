//! The agent's configuration loader (`agent.toml`): TOML text in, an
//! `AgentConfig` or a `ConfigError` out, never a panic. Both entry points:
//! the validating one (`from_str`, what `from_file` uses) and the
//! unvalidated one plus `validate` (what a desired config goes through).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = agent::config::from_str(text);
    if let Ok(cfg) = agent::config::from_str_unvalidated(text) {
        let _ = cfg.validate();
    }
});
