//! Every MQTT payload type of the fleet protocol read with `fleet::wire::parse`
//! (strict serde, errors naming the path). The device reads `cmd/req` and
//! `config/desired`; edgectl and the controller read the rest. A command
//! request that parses is also turned into a `fleet::Command`
//! (`Command::parse`, the arguments' own validation).
#![no_main]

use fleet::wire::{self, *};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = wire::parse::<CommandRequest>(data) {
        if let Ok(cmd) = fleet::Command::parse(&req.name, &req.args) {
            // What the device echoes back must parse as the same command.
            let again = fleet::Command::parse(cmd.name(), &cmd.args());
            assert!(again.is_ok(), "{cmd:?} -> {:?} -> {again:?}", cmd.args());
        }
    }
    let _ = wire::parse::<DesiredConfig>(data);
    let _ = wire::parse::<Status>(data);
    let _ = wire::parse::<Info>(data);
    let _ = wire::parse::<State>(data);
    let _ = wire::parse::<Telemetry>(data);
    let _ = wire::parse::<Event>(data);
    let _ = wire::parse::<AlarmsSnapshot>(data);
    let _ = wire::parse::<ReportedConfig>(data);
    let _ = wire::parse::<CommandResponse>(data);
});
