//! One guard for every child process of the tests and benches.

use std::io;
use std::process::{Child, ChildStdout, Command, ExitStatus};
use std::time::Duration;

use crate::wait::poll;

/// A child process, killed by its PID (SIGKILL) and reaped when dropped,
/// also on panic, so an error anywhere leaves nothing running. `name` is
/// for messages.
#[derive(Debug)]
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl ChildGuard {
    pub fn new(name: &str, child: Child) -> ChildGuard {
        ChildGuard { child, name: name.to_owned() }
    }

    /// Spawns `cmd`; the error names the program, so a missing tool is
    /// obvious.
    pub fn spawn(name: &str, cmd: &mut Command) -> io::Result<ChildGuard> {
        match cmd.spawn() {
            Ok(child) => Ok(ChildGuard::new(name, child)),
            Err(e) => Err(io::Error::new(e.kind(), format!("cannot start {name} ({:?}): {e}", cmd.get_program()))),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes the child's stdout (spawned with `Stdio::piped()`).
    pub fn take_stdout(&mut self) -> io::Result<ChildStdout> {
        self.child.stdout.take().ok_or_else(|| io::Error::other(format!("{}: stdout is not piped", self.name)))
    }

    /// Sends a signal by PID with kill(1) (`"TERM"`, `"STOP"`, `"CONT"`…).
    /// Until the child is reaped (by [`ChildGuard::exited`],
    /// [`ChildGuard::wait_timeout`] or drop) its PID cannot be reused, so
    /// this reaches the child or its zombie, nothing else.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([&format!("-{sig}"), &self.pid().to_string()]).status();
    }

    /// `Some(status)` once the child has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// Waits up to `timeout` for the child to exit; `None` if it did not.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll(timeout, Duration::from_millis(10), || self.child.try_wait().ok().flatten())
    }

    /// SIGTERM, then up to `timeout` for a clean exit; SIGKILL after that.
    /// Returns the exit status if the child exited by itself in time.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        // A child reaped earlier has no PID of its own any more.
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        self.signal("TERM");
        let st = self.wait_timeout(timeout);
        if st.is_none() {
            self.kill();
        }
        st
    }

    /// SIGKILL (if still running) and reap. Idempotent.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // `Child::kill` is kill(pid, SIGKILL) on this very PID.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_kills_and_reaps_its_child() {
        let mut g = ChildGuard::spawn("sleep", Command::new("sleep").arg("600")).unwrap();
        assert!(g.exited().is_none());
        g.signal("STOP");
        g.signal("CONT");
        assert!(g.terminate(Duration::from_secs(5)).is_some());
        assert!(g.exited().is_some());
        let err = ChildGuard::spawn("nope", &mut Command::new("/nonexistent/tool")).unwrap_err();
        assert!(err.to_string().contains("cannot start nope"), "{err}");
    }
}
