//! A desired configuration (MQTT, `fleet_device::parse_desired`) may not
//! change the box-local AWS keys (`aws.endpoint_url` would send signed
//! requests to any host, `aws.credentials_file` read any file the agent
//! can) nor name more than `MAX_OUTPUTS` outputs (issue #15, finding 5).

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
}
