//! Processes of a test or lab: run a command and fail loudly, stop a
//! daemon as an operator does (bounded, never hanging a teardown), kill a
//! child on drop, and clean up on SIGINT/SIGTERM.

use crate::poll::poll;
use anyhow::{Context, bail};
use std::ffi::OsStr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// Runs a command to completion and panics, with its output, if it fails.
pub fn run<I, S>(program: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {:?} failed ({}):\nstdout: {}\nstderr: {}",
        args,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `args[0] args[1..]`; an error with its stderr if it fails (the
/// fallible twin of [`run`], for the lab's setup).
pub fn sh(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Stops a process of ours as an operator does: SIGTERM, then SIGKILL if
/// it is still there after a few seconds (a hung process must not hang the
/// lab's teardown).
pub fn terminate(child: &mut Child) -> anyhow::Result<ExitStatus> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exited = poll("a process to exit", Duration::from_secs(5), || {
        Ok(child.try_wait()?)
    });
    match exited {
        Ok(status) => Ok(status),
        Err(_) => {
            child.kill()?;
            Ok(child.wait()?)
        }
    }
}

/// A child process killed on drop.
#[derive(Debug)]
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// What it is (`gobgpd`, `bird`), for messages.
    pub name: &'static str,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` on SIGINT or SIGTERM (a small thread on a tokio runtime), so a
/// lab's process is not killed before its namespaces are removed.
pub fn on_signal(f: impl FnOnce() + Send + 'static) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        f();
    });
    Ok(())
}

/// A Python script running in a network namespace that prints `ready` once
/// it listens, then its results line by line (a test's receiving end).
pub struct ReadyScript {
    child: Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl ReadyScript {
    /// Starts `python3 -c script` in the namespace named `netns` and waits
    /// for its `ready` line.
    pub fn start(netns: &str, script: &str) -> ReadyScript {
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "python3", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python3 in {netns}: {e}"));
        let Some(stdout) = child.stdout.take() else {
            panic!("python3 in {netns}: no stdout");
        };
        let mut script = ReadyScript {
            child,
            out: std::io::BufReader::new(stdout),
        };
        let first = script.line();
        assert_eq!(first, "ready", "python3 in {netns} did not start listening");
        script
    }

    /// Its next output line, trimmed (empty once it ended).
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut self.out, &mut line).expect("the script's output");
        line.trim().to_string()
    }

    /// Waits for it to end.
    pub fn wait(mut self) -> Option<ExitStatus> {
        self.child.wait().ok()
    }
}

impl Drop for ReadyScript {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
