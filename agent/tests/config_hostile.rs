//! Hostile configuration keys and secrets of the wrong type, through both
//! routes into the loader (issue #15): the file (`edge-agent check-config`
//! must exit 78 with the key and line, never 101 from a panic) and a desired
//! configuration over MQTT (`fleet_device::parse_desired`, JSON turned into
//! TOML text for the same loader).

#[cfg(test)]
mod tests {
    use std::process::Command;

    use agent::config::{self, AgentConfig};
    use agent::fleet_device::parse_desired;
    use serde_json::json;

    const EXIT_CONFIG: i32 = 78;
    const SECRET: &str = "123456789012";

    const GOOD: &str = "device_id = \"hostile-01\"\n\n[[outputs]]\nname = \"primary\"\nkind = \"srt\"\naddress = \"127.0.0.1:9001\"\nlatency_ms = 500\n";

    fn running() -> AgentConfig {
        config::from_str(GOOD).unwrap()
    }

    fn desired(extra: serde_json::Value, in_output: bool) -> serde_json::Value {
        let mut output = json!({"name": "primary", "kind": "srt", "address": "127.0.0.1:9001", "latency_ms": 500});
        let mut doc = json!({"device_id": "hostile-01"});
        let target = if in_output { &mut output } else { &mut doc };
        for (k, v) in extra.as_object().unwrap() {
            target.as_object_mut().unwrap().insert(k.clone(), v.clone());
        }
        doc["outputs"] = json!([output]);
        doc
    }

    /// `check-config` on `text`: exit code and stderr.
    fn check_config(text: &str) -> (Option<i32>, String) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_edge-agent")).arg("check-config").arg(&file).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    #[test]
    fn bracket_key_in_the_file_is_a_config_error_not_a_panic() {
        let (code, stderr) = check_config(&format!("\"z[]]\" = 1\n{GOOD}"));
        assert_eq!(code, Some(EXIT_CONFIG), "{stderr}");
        assert!(stderr.contains(":1:1: key `\"z[]]\"`: unknown field"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");

        let (code, stderr) = check_config(&GOOD.replace("latency_ms = 500", "\"z[]]\" = 1"));
        assert_eq!(code, Some(EXIT_CONFIG), "{stderr}");
        assert!(stderr.contains(":7:1: key `outputs[0].\"z[]]\"`: unknown field"), "{stderr}");
    }

    #[test]
    fn bracket_key_in_a_desired_config_is_a_rejection_not_a_panic() {
        for in_output in [false, true] {
            for key in ["z[]]", "]", "a.b[", "é[😀]]"] {
                let doc = desired(json!({ key: 1 }), in_output);
                let err = parse_desired(&doc, &running()).unwrap_err();
                let shown = format!("{err:?}");
                assert!(shown.contains("unknown field"), "{key}: {shown}");
            }
        }
    }

    #[test]
    fn passphrase_number_in_the_file_is_refused_without_echoing_it() {
        let (code, stderr) = check_config(&GOOD.replace("latency_ms = 500", &format!("passphrase = {SECRET}")));
        assert_eq!(code, Some(EXIT_CONFIG), "{stderr}");
        assert!(stderr.contains("key `outputs[0].passphrase`: invalid type"), "{stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
    }

    #[test]
    fn passphrase_number_in_a_desired_config_is_refused_without_echoing_it() {
        for value in [json!(123456789012_u64), json!(1234567.8901), json!(["correct-horse-battery"]), json!({"s": SECRET})] {
            let err = parse_desired(&desired(json!({ "passphrase": value }), true), &running()).unwrap_err();
            let shown = format!("{err:?}");
            assert!(shown.contains("passphrase"), "{shown}");
            for secret in [SECRET, "1234567.8901", "correct-horse"] {
                assert!(!shown.contains(secret), "{value}: {shown}");
            }
        }
    }
}
