//! Facts the code relies on live in the project (`docs/`), not in notes
//! outside it that someone who clones the repository does not have: no file
//! tracked by git may point into a shared directory beside the checkout.
//!
//! `docs/results.md` is exempt: it is a log of past runs, kept as written.
//! Needs `git` (the file list is `git ls-files`); outside a git checkout
//! (e.g. an unpacked source archive) there is no list to check.

// Inside a cfg(test) module so that the workspace's clippy test lints
// (tests_outside_test_module, unwrap in tests) apply as intended.
#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Files that may mention the forbidden paths.
    const EXEMPT: &[&str] = &["docs/results.md"];

    /// Built from pieces so this file does not match itself.
    fn forbidden() -> [String; 2] {
        [format!("shared{}reference", '/'), format!("..{}shared", '/')]
    }

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
    }

    #[test]
    fn no_tracked_file_cites_a_path_outside_the_repository() {
        let root = repo_root();
        if !root.join(".git").exists() {
            println!("SKIP: {} is not a git checkout", root.display());
            return;
        }
        let out = Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(["ls-files", "-z"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run git ls-files: {e}"));
        assert!(out.status.success(), "git ls-files failed: {}", String::from_utf8_lossy(&out.stderr));
        let patterns = forbidden();
        let mut offenders = Vec::new();
        let mut checked = 0;
        for name in out.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let name = String::from_utf8_lossy(name);
            if EXEMPT.contains(&name.as_ref()) {
                continue;
            }
            // Tracked but deleted in the work tree: nothing to check.
            let Ok(bytes) = std::fs::read(root.join(name.as_ref())) else {
                continue;
            };
            checked += 1;
            // Lossy: binary files are searched too, as text where they are text.
            let text = String::from_utf8_lossy(&bytes);
            for (number, line) in text.lines().enumerate() {
                if patterns.iter().any(|p| line.contains(p.as_str())) {
                    offenders.push(format!("{name}:{}: {}", number + 1, line.trim()));
                }
            }
        }
        assert!(checked > 0, "git ls-files listed no readable file under {}", root.display());
        assert!(offenders.is_empty(), "cite docs/ instead of paths outside the repository:\n{}", offenders.join("\n"));
    }
}
