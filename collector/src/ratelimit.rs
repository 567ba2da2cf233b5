//! Logs about bad messages, at most once per topic per interval, so a
//! misbehaving sensor cannot flood the log (its messages are still counted).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Topics remembered at most; past this the table is cleared.
const MAX_TOPICS: usize = 10_000;

/// Decides whether a message about a topic may be logged now.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    last: HashMap<String, (Instant, u64)>,
}

impl LogLimiter {
    /// At most one log line per topic per `interval`.
    pub fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            last: HashMap::new(),
        }
    }

    /// `Some(suppressed)` when a line about `topic` may be logged at `now`,
    /// with the number of lines suppressed since the last one; `None` otherwise.
    pub fn allow(&mut self, topic: &str, now: Instant) -> Option<u64> {
        if let Some((at, suppressed)) = self.last.get_mut(topic) {
            if now.duration_since(*at) < self.interval {
                *suppressed += 1;
                return None;
            }
            let n = *suppressed;
            *at = now;
            *suppressed = 0;
            return Some(n);
        }
        if self.last.len() >= MAX_TOPICS {
            self.last.clear();
        }
        self.last.insert(topic.to_string(), (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_per_topic_per_interval_and_counts_the_rest() {
        let mut l = LogLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(l.allow("a", t0), Some(0));
        assert_eq!(l.allow("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(l.allow("a", t0 + Duration::from_secs(2)), None);
        assert_eq!(l.allow("b", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(l.allow("a", t0 + Duration::from_secs(61)), Some(2));
    }
}
