//! How long each step of an attach or detach took: logged at debug level
//! for every one, and at warn level when the whole was slow, so an operator
//! can tell a slow disk (the state steps) from a busy kernel (netlink).

use std::fmt;
use std::time::{Duration, Instant};

/// An attach slower than this is logged as a warning: kubelet's CNI calls
/// are on a pod's start-up path.
const SLOW: Duration = Duration::from_secs(1);

/// The steps of one attach so far, with their durations.
pub(super) struct StepTimes {
    start: Instant,
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl StepTimes {
    /// Starts the clock.
    pub(super) fn start() -> StepTimes {
        let now = Instant::now();
        StepTimes {
            start: now,
            last: now,
            steps: Vec::with_capacity(8),
        }
    }

    /// Ends `step` now; the next step starts here.
    pub(super) fn mark(&mut self, step: &'static str) {
        let now = Instant::now();
        self.steps.push((step, now - self.last));
        self.last = now;
    }

    /// Logs the steps of `what` (attach, detach) of `endpoint`.
    pub(super) fn log(&self, what: &str, endpoint: &dyn fmt::Display) {
        let total = self.last - self.start;
        if total >= SLOW {
            tracing::warn!(%endpoint, total_ms = ms(total), steps = %self, "slow {what}");
        } else {
            tracing::debug!(%endpoint, total_ms = ms(total), steps = %self, "{what}");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl fmt::Display for StepTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (step, took)) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{step}={:.2}ms", ms(*took))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_step_once_in_order() {
        let mut t = StepTimes::start();
        t.mark("state");
        t.mark("veth");
        let shown = t.to_string();
        let state = shown.find("state=").expect("state step");
        let veth = shown.find("veth=").expect("veth step");
        assert!(state < veth, "{shown}");
        assert!(shown.ends_with("ms"), "{shown}");
    }
}
