//! Network namespaces for tests and labs: the one [`Netns`] helper.
//!
//! A [`Netns`] is created with loopback up and lives as long as the value:
//! dropping it kills every process still running inside and deletes the
//! namespace (which removes its interfaces and, with them, the peer ends of
//! its veths), even when a test panics. [`Netns::new`] gives a unique name
//! (prefix, process id and a counter), so tests run in parallel;
//! [`Netns::named`] takes a fixed one, as the lab's topology does.
//!
//! Code can also run inside a namespace from this process ([`run_in`]): a
//! thread joins the namespace (`setns(2)` moves only the calling thread) and
//! every socket it opens lives there. Cheaper than a process per probe, and
//! it lets the simulated sensors be plain Rust.

use crate::process::run;
use anyhow::Context;
use nix::sched::{CloneFlags, setns};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A unique short tag for names (namespaces, interfaces, temp dirs).
pub fn unique_tag(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Interface names are at most 15 bytes, so keep the tag short.
    format!("{prefix}{:x}{n:x}", std::process::id() & 0xffff)
}

/// A network namespace that lives as long as this value.
#[derive(Debug)]
pub struct Netns {
    /// Its name (`ip netns` names it so; the file is `/run/netns/<name>`).
    pub name: String,
}

impl Netns {
    /// Creates a namespace named `pk-<unique tag>` with loopback up; panics
    /// if it cannot (for tests).
    pub fn new(tag: &str) -> Netns {
        let name = format!("pk-{}", unique_tag(tag));
        Netns::named(&name).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Creates the namespace `name` with loopback up, replacing a stale one
    /// of that name (left by a run that was killed).
    pub fn named(name: &str) -> anyhow::Result<Netns> {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .output();
        checked(Command::new("ip").args(["netns", "add", name]))?;
        // Owned from here, so a failure below still removes it.
        let ns = Netns {
            name: name.to_string(),
        };
        checked(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    /// The path of the namespace file (for setns or a CNI netns argument).
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs a command in the namespace and panics if it fails.
    pub fn exec<I, S>(&self, program: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut full: Vec<OsString> = vec![
            "netns".into(),
            "exec".into(),
            self.name.clone().into(),
            program.into(),
        ];
        full.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        run("ip", full)
    }

    /// Runs `ip ARGS` in the namespace and panics if it fails.
    pub fn ip<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut full: Vec<OsString> = vec!["-n".into(), self.name.clone().into()];
        full.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        run("ip", full)
    }

    /// Runs `ip ARGS` in the namespace; an error (with ip's message) if it
    /// fails.
    pub fn try_ip(&self, args: &[&str]) -> anyhow::Result<()> {
        checked(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Starts a long-running process in the namespace; it is killed when the
    /// namespace is dropped, if not before.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Child {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} in {}: {e}", self.name))
    }

    /// True when a ping from this namespace to `addr` gets an answer within
    /// one second.
    pub fn ping_once(&self, addr: &str) -> bool {
        self.command("ping")
            .args(["-c", "1", "-W", "1", addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The ids of the processes running inside.
    pub fn pids(&self) -> Vec<u32> {
        pids(&self.name)
    }

    /// True when a TCP connection to `address` from inside is accepted.
    pub fn port_open(&self, address: SocketAddr) -> bool {
        port_open(&self.name, address)
    }

    /// `GET path` over HTTP/1.0 to `address` from inside: the body of a 200
    /// answer.
    pub fn http_get(&self, address: SocketAddr, path: &str) -> anyhow::Result<String> {
        http_get(&self.name, address, path)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill whatever still runs inside, then remove the namespace (which
        // removes its interfaces and, with them, the peer ends of its veths).
        for pid in self.pids() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Joins two namespaces with a veth pair and gives each end an address
/// (CIDR form, e.g. "10.99.0.1/24"); both ends are up. Panics on failure.
pub fn veth_pair(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    run(
        "ip",
        [
            "-n", &a.name, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns",
            &b.name,
        ],
    );
    a.ip(["addr", "add", a_addr, "dev", a_if]);
    b.ip(["addr", "add", b_addr, "dev", b_if]);
    a.ip(["link", "set", a_if, "up"]);
    b.ip(["link", "set", b_if, "up"]);
}

/// The ids of the processes running in the namespace `name`.
pub fn pids(name: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `command`; an error with its stderr if it fails.
fn checked(command: &mut Command) -> anyhow::Result<()> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Moves the calling thread into the namespace `/run/netns/<netns>`.
/// Only for threads of our own that do nothing else afterwards.
pub fn enter(netns: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{netns}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns {path}"))?;
    Ok(())
}

/// Runs `f` on a fresh thread inside `netns` and returns what it returns.
pub fn run_in<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let netns = netns.to_string();
    std::thread::spawn(move || {
        enter(&netns)?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("a thread in a network namespace panicked"))?
}

/// True when a TCP connection to `address` from inside `netns` is accepted.
pub fn port_open(netns: &str, address: SocketAddr) -> bool {
    run_in(netns, move || {
        Ok(TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok())
    })
    .unwrap_or(false)
}

/// `GET path` over HTTP/1.0 to `address` from inside `netns`: the body of a
/// 200 answer.
pub fn http_get(netns: &str, address: SocketAddr, path: &str) -> anyhow::Result<String> {
    let request = format!("GET {path} HTTP/1.0\r\n\r\n");
    let what = format!("GET http://{address}{path} in {netns}");
    run_in(netns, move || {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(request.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .context("no end of the HTTP header")?;
        anyhow::ensure!(
            head.split_whitespace().nth(1) == Some("200"),
            "answer: {}",
            head.lines().next().unwrap_or_default()
        );
        Ok(body.to_string())
    })
    .with_context(|| what)
}
