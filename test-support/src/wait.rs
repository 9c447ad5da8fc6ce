//! Polling with a deadline. For conditions that can only be observed from
//! outside (a status file, a port that starts listening, a receiver's
//! count); where an event can be awaited (a channel, a child's exit), await
//! it instead.

use std::time::{Duration, Instant};

/// Calls `cond` every `every` until it returns `Some`, or `None` once
/// `timeout` has passed (`cond` runs at least once, and once more at the
/// deadline).
pub fn poll<T>(timeout: Duration, every: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        std::thread::sleep(every.min(left));
        if Instant::now() >= deadline {
            return cond();
        }
    }
}

/// Polls `cond` every 50 ms until it returns `Some`.
///
/// # Panics
/// After `timeout`, with `what` in the message.
pub fn wait_for<T>(what: &str, timeout: Duration, cond: impl FnMut() -> Option<T>) -> T {
    match poll(timeout, Duration::from_millis(50), cond) {
        Some(v) => v,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `cond` every 20 ms until it holds (`true`) or `timeout` passes
/// (`false`).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    poll(timeout, Duration::from_millis(20), || cond().then_some(())).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_the_value_or_gives_up() {
        let mut n = 0;
        assert_eq!(
            poll(Duration::from_secs(5), Duration::from_millis(1), || {
                n += 1;
                (n == 3).then_some(n)
            }),
            Some(3)
        );
        assert!(!wait_until(Duration::from_millis(30), || false));
    }
}
