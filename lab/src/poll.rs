//! Waiting for a condition with a deadline, never for a fixed time: the
//! pause between checks grows from 5 ms to 100 ms, so a quick condition is
//! seen quickly and a slow one costs little.

use anyhow::bail;
use std::time::{Duration, Instant};

/// Polls `check` until it gives a value, fails, or `timeout` passes; the pause
/// between checks grows from 5 ms to 100 ms, so a quick condition is seen quickly.
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` at the deadline
/// ([`poll`] for checks that cannot fail).
pub fn poll_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    poll(what, timeout, || Ok(check())).unwrap_or_else(|e| panic!("{e}"))
}
