//! Key selection of `image/build.sh` (`image/lib/signing.sh`): a release
//! build must never fall back to the development key that lives on a build
//! machine (issue #15, finding 8). Runs only the selection, sourced with a
//! temporary cache directory; nothing is built.

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use test_support::child::ChildGuard;

    /// Runs `select_signing_key` with `env`; exit status, stdout, stderr.
    fn select(cache: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/lib/signing.sh");
        let body = r#"source "$1"; select_signing_key "$2" "$2/log" && echo "$signing $sign_key $cert $keyring""#;
        let (out, err) = (cache.join("stdout"), cache.join("stderr"));
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(body).arg("signing").arg(&lib).arg(cache);
        for k in ["EDGE_RELEASE", "EDGE_RAUC_KEY", "EDGE_RAUC_CERT", "EDGE_RAUC_KEYRING"] {
            cmd.env_remove(k);
        }
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null()).stdout(std::fs::File::create(&out).unwrap()).stderr(std::fs::File::create(&err).unwrap());
        let mut child = ChildGuard::spawn("signing.sh", &mut cmd).unwrap();
        let status = child.wait_timeout(Duration::from_secs(60)).expect("key selection finishes within 60 s");
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (status.success(), read(&out), read(&err))
    }

    #[test]
    fn release_build_without_the_release_key_fails() {
        let cache = tempfile::tempdir().unwrap();
        let (ok, out, err) = select(cache.path(), &[("EDGE_RELEASE", "1")]);
        assert!(!ok, "a release build must not sign: {out}");
        assert!(err.contains("release build without the release key") && err.contains("EDGE_RAUC_KEY"), "{err}");
        assert!(!cache.path().join("keys").exists(), "no development key is made for a release build");

        let missing = cache.path().join("nope.pem");
        let missing = missing.to_str().unwrap();
        let (ok, _, err) = select(cache.path(), &[("EDGE_RELEASE", "1"), ("EDGE_RAUC_KEY", missing), ("EDGE_RAUC_CERT", missing)]);
        assert!(!ok && err.contains("missing"), "{err}");
        let (ok, _, err) = select(cache.path(), &[("EDGE_RAUC_KEY", missing)]);
        assert!(!ok && err.contains("together"), "{err}");
    }

    #[test]
    fn release_key_is_used_when_given() {
        let cache = tempfile::tempdir().unwrap();
        let (key, cert) = (cache.path().join("r.key"), cache.path().join("r.crt"));
        std::fs::write(&key, "k").unwrap();
        std::fs::write(&cert, "c").unwrap();
        let env = [("EDGE_RELEASE", "1"), ("EDGE_RAUC_KEY", key.to_str().unwrap()), ("EDGE_RAUC_CERT", cert.to_str().unwrap())];
        let (ok, out, err) = select(cache.path(), &env);
        assert!(ok, "{err}");
        let c = cert.display();
        assert_eq!(out.trim(), format!("release {} {c} {c}", key.display()));
        assert!(!err.contains("DEVELOPMENT"), "{err}");
    }

    #[test]
    fn development_build_uses_the_development_key_and_says_so() {
        let cache = tempfile::tempdir().unwrap();
        let (ok, out, err) = select(cache.path(), &[]);
        assert!(ok, "{err}");
        assert!(out.starts_with("development "), "{out}");
        assert!(err.contains("warning: signing with the DEVELOPMENT key"), "{err}");
        assert!(cache.path().join("keys/dev.key.pem").exists());
    }
}
