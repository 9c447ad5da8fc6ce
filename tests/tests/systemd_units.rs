//! The files in `systemd/`, checked with systemd's own tools and without
//! booting (PID 1 here need not be systemd):
//! - units: `systemd-analyze verify` must print nothing (it exits 0 on
//!   unknown keys and bad values, so any output is a failure), and the agent
//!   unit's `systemd-analyze security --offline=yes` exposure must be <= 2.5;
//! - sysusers.d and tmpfiles.d: applied to a scratch root with `--root=`;
//! - the .network file: every key must be one systemd-networkd knows.
//!
//! All tools come from Debian 12's `systemd` package. A missing tool fails
//! the test with the package name: these checks are never skipped silently.
//! Restart, watchdog kill and boot order need a booted systemd: the QEMU
//! image test covers them.

// Inside a cfg(test) module so that the workspace's clippy test lints
// (tests_outside_test_module, unwrap in tests) apply as intended.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    /// The agent's uid and gid, pinned in sysusers.d.
    const AGENT_ID: u32 = 930;
    /// The ExecStart= the image and the lead rely on.
    const EXEC_START: &str = "ExecStart=/usr/bin/edge-agent run --config /etc/edge-agent/agent.toml";

    fn systemd_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd")
    }

    fn read(rel: &str) -> String {
        let p = systemd_dir().join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// A tool from Debian 12's `systemd` package, or a failure that says so.
    fn tool(name: &str) -> PathBuf {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([Path::new("/usr/bin").join(name), Path::new("/lib/systemd").join(name)])
            .find(|p| p.is_file());
        found.unwrap_or_else(|| {
            panic!("`{name}` not found: install the Debian package `systemd` (apt-get install systemd; it works without systemd as PID 1)")
        })
    }

    fn run(cmd: &mut Command) -> Output {
        cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    /// `systemd-analyze verify` on `units` (inside `dir`): success and no output.
    fn verify_quietly(dir: &Path, units: &[&str]) {
        let out = run(Command::new(tool("systemd-analyze"))
            // Only our units: host units' own warnings are not ours to fix.
            .args(["verify", "--man=no", "--recursive-errors=no"])
            .args(units)
            .current_dir(dir));
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(),
            "systemd-analyze verify {units:?}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
    }

    /// The agent unit in `dir`, with ExecStart= pointing at a binary that exists
    /// here (verify and security refuse a missing one).
    fn agent_unit_in(dir: &Path) {
        let unit = read("edge-agent.service");
        assert_eq!(unit.lines().filter(|l| l.starts_with("ExecStart=")).collect::<Vec<_>>(), [EXEC_START]);
        let unit = unit.replace("ExecStart=/usr/bin/edge-agent ", "ExecStart=/bin/true ");
        std::fs::write(dir.join("edge-agent.service"), unit).unwrap();
    }

    #[test]
    fn agent_unit_and_config_path_unit_verify_without_any_output() {
        let dir = tempfile::tempdir().unwrap();
        agent_unit_in(dir.path());
        std::fs::copy(systemd_dir().join("edge-agent-config.path"), dir.path().join("edge-agent-config.path")).unwrap();
        verify_quietly(dir.path(), &["edge-agent.service", "edge-agent-config.path"]);
    }

    #[test]
    fn verify_catches_what_it_should() {
        // Guards the guard: a typo must produce output, or the test above proves
        // nothing.
        let dir = tempfile::tempdir().unwrap();
        agent_unit_in(dir.path());
        let p = dir.path().join("edge-agent.service");
        let unit = std::fs::read_to_string(&p).unwrap().replace("WatchdogSec=30s", "WatchdogSecs=30s");
        std::fs::write(&p, unit).unwrap();
        let out = run(Command::new(tool("systemd-analyze"))
            .args(["verify", "--man=no", "--recursive-errors=no", "edge-agent.service"])
            .current_dir(dir.path()));
        assert!(text(&out.stderr).contains("Unknown key 'WatchdogSecs'"), "{}", text(&out.stderr));
    }

    #[test]
    fn agent_unit_security_exposure_is_at_most_2_5() {
        let dir = tempfile::tempdir().unwrap();
        agent_unit_in(dir.path());
        let out = run(Command::new(tool("systemd-analyze"))
            // --threshold is on a 0..100 scale: 25 = 2.5. Non-zero exit above it.
            .args(["security", "--offline=yes", "--threshold=25", "--no-pager", "edge-agent.service"])
            .current_dir(dir.path()));
        let stdout = text(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.contains("Overall exposure level for edge-agent.service"))
            .unwrap_or_else(|| panic!("no exposure line:\n{stdout}\n{}", text(&out.stderr)));
        let score: f64 = line
            .rsplit(':')
            .next()
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("cannot parse {line:?}"));
        edge_tests::record("systemd_units", "edge-agent.service exposure (systemd-analyze security)", score);
        assert!(score <= 2.5, "exposure {score} > 2.5:\n{stdout}");
        assert!(out.status.success(), "systemd-analyze security --threshold=25 failed: {}\n{stdout}", out.status);
    }

    #[test]
    fn agent_unit_keeps_its_contract() {
        // The values other parts depend on: main.rs exits 78 on a bad config,
        // notify.rs pings at half of WatchdogSec, the image's sysusers uid.
        let unit = read("edge-agent.service");
        let values = |key: &str| -> Vec<&str> { unit.lines().filter_map(|l| l.strip_prefix(key)?.strip_prefix('=')).collect() };
        assert_eq!(values("Type"), ["notify"]);
        assert_eq!(values("NotifyAccess"), ["main"]);
        assert_eq!(values("WatchdogSec"), ["30s"]);
        assert_eq!(values("Restart"), ["always"]);
        assert_eq!(values("RestartPreventExitStatus"), ["78"]);
        assert_eq!(values("User"), ["edge-agent"]);
        assert!(values("DynamicUser").is_empty(), "the uid must be pinned: both A/B slots share the data partition");
        for dir in ["StateDirectory", "ConfigurationDirectory", "RuntimeDirectory"] {
            assert_eq!(values(dir), ["edge-agent"], "{dir}");
        }
        // A directory such as /dev/dri is not a device: systemd would allow nothing.
        for allow in values("DeviceAllow") {
            let spec = allow.split_whitespace().next().unwrap_or_default();
            assert!(spec.starts_with("char-"), "DeviceAllow={allow}: use a char-<group> from /proc/devices");
        }
    }

    #[test]
    fn wait_online_dropin_verifies_and_replaces_execstart() {
        let dropin = read("systemd-networkd-wait-online.service.d/edge-agent.conf");
        let exec: Vec<&str> = dropin.lines().filter(|l| l.starts_with("ExecStart=")).collect();
        // A oneshot accepts several ExecStart=; without the reset both would run.
        assert_eq!(exec.first(), Some(&"ExecStart="), "the drop-in must reset ExecStart= first");
        assert!(exec.get(1).is_some_and(|l| l.contains("--any")), "{exec:?}");

        let host_unit = Path::new("/lib/systemd/system/systemd-networkd-wait-online.service");
        assert!(host_unit.is_file(), "{} missing: install the Debian package `systemd`", host_unit.display());
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(host_unit, dir.path().join("systemd-networkd-wait-online.service")).unwrap();
        let d = dir.path().join("systemd-networkd-wait-online.service.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("edge-agent.conf"), dropin).unwrap();
        verify_quietly(dir.path(), &["systemd-networkd-wait-online.service"]);
    }

    /// A scratch root with base-passwd's groups (not render), then our
    /// sysusers.d applied to it. Returns stderr of systemd-sysusers.
    fn root_with_agent_user(root: &Path) -> String {
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\ndialout:x:20:\naudio:x:29:\nvideo:x:44:\n").unwrap();
        let out = run(Command::new(tool("systemd-sysusers"))
            .arg(format!("--root={}", root.display()))
            .arg(systemd_dir().join("sysusers.d/edge-agent.conf")));
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "systemd-sysusers: {}\n{stderr}", out.status);
        stderr
    }

    fn entries(path: &Path) -> BTreeMap<String, Vec<String>> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let fields: Vec<String> = l.split(':').map(str::to_owned).collect();
                Some((fields.first()?.clone(), fields))
            })
            .collect()
    }

    #[test]
    fn sysusers_creates_the_pinned_user_and_its_device_groups() {
        let root = tempfile::tempdir().unwrap();
        let stderr = root_with_agent_user(root.path());
        // sysusers reports what it creates; anything else is a warning.
        let unexpected: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("Creating ")).collect();
        assert!(unexpected.is_empty(), "systemd-sysusers said:\n{stderr}");

        let passwd = entries(&root.path().join("etc/passwd"));
        let user = &passwd["edge-agent"];
        assert_eq!(user[2..], ["930", "930", "edge-agent venue encoder", "/var/lib/edge-agent", "/usr/sbin/nologin"]);
        let group = entries(&root.path().join("etc/group"));
        assert_eq!(group["edge-agent"][2], AGENT_ID.to_string());
        // render did not exist (udev creates it on Debian): the m-line made it.
        for g in ["video", "render", "audio", "dialout"] {
            let members = group.get(g).unwrap_or_else(|| panic!("group {g} missing"))[3].clone();
            assert!(members.split(',').any(|m| m == "edge-agent"), "edge-agent not in {g}: {members:?}");
        }
        // The unit asks for the same groups.
        let unit = read("edge-agent.service");
        assert!(unit.lines().any(|l| l == "SupplementaryGroups=video render audio dialout"));
    }

    #[test]
    fn tmpfiles_creates_private_state_and_config_dirs() {
        if !test_support::running_as_root() {
            // Only the ownership part needs root (chown); say so loudly.
            eprintln!("SKIP tmpfiles_creates_private_state_and_config_dirs: needs root to chown in the scratch root");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        root_with_agent_user(root);
        // A config written with a careless umask: tmpfiles must tighten it.
        std::fs::create_dir_all(root.join("etc/edge-agent")).unwrap();
        let toml = root.join("etc/edge-agent/agent.toml");
        std::fs::write(&toml, "device_id = \"x\"\n").unwrap();
        std::fs::set_permissions(&toml, std::fs::Permissions::from_mode(0o644)).unwrap();

        let out = run(Command::new(tool("systemd-tmpfiles"))
            .args(["--create", &format!("--root={}", root.display())])
            .arg(systemd_dir().join("tmpfiles.d/edge-agent.conf")));
        let stderr = text(&out.stderr);
        assert!(out.status.success() && stderr.trim().is_empty(), "systemd-tmpfiles: {}\n{stderr}", out.status);

        let check = |rel: &str, mode: u32, uid: u32, gid: u32| {
            let m = std::fs::metadata(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (mode, uid, gid), "{rel}: (mode, uid, gid)");
        };
        check("var/lib/edge-agent", 0o700, AGENT_ID, AGENT_ID);
        check("var/lib/edge-agent/outbox", 0o700, AGENT_ID, AGENT_ID);
        check("etc/edge-agent", 0o750, 0, AGENT_ID);
        check("etc/edge-agent/agent.toml", 0o640, 0, AGENT_ID);
    }

    /// `(section, key, value)` of an INI-style systemd file.
    fn ini(textual: &str) -> Vec<(String, String, String)> {
        let mut section = String::new();
        let mut out = Vec::new();
        for line in textual.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.to_owned();
            } else if let Some((k, v)) = line.split_once('=') {
                out.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
            } else {
                panic!("not a key=value line: {line:?}");
            }
        }
        out
    }

    #[test]
    fn network_file_uses_only_keys_networkd_knows() {
        // networkd has no offline checker; its key table ("Section.Key" strings,
        // NUL-terminated, from its gperf file) is in the binary. Values are not
        // checked this way: the VM boot test does that.
        let networkd = Path::new("/lib/systemd/systemd-networkd");
        let binary =
            std::fs::read(networkd).unwrap_or_else(|e| panic!("{}: {e}: install the Debian package `systemd`", networkd.display()));
        let network = read("network/80-wired-dhcp.network");
        let entries = ini(&network);
        for (section, key, _) in &entries {
            let needle = format!("\0{section}.{key}\0");
            assert!(binary.windows(needle.len()).any(|w| w == needle.as_bytes()), "systemd-networkd does not know [{section}] {key}=");
        }
        let value = |s: &str, k: &str| entries.iter().find(|(sec, key, _)| sec == s && key == k).map(|(_, _, v)| v.as_str());
        assert_eq!(value("Match", "Name"), Some("en* eth*"));
        assert_eq!(value("Network", "DHCP"), Some("yes"));
        // Online means a lease; --any in the wait-online drop-in keeps an
        // unplugged second port from holding up network-online.target.
        assert_eq!(value("Link", "RequiredForOnline"), Some("routable"));
    }
}
