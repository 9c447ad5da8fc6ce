//! `image/overlay/usr/lib/edge-agent/update-helper` runs as root on files in
//! the agent's update directory, which the unprivileged agent can fill with
//! symlinks. It must never write, rename or delete there, and must refuse a
//! bundle or request that is not a plain file of the agent's (issue #15,
//! finding 2). The helper is sourced with its directories pointed at a
//! temporary tree, and `rauc`, `journalctl` and `systemctl` replaced by stubs
//! on PATH, so no test here installs or reboots anything.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use test_support::child::ChildGuard;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    struct Tree {
        _tmp: tempfile::TempDir,
        agent: PathBuf,
        work: PathBuf,
        status: PathBuf,
        bin: PathBuf,
        outside: PathBuf,
    }

    fn tree() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let (agent, bin, outside) = (root.join("agent"), root.join("bin"), root.join("outside"));
        for d in [&agent, &bin, &outside] {
            std::fs::create_dir(d).unwrap();
        }
        // The stubs: a RAUC whose `info` and `status` print the versions in
        // bin/bundle-version and bin/running-version and the manifest hash
        // in bin/bundle-hash (slot b's recorded one: bin/installed-hash if
        // there, else the same), in its shell format; whose `info` of a URL
        // fails as against a server without range requests if bin/no-range
        // exists; and whose install fails unless bin/install-ok exists. No
        // journal, no reboot, a modprobe that fails (nbd is "loaded" when
        // bin/nbd-module exists; `install` leaves 2 MiB read in
        // bin/nbd-block/nbd0/stat). Each logs its arguments to bin/<name>.calls.
        let rauc = r#"d=$(dirname "$0"); echo "$*" >>"$d/rauc.calls"
last=$(for a; do :; done; printf '%s' "$a")
case "$1" in
  info)
    case "$last" in http*) if [ -e "$d/no-range" ]; then echo 'failed to configure streaming: range requests not supported by server'; exit 1; fi ;; esac
    echo "RAUC_MF_COMPATIBLE='edge-agent-x86_64'"; echo "RAUC_MF_VERSION='$(cat "$d/bundle-version")'"; echo "RAUC_MF_HASH='$(cat "$d/bundle-hash")'" ;;
  status)
    [ "$2" = mark-active ] && exit 0
    h=$(cat "$d/installed-hash" 2>/dev/null || cat "$d/bundle-hash")
    printf "RAUC_SLOT_STATE_0='inactive'\nRAUC_SLOT_BOOTNAME_0='b'\nRAUC_SLOT_STATUS_BUNDLE_HASH_0='%s'\nRAUC_SLOT_STATE_1='booted'\nRAUC_SLOT_BOOTNAME_1='a'\nRAUC_SLOT_STATUS_BUNDLE_VERSION_1='%s'\n" "$h" "$(cat "$d/running-version")" ;;
  install)
    # What streaming 2 MiB through nbd0 leaves in its counters.
    mkdir -p "$d/nbd-block/nbd0"; echo '16 0 4096 8 0 0 0 0 0 8 8' >"$d/nbd-block/nbd0/stat"
    if [ -e "$d/install-ok" ]; then echo '100% Installing done.'; exit 0; fi; echo 'LastError: stub rauc'; exit 1 ;;
esac"#;
        let log = |name: &str| format!("echo \"$*\" >>\"$(dirname \"$0\")/{name}.calls\"; exit 0");
        let stubs = [
            ("rauc", rauc.to_owned()),
            ("journalctl", log("journalctl")),
            ("systemctl", log("systemctl")),
            ("modprobe", "echo \"$*\" >>\"$(dirname \"$0\")/modprobe.calls\"; exit 1".into()),
            ("bootloader", "echo b".into()),
        ];
        std::fs::write(bin.join("bundle-hash"), "5eed").unwrap();
        std::fs::create_dir(bin.join("nbd-module")).unwrap();
        std::fs::write(bin.join("bundle-version"), "1.0.0").unwrap();
        std::fs::write(bin.join("running-version"), "1.0.0").unwrap();
        for (name, body) in stubs {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            Command::new("chmod").arg("+x").arg(&p).status().unwrap();
        }
        Tree { agent, work: root.join("work"), status: root.join("status"), bin, outside, _tmp: tmp }
    }

    /// Runs the helper's `main` against `t`; its exit status and stderr.
    fn run_helper(t: &Tree) -> (bool, String) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/overlay/usr/lib/edge-agent/update-helper");
        let body = r#"source "$1"; agent_dir=$2 work=$3 status=$4 agent_uid=$(id -u) bootloader=$5/bootloader release_file=$5/no-release nbd_module=$5/nbd-module nbd_block=$5/nbd-block; main"#;
        let path = format!("{}:{}", t.bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(body).arg("helper").arg(&script).arg(&t.agent).arg(&t.work).arg(&t.status).arg(&t.bin);
        let log = t.outside.join("helper.stderr");
        cmd.env("PATH", path).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        let mut child = ChildGuard::spawn("update-helper", &mut cmd).unwrap();
        let status = child.wait_timeout(Duration::from_secs(20)).expect("update-helper finishes within 20 s");
        (status.success(), std::fs::read_to_string(&log).unwrap_or_default())
    }

    fn listing(dir: &Path) -> Vec<(String, Option<PathBuf>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), std::fs::read_link(e.path()).ok())
            })
            .collect();
        v.sort();
        v
    }

    /// Symlinks for every name the helper ever wrote in the agent's
    /// directory, each pointing at a file outside it.
    fn plant_links(t: &Tree) -> Vec<PathBuf> {
        let mut victims = Vec::new();
        for name in ["result", "progress", ".result.tmp", ".progress.tmp", "reported", "bundle.raucb.part"] {
            let victim = t.outside.join(format!("victim-{name}"));
            std::fs::write(&victim, b"precious").unwrap();
            std::os::unix::fs::symlink(&victim, t.agent.join(name)).unwrap();
            victims.push(victim);
        }
        victims
    }

    fn result(t: &Tree) -> String {
        std::fs::read_to_string(t.status.join("result")).unwrap_or_default()
    }

    #[test]
    fn symlinked_bundle_is_refused_and_nothing_outside_is_touched() {
        let t = tree();
        let mut victims = plant_links(&t);
        let target = t.outside.join("esp-stand-in");
        std::fs::write(&target, b"precious").unwrap();
        victims.push(target.clone());
        std::os::unix::fs::symlink(&target, t.agent.join("bundle.raucb")).unwrap();
        std::fs::write(t.agent.join("request"), TOKEN).unwrap();
        let before = listing(&t.agent);

        let (ok, stderr) = run_helper(&t);
        assert!(ok, "{stderr}");
        assert!(stderr.contains("refusing") && stderr.contains("symbolic link"), "{stderr}");
        let r = result(&t);
        assert!(r.starts_with(&format!("{TOKEN} failed")) && r.contains("symbolic link"), "{r}");
        for v in &victims {
            assert_eq!(std::fs::read(v).unwrap(), b"precious", "{} changed", v.display());
        }
        assert_eq!(listing(&t.agent), before, "the agent's directory is never written");
    }

    #[test]
    fn plain_bundle_goes_to_rauc_and_answers_go_to_roots_directory() {
        let t = tree();
        let victims = plant_links(&t);
        std::fs::write(t.agent.join("bundle.raucb"), b"not really a bundle").unwrap();
        std::fs::write(t.agent.join("request"), TOKEN).unwrap();
        let before = listing(&t.agent);

        let (ok, stderr) = run_helper(&t);
        assert!(ok, "{stderr}");
        let r = result(&t);
        assert!(r.starts_with(&format!("{TOKEN} failed LastError: stub rauc")), "{r}");
        for v in &victims {
            assert_eq!(std::fs::read(v).unwrap(), b"precious", "{} changed", v.display());
        }
        assert_eq!(listing(&t.agent), before, "the agent's directory is never written");
        assert!(!t.work.join("bundle.raucb").exists(), "root's link is gone after the install");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&t.work).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o700);

        // The same request again (edge-update.path fires on any change):
        // nothing is redone.
        std::fs::remove_file(t.status.join("result")).unwrap();
        let (ok, stderr) = run_helper(&t);
        assert!(ok && result(&t).is_empty(), "{stderr}");
    }

    #[test]
    fn request_that_is_not_a_plain_token_is_refused() {
        let t = tree();
        std::fs::write(t.agent.join("bundle.raucb"), b"x").unwrap();
        let secret = t.outside.join("secret");
        std::fs::write(&secret, TOKEN).unwrap();
        std::os::unix::fs::symlink(&secret, t.agent.join("request")).unwrap();
        let (ok, stderr) = run_helper(&t);
        assert!(ok && stderr.contains("not a regular file"), "{stderr}");
        assert!(result(&t).is_empty());

        std::fs::remove_file(t.agent.join("request")).unwrap();
        std::fs::write(t.agent.join("request"), "$(reboot)").unwrap();
        let (ok, stderr) = run_helper(&t);
        assert!(ok && stderr.contains("does not hold a request token"), "{stderr}");
        assert!(result(&t).is_empty());
    }

    #[test]
    fn bundle_with_another_hard_link_is_refused() {
        let t = tree();
        let other = t.outside.join("other-name");
        std::fs::write(&other, b"x").unwrap();
        std::fs::hard_link(&other, t.agent.join("bundle.raucb")).unwrap();
        std::fs::write(t.agent.join("request"), TOKEN).unwrap();
        let (ok, stderr) = run_helper(&t);
        assert!(ok, "{stderr}");
        assert!(result(&t).contains("other hard links"), "{}", result(&t));
    }

    /// Issue #15: the root helper checks downgrades itself, from the signed
    /// manifest (`rauc info`) against the booted slot (`rauc status`),
    /// whatever the agent checked; the agent's `allow-downgrade` is honoured
    /// but logged and reported.
    #[test]
    fn the_helper_refuses_a_downgrade_itself_unless_the_request_allows_it() {
        let t = tree();
        let set = |name: &str, v: &str| std::fs::write(t.bin.join(name), v).unwrap();
        let calls = |name: &str| std::fs::read_to_string(t.bin.join(format!("{name}.calls"))).unwrap_or_default();
        let request = |token: &str, extra: &str| {
            let _ = std::fs::remove_file(t.agent.join("bundle.raucb"));
            std::fs::write(t.agent.join("bundle.raucb"), b"a signed bundle").unwrap();
            std::fs::write(t.agent.join("request"), format!("{token}{extra}")).unwrap();
        };
        set("install-ok", "");
        set("running-version", "0.3.0");
        // The agent said it reported: the helper does not wait for it.
        std::fs::write(t.agent.join("reported"), b"").unwrap();

        set("bundle-version", "0.2.9");
        request(TOKEN, "");
        let (ok, stderr) = run_helper(&t);
        assert!(ok, "{stderr}");
        let r = result(&t);
        assert!(r.starts_with(&format!("{TOKEN} failed")) && r.contains("downgrade from 0.3.0 to 0.2.9"), "{r}");
        assert!(!calls("rauc").contains("install"), "nothing installed: {}", calls("rauc"));
        assert!(calls("systemctl").is_empty(), "no reboot");
        assert!(!t.work.join("bundle.raucb").exists(), "root's link is gone");

        // A development name against a release cannot be ordered: refused too.
        set("bundle-version", "bad");
        request("1111111111111111", "");
        run_helper(&t);
        assert!(result(&t).contains("cannot be ordered"), "{}", result(&t));

        // The request's allowance: installed, and said so.
        set("bundle-version", "0.2.9");
        request("2222222222222222", " allow-downgrade");
        let (ok, stderr) = run_helper(&t);
        assert!(ok, "{stderr}");
        assert_eq!(result(&t).trim(), "2222222222222222 installed b");
        assert!(stderr.contains("downgrade from 0.3.0 to 0.2.9 allowed by the request"), "{stderr}");
        assert!(calls("rauc").contains("install"), "{}", calls("rauc"));
        assert!(calls("systemctl").contains("reboot"));

        // An upgrade (numbers, not strings: 0.10 > 0.9) needs no allowance.
        set("running-version", "v0.9.1-3-gabcdef");
        set("bundle-version", "0.10.0");
        request("3333333333333333", "");
        let (ok, stderr) = run_helper(&t);
        assert!(ok && result(&t).trim() == "3333333333333333 installed b", "{stderr}\n{}", result(&t));
    }

    const URL: &str = "http://10.0.2.102/b/good.raucb?X-Amz-Signature=0f%2F1&X-Amz-Expires=300";

    fn calls(t: &Tree, name: &str) -> String {
        std::fs::read_to_string(t.bin.join(format!("{name}.calls"))).unwrap_or_default()
    }

    /// Streaming: the request names the URL; RAUC gets it as one argument
    /// for `info` (signature, downgrade check) and `install`; nothing is
    /// taken from or written to the agent's directory; the slot RAUC wrote
    /// is checked to hold the bundle whose version was checked; reboot.
    #[test]
    fn a_streamed_request_passes_the_url_to_rauc_and_reboots() {
        let t = tree();
        let victims = plant_links(&t);
        std::fs::write(t.bin.join("install-ok"), "").unwrap();
        // (`reported` is there: a planted link to an existing file.)
        std::fs::write(t.agent.join("request"), format!("{TOKEN}\n{URL}\n")).unwrap();
        let before = listing(&t.agent);
        let (ok, stderr) = run_helper(&t);
        assert!(ok, "{stderr}");
        // The bytes RAUC read through nbd: what it fetched over HTTP.
        assert_eq!(result(&t).trim(), format!("{TOKEN} installed b read=2097152"), "{stderr}");
        let rauc = calls(&t, "rauc");
        assert!(rauc.contains(&format!("info --output-format=shell {URL}\n")), "{rauc}");
        assert!(rauc.contains(&format!("install {URL}\n")), "{rauc}");
        assert!(calls(&t, "systemctl").contains("reboot"));
        assert!(calls(&t, "modprobe").is_empty(), "nbd already loaded");
        for v in &victims {
            assert_eq!(std::fs::read(v).unwrap(), b"precious", "{} changed", v.display());
        }
        assert_eq!(listing(&t.agent), before, "the agent's directory is never written");
    }

    /// The server (which the agent picks) gave RAUC another signed bundle on
    /// the second read than the one whose version was checked: the booted
    /// slot is made primary again, no reboot, and the update fails.
    #[test]
    fn a_streamed_install_of_another_bundle_than_the_checked_one_is_undone() {
        let t = tree();
        std::fs::write(t.bin.join("install-ok"), "").unwrap();
        std::fs::write(t.bin.join("installed-hash"), "0ld").unwrap();
        std::fs::write(t.agent.join("request"), format!("{TOKEN}\n{URL}\n")).unwrap();
        let (ok, stderr) = run_helper(&t);
        assert!(ok, "{stderr}");
        let r = result(&t);
        assert!(r.starts_with(&format!("{TOKEN} failed")) && r.contains("not the one whose version was checked"), "{r}");
        assert!(calls(&t, "rauc").contains("status mark-active booted"), "{}", calls(&t, "rauc"));
        assert!(calls(&t, "systemctl").is_empty(), "no reboot");
    }

    /// Where RAUC cannot stream (no nbd driver, a server without range
    /// requests, a URL the helper does not accept) the answer is
    /// `unstreamable` and the agent downloads the bundle instead.
    #[test]
    fn unstreamable_requests_are_answered_so_the_agent_downloads() {
        let t = tree();
        let ask = |token: &str, url: &str| {
            std::fs::write(t.agent.join("request"), format!("{token}\n{url}\n")).unwrap();
            let (ok, stderr) = run_helper(&t);
            assert!(ok, "{stderr}");
            result(&t)
        };
        // A URL with shell syntax: never reaches RAUC, nothing runs.
        let marker = t.outside.join("ran");
        for (i, url) in [
            format!("http://x/$(touch {})", marker.display()),
            format!("http://x/`touch {}`", marker.display()),
            "http://x/a;b".to_owned(),
            "http://x/a'b".to_owned(),
            "http://user@x/b".to_owned(),
            "file:///data/b.raucb".to_owned(),
            "http://[::1]/b".to_owned(),
            format!("http://x/{}", "a".repeat(2048)),
        ]
        .iter()
        .enumerate()
        {
            let token = format!("{:016x}", i + 1);
            let r = ask(&token, url);
            assert!(r.starts_with(&format!("{token} unstreamable")), "{url}: {r}");
            assert!(!r.contains("/x/"), "the agent's text is not echoed: {r}");
        }
        assert!(!marker.exists(), "no URL ran as shell text");
        assert!(calls(&t, "rauc").is_empty(), "{}", calls(&t, "rauc"));

        // No nbd driver, and modprobe cannot load it.
        std::fs::remove_dir(t.bin.join("nbd-module")).unwrap();
        let r = ask("aaaaaaaaaaaaaaaa", URL);
        assert!(r.starts_with("aaaaaaaaaaaaaaaa unstreamable") && r.contains("nbd"), "{r}");
        assert!(calls(&t, "modprobe").contains("nbd"));
        assert!(calls(&t, "rauc").is_empty());
        std::fs::create_dir(t.bin.join("nbd-module")).unwrap();

        // A server that ignores range requests.
        std::fs::write(t.bin.join("no-range"), "").unwrap();
        let r = ask("bbbbbbbbbbbbbbbb", URL);
        assert!(r.starts_with("bbbbbbbbbbbbbbbb unstreamable") && r.contains("range requests not supported"), "{r}");
        assert!(!calls(&t, "rauc").contains("install"));
        assert!(calls(&t, "systemctl").is_empty());
    }

    /// A request of more than a token line and a URL line is refused, as
    /// is a second line in a token-only position.
    #[test]
    fn a_request_with_extra_lines_is_refused() {
        let t = tree();
        std::fs::write(t.agent.join("request"), format!("{TOKEN}\n{URL}\nmore\n")).unwrap();
        let (ok, stderr) = run_helper(&t);
        assert!(ok && stderr.contains("more than a token and a URL"), "{stderr}");
        assert!(result(&t).is_empty());
        assert!(calls(&t, "rauc").is_empty());
    }
}
