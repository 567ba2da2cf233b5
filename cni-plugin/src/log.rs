//! The plugin's log: one line per event appended to `logFile` (when the
//! config names one), written with a single `write` so that concurrent
//! invocations do not interleave within a line. Without `logFile` the
//! plugin logs nothing: stdout is the result and stderr is the runtime's.

use crate::config::LogLevel;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where log lines go.
pub struct Log {
    file: Option<std::fs::File>,
    level: LogLevel,
}

impl Log {
    /// A log that writes nothing.
    pub fn off() -> Log {
        Log {
            file: None,
            level: LogLevel::Error,
        }
    }

    /// A log appending to `path` at `level`; a file that cannot be opened
    /// turns logging off rather than failing the pod.
    pub fn open(path: Option<&Path>, level: LogLevel) -> Log {
        let file = path.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        Log { file, level }
    }

    /// Writes `message` if `level` is enabled.
    pub fn log(&mut self, level: LogLevel, message: &str) {
        if level > self.level {
            return;
        }
        if let Some(file) = &mut self.file {
            let line = format!(
                "{} {:<5} pisek-cni[{}] {message}\n",
                rfc3339_now(),
                format!("{level:?}").to_uppercase(),
                std::process::id()
            );
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// The time now, `YYYY-MM-DDTHH:MM:SS.mmmZ`, without a date crate.
fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs(), now.subsec_millis())
}

fn rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_796_500_800, 123), "2026-12-05T20:00:00.123Z");
    }
}
