//! A desired configuration (MQTT, `fleet_device::parse_desired`) may not
//! change the box-local AWS keys (`aws.endpoint_url` would send signed
//! requests to any host, `aws.credentials_file` read any file the agent
//! can) nor name more than `MAX_OUTPUTS` outputs (issue #15, finding 5).
//! Its `[fleet]` section may repeat the box's own but not change it
//! (issue #17, item 5: pushing the box's own `agent.toml` works).

#[cfg(test)]
mod tests {
    use agent::config::{self, AgentConfig, MAX_OUTPUTS};
    use agent::fleet_device::parse_desired;
    use serde_json::{json, Value};

    const FILE: &str = "device_id = \"local-01\"\n\n[aws]\nregion = \"eu-west-1\"\nendpoint_url = \"http://127.0.0.1:5055\"\ncredentials_file = \"/etc/edge-agent/aws-credentials\"\n\n[[outputs]]\nname = \"primary\"\nkind = \"srt\"\naddress = \"127.0.0.1:9001\"\n";

    fn running() -> AgentConfig {
        config::from_str(FILE).unwrap()
    }

    fn desired(aws: Value, outputs: usize) -> Value {
        let outputs: Vec<Value> = (0..outputs)
            .map(|i| json!({"name": format!("o{i}"), "kind": "srt", "address": format!("127.0.0.1:{}", 9001 + i)}))
            .collect();
        json!({"device_id": "local-01", "aws": aws, "outputs": outputs})
    }

    fn same_aws() -> Value {
        json!({"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5055", "credentials_file": "/etc/edge-agent/aws-credentials"})
    }

    #[test]
    fn the_boxs_own_aws_keys_pass() {
        parse_desired(&desired(same_aws(), 1), &running()).unwrap();
    }

    #[test]
    fn endpoint_url_from_the_fleet_is_refused() {
        for aws in [
            json!({"region": "eu-west-1", "endpoint_url": "https://attacker.example", "credentials_file": "/etc/edge-agent/aws-credentials"}),
            json!({"region": "eu-west-1", "credentials_file": "/etc/edge-agent/aws-credentials"}),
        ] {
            let e = parse_desired(&desired(aws.clone(), 1), &running()).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("aws.endpoint_url"), "{aws}: {}", e.reason);
        }
        // A box without an [aws] section gets none from the fleet either.
        let bare = config::from_str(
            "device_id = \"local-01\"\n\n[[outputs]]\nname = \"primary\"\nkind = \"srt\"\naddress = \"127.0.0.1:9001\"\n",
        )
        .unwrap();
        let e =
            parse_desired(&desired(json!({"region": "eu-west-1", "endpoint_url": "https://attacker.example"}), 1), &bare).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("aws.endpoint_url"));
        parse_desired(&desired(json!({"region": "eu-west-1"}), 1), &bare).unwrap();
    }

    #[test]
    fn credentials_file_from_the_fleet_is_refused() {
        let aws = json!({"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5055", "credentials_file": "/var/lib/edge-agent/fleet/key.pem"});
        let e = parse_desired(&desired(aws, 1), &running()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("aws.credentials_file"), "{}", e.reason);
        assert!(e.reason.contains("local to the box"), "{}", e.reason);
    }

    #[test]
    fn outputs_are_capped_in_desired_configs_and_files() {
        parse_desired(&desired(same_aws(), MAX_OUTPUTS), &running()).unwrap();
        let e = parse_desired(&desired(same_aws(), MAX_OUTPUTS + 1), &running()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("outputs"), "{}", e.reason);
        assert!(e.reason.contains(&format!("at most {MAX_OUTPUTS}")), "{}", e.reason);

        let mut file = String::from("device_id = \"local-01\"\n");
        for i in 0..=MAX_OUTPUTS {
            file += &format!("\n[[outputs]]\nname = \"o{i}\"\nkind = \"srt\"\naddress = \"127.0.0.1:{}\"\n", 9001 + i);
        }
        assert!(config::from_str(&file).is_err(), "the file loader caps outputs too");
    }

    /// The box's file with a `[fleet]` section (defaults left out, as an
    /// operator writes it) and its TLS files.
    const FLEET_FILE: &str = "device_id = \"local-01\"\n\n[video]\nbitrate_kbps = 4000\n\n[[outputs]]\nname = \"primary\"\nkind = \"srt\"\naddress = \"127.0.0.1:9001\"\n\n[fleet]\nbroker = \"mqtt.example.net:8883\"\ndevice_id = \"local-01\"\nstate_dir = \"/var/lib/edge-agent/fleet\"\n\n[fleet.tls]\nca = \"/etc/edge-agent/fleet/ca.pem\"\ncert = \"/etc/edge-agent/fleet/cert.pem\"\nkey = \"/etc/edge-agent/fleet/key.pem\"\n";

    /// `text` as `edgectl config push` sends a TOML file: parsed, as JSON.
    fn pushed(text: &str) -> Value {
        serde_json::to_value(toml::from_str::<toml::Value>(text).unwrap()).unwrap()
    }

    #[test]
    fn the_boxs_own_fleet_section_is_accepted_and_left_alone() {
        let running = config::from_str(FLEET_FILE).unwrap();
        // The operator's first try: the box's own file, one bitrate changed.
        let cfg = parse_desired(&pushed(&FLEET_FILE.replace("4000", "2500")), &running).unwrap();
        assert_eq!(cfg.video.bitrate_kbps.get(), 2500);
        assert_eq!(cfg.fleet, running.fleet, "[fleet] stays the box's own");
        // Defaults written out compare equal to defaults left out.
        let spelled = FLEET_FILE.replace("[fleet.tls]", "telemetry_interval_s = 10\nkeep_alive_s = 30\n\n[fleet.tls]");
        parse_desired(&pushed(&spelled), &running).unwrap();
        // Without a [fleet] section, as before.
        let (bare, _) = FLEET_FILE.split_once("\n[fleet]").unwrap();
        let cfg = parse_desired(&pushed(bare), &running).unwrap();
        assert_eq!(cfg.fleet, running.fleet);
    }

    #[test]
    fn a_different_fleet_section_is_refused_naming_the_key() {
        let running = config::from_str(FLEET_FILE).unwrap();
        for (from, to, key) in [
            ("mqtt.example.net:8883", "mqtt.attacker.example:8883", "fleet.broker"),
            ("/var/lib/edge-agent/fleet\"", "/tmp\"", "fleet.state_dir"),
            ("/etc/edge-agent/fleet/ca.pem", "/tmp/ca.pem", "fleet.tls.ca"),
            ("[fleet.tls]", "keep_alive_s = 60\n\n[fleet.tls]", "fleet.keep_alive_s"),
        ] {
            let e = parse_desired(&pushed(&FLEET_FILE.replace(from, to)), &running).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{to}: {}", e.reason);
            assert!(e.reason.contains(key) && e.reason.contains("local to the box"), "{}", e.reason);
            assert!(!e.reason.contains(from), "the box's own value is not published: {}", e.reason);
        }
        // Plain TCP instead of mutual TLS.
        let (head, _) = FLEET_FILE.split_once("\n[fleet.tls]").unwrap();
        let e = parse_desired(&pushed(&format!("{head}insecure_plaintext = true\n")), &running).unwrap_err();
        assert!(matches!(e.key.as_deref(), Some("fleet.insecure_plaintext" | "fleet.tls")), "{:?}: {}", e.key, e.reason);
        // A misspelt key is named by the loader, as in the file.
        let e = parse_desired(&pushed(&FLEET_FILE.replace("broker =", "brokr =")), &running).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("fleet.brokr"), "{}", e.reason);
        // A box without [fleet] takes none from a desired config.
        let (bare, _) = FLEET_FILE.split_once("\n[fleet]").unwrap();
        let e = parse_desired(&pushed(FLEET_FILE), &config::from_str(bare).unwrap()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("fleet"), "{}", e.reason);
    }
}
