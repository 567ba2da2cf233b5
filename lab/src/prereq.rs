//! What a test needs before it can run: root and the real peers' programs.
//! Outside CI a missing prerequisite skips the test; with `CI=true` it fails
//! it. Every skip is also counted: with `PISEK_SKIP_LOG` set, [`require`]
//! appends one line (the test and why) to that file, because cargo test
//! captures the `SKIPPED` line on stderr and a skipped test reads as passed.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable naming the file [`require`] appends skips to.
pub const SKIP_LOG_ENV: &str = "PISEK_SKIP_LOG";

/// True when the suite runs in CI, where a missing prerequisite is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Finds an executable on PATH (and in the sbin directories, which a
/// non-login root shell may lack).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
}

/// Checks that the test can run: root, and each tool installed. Outside CI a
/// missing prerequisite makes the test skip (returns false, printing why and
/// logging it to `$PISEK_SKIP_LOG`); with CI=true it fails the test.
pub fn require(test: &str, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root".to_string());
    }
    for tool in tools {
        if which(tool).is_none() {
            missing.push(format!("`{tool}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{test}: needs {} (scripts/install-deps installs the packages)",
        missing.join(", ")
    );
    assert!(!in_ci(), "{why}");
    eprintln!("SKIPPED {why}");
    if let Some(log) = std::env::var_os(SKIP_LOG_ENV) {
        log_skip(Path::new(&log), &why);
    }
    false
}

/// Appends one line to the skip log. One `write` of a whole line to a file
/// opened for appending, so lines of tests in parallel do not interleave.
fn log_skip(log: &Path, why: &str) {
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| f.write_all(format!("{why}\n").as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot log the skip to {}: {e}", log.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_one_line_in_the_skip_log() {
        let log = std::env::temp_dir().join(format!("pisek-skip-log-{}", std::process::id()));
        let _ = std::fs::remove_file(&log);
        log_skip(&log, "first: needs root");
        log_skip(&log, "second: needs `bird`");
        let text = std::fs::read_to_string(&log).expect("the skip log");
        let _ = std::fs::remove_file(&log);
        assert_eq!(text, "first: needs root\nsecond: needs `bird`\n");
    }
}
