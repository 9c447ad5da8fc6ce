//! A shutdown signal that threads can both poll and sleep on, so every wait
//! in the agent (backoff, status interval) ends as soon as SIGTERM arrives.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Cloneable handle; all clones see the same signal.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<(Mutex<bool>, Condvar)>);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder to stop.
    pub fn trigger(&self) {
        let (lock, cvar) = &*self.0;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cvar.notify_all();
    }

    pub fn is_triggered(&self) -> bool {
        *self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps for `d` or until shutdown; returns true if shutdown was triggered.
    pub fn wait_timeout(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let (lock, cvar) = &*self.0;
        let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stopped = cvar.wait_timeout(stopped, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_ends_on_trigger() {
        let s = Shutdown::new();
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.wait_timeout(Duration::from_secs(10)));
        s.trigger();
        assert!(t.join().unwrap());
        assert!(!Shutdown::new().wait_timeout(Duration::from_millis(1)));
    }
}
