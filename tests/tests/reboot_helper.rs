//! The root side of the fleet's `reboot` (issue 14, item 5):
//! `image/overlay/usr/lib/edge-agent/reboot-helper`, started by
//! `edge-reboot.path` when the unprivileged agent creates its request file.
//! The request's existence is the whole request: the helper never reads or
//! follows it, removes the name itself, and only then reboots. The helper
//! is sourced with the request pointed into a temporary tree and
//! `systemctl` replaced by a stub on PATH; the units are checked with
//! `systemd-analyze verify`. The VM test (vm_boot.rs) reboots for real.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use test_support::child::ChildGuard;

    fn image() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/overlay/usr/lib")
    }

    struct Tree {
        _tmp: tempfile::TempDir,
        request: PathBuf,
        bin: PathBuf,
        outside: PathBuf,
    }

    fn tree() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let (agent, bin, outside) = (tmp.path().join("agent"), tmp.path().join("bin"), tmp.path().join("outside"));
        for d in [&agent, &bin, &outside] {
            std::fs::create_dir(d).unwrap();
        }
        let stub = bin.join("systemctl");
        std::fs::write(&stub, "#!/bin/sh\necho \"$*\" >>\"$(dirname \"$0\")/systemctl.calls\"\n").unwrap();
        Command::new("chmod").arg("+x").arg(&stub).status().unwrap();
        Tree { request: agent.join("reboot-request"), bin, outside, _tmp: tmp }
    }

    /// Runs the helper's `main`; its success and stderr.
    fn run_helper(t: &Tree) -> (bool, String) {
        let body = r#"source "$1"; request=$2; main"#;
        let path = format!("{}:{}", t.bin.display(), std::env::var("PATH").unwrap_or_default());
        let log = t.outside.join("helper.stderr");
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(body).arg("helper").arg(image().join("edge-agent/reboot-helper")).arg(&t.request);
        cmd.env("PATH", path).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        let mut child = ChildGuard::spawn("reboot-helper", &mut cmd).unwrap();
        let status = child.wait_timeout(Duration::from_secs(20)).expect("reboot-helper finishes within 20 s");
        (status.success(), std::fs::read_to_string(&log).unwrap_or_default())
    }

    fn reboots(t: &Tree) -> usize {
        std::fs::read_to_string(t.bin.join("systemctl.calls")).unwrap_or_default().lines().filter(|l| *l == "reboot").count()
    }

    #[test]
    fn no_request_no_reboot() {
        let t = tree();
        let (ok, stderr) = run_helper(&t);
        assert!(ok, "{stderr}");
        assert_eq!(reboots(&t), 0);
    }

    #[test]
    fn a_request_is_removed_then_the_box_reboots() {
        let t = tree();
        std::fs::write(&t.request, b"").unwrap();
        let (ok, stderr) = run_helper(&t);
        assert!(ok, "{stderr}");
        assert!(!t.request.exists(), "removed first: PathExists= must not fire again after the boot");
        assert_eq!(reboots(&t), 1);
    }

    #[test]
    fn a_symlinked_request_is_unlinked_and_its_target_never_touched() {
        let t = tree();
        let victim = t.outside.join("esp-stand-in");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, &t.request).unwrap();
        let (ok, stderr) = run_helper(&t);
        assert!(ok, "{stderr}");
        assert!(std::fs::symlink_metadata(&t.request).is_err(), "the link itself is gone");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(reboots(&t), 1, "existence is the request, whatever the name is");
    }

    #[test]
    fn a_directory_is_refused_without_a_reboot() {
        let t = tree();
        std::fs::create_dir(&t.request).unwrap();
        std::fs::write(t.request.join("keep"), b"x").unwrap();
        let (ok, stderr) = run_helper(&t);
        assert!(!ok && stderr.contains("refusing"), "{stderr}");
        assert!(t.request.join("keep").exists());
        assert_eq!(reboots(&t), 0, "a request that cannot be removed would reboot at every boot");
    }

    #[test]
    fn the_units_verify_without_any_output() {
        let dir = tempfile::tempdir().unwrap();
        let units = image().join("systemd/system");
        std::fs::copy(units.join("edge-reboot.path"), dir.path().join("edge-reboot.path")).unwrap();
        // verify refuses an ExecStart= that does not exist on this machine.
        let service = std::fs::read_to_string(units.join("edge-reboot.service")).unwrap();
        assert!(service.contains("ExecStart=/usr/lib/edge-agent/reboot-helper\n"), "{service}");
        std::fs::write(dir.path().join("edge-reboot.service"), service.replace("/usr/lib/edge-agent/reboot-helper", "/bin/true"))
            .unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no", "--recursive-errors=no", "edge-reboot.path", "edge-reboot.service"])
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("systemd-analyze (Debian package `systemd`): {e}"));
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(), "{stdout}\n{stderr}");
        // The path watches what the agent writes (agent::reboot).
        let path = std::fs::read_to_string(units.join("edge-reboot.path")).unwrap();
        assert!(path.contains(&format!("PathExists=/var/lib/edge-agent/{}\n", agent::reboot::REQUEST_FILE)), "{path}");
        // Pulled in by the agent's image drop-in (build.sh enables units by name).
        let dropin = std::fs::read_to_string(units.join("edge-agent.service.d/image.conf")).unwrap();
        assert!(dropin.contains("Wants=edge-reboot.path"), "{dropin}");
    }
}
