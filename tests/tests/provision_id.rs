//! `image/overlay/usr/lib/edge-agent/provision` runs as root and puts the
//! device id into a sed expression, a path and agent.toml; /data/device-id
//! is trusted after first boot. Its `valid_id` gate must refuse anything but
//! 1-32 of `A-Za-z0-9_-` (issue #15, finding 3). The script itself writes
//! to fixed paths (/data, /etc), so the gate is tested as a shell function
//! taken from it, and the script's order (gate before any use) is checked.

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    fn script() -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/overlay/usr/lib/edge-agent/provision");
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn valid_id(id: &str) -> bool {
        let s = script();
        let gate = s.lines().find(|l| l.starts_with("valid_id()")).expect("provision defines valid_id");
        let out = Command::new("bash").arg("-c").arg(format!("{gate}\nvalid_id \"$1\"")).arg("test").arg(id).output().unwrap();
        out.status.success()
    }

    #[test]
    fn gate_refuses_hostile_ids() {
        for bad in [
            "",
            "a/b",
            "x/;e touch /tmp/pwned;s/",
            "id&more",
            "a\\b",
            "a.b",
            "with space",
            "new\nline",
            "$(reboot)",
            "`id`",
            &"a".repeat(33),
            "é",
        ] {
            assert!(!valid_id(bad), "{bad:?} must be refused");
        }
        for good in ["edge-001122334455", "enc_01", &"a".repeat(32)] {
            assert!(valid_id(good), "{good:?}");
        }
    }

    #[test]
    fn id_is_validated_before_any_use_and_derived_by_the_agent() {
        let s = script();
        let out = Command::new("bash").arg("-n").arg("-c").arg(&s).output().unwrap();
        assert!(out.status.success(), "bash -n: {}", String::from_utf8_lossy(&out.stderr));
        let first_gate = s.find("valid_id \"$id\"").expect("the id is checked");
        let first_sed = s.find("@DEVICE_ID@/$id").expect("the id is substituted");
        let first_write = s.find(">/data/device-id.tmp").expect("the id is persisted");
        assert!(first_gate < first_sed && first_gate < first_write, "gate before sed and write");
        assert!(s.contains("/usr/bin/edge-agent device-id"), "one rule: hal::identity through the agent");
        assert!(!s.contains("product_serial"), "no second DMI rule in shell");
    }
}
