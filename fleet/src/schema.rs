//! JSON Schemas of the wire types, generated with `schemars` and committed
//! under `fleet/schema/` for controller authors. The test
//! `committed_schemas_match_the_types` fails when they drift; regenerate
//! with `FLEET_UPDATE_SCHEMA=1 cargo test -p fleet schema`.

use schemars::schema_for;
use serde_json::Value;

use crate::settings::FleetSettings;
use crate::wire;

/// `(file name, schema)` for every wire document and the settings.
pub fn all() -> Vec<(&'static str, Value)> {
    fn v(s: schemars::Schema) -> Value {
        s.to_value()
    }
    vec![
        ("status.schema.json", v(schema_for!(wire::Status))),
        ("info.schema.json", v(schema_for!(wire::Info))),
        ("state.schema.json", v(schema_for!(wire::State))),
        ("telemetry.schema.json", v(schema_for!(wire::Telemetry))),
        ("event.schema.json", v(schema_for!(wire::Event))),
        ("alarms.schema.json", v(schema_for!(wire::AlarmsSnapshot))),
        ("config-desired.schema.json", v(schema_for!(wire::DesiredConfig))),
        ("config-reported.schema.json", v(schema_for!(wire::ReportedConfig))),
        ("cmd-req.schema.json", v(schema_for!(wire::CommandRequest))),
        ("cmd-res.schema.json", v(schema_for!(wire::CommandResponse))),
        ("fleet-settings.schema.json", v(schema_for!(FleetSettings))),
    ]
}

/// The committed text of a schema: pretty JSON and a final newline.
pub fn render(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_schemas_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
        let update = std::env::var_os("FLEET_UPDATE_SCHEMA").is_some();
        let mut stale = Vec::new();
        for (name, schema) in all() {
            let want = render(&schema);
            let path = dir.join(name);
            if update {
                crate::store::write_atomically(&path, want.as_bytes()).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
                stale.push(name);
            }
        }
        assert!(stale.is_empty(), "schemas differ from the types: {stale:?}; run FLEET_UPDATE_SCHEMA=1 cargo test -p fleet schema");
    }

    #[test]
    fn schemas_deny_additional_properties() {
        for (name, schema) in all() {
            assert_eq!(schema["additionalProperties"], Value::Bool(false), "{name}");
        }
    }
}
