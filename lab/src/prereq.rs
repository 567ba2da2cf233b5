//! Shared harness for the integration tests: throwaway network namespaces,
//! veth links, real peer processes, and polling with a deadline.
//!
//! Every namespace a test makes has a unique name (prefix, process id and a
//! counter), so tests run in parallel, and is removed on drop together with
//! every process still running inside it, even when the test panics.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

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
/// missing prerequisite makes the test skip (returns false, printing why);
/// with CI=true it fails the test.
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
    false
}

/// Polls `check` until it returns `Some`, or panics with `what` at the deadline
/// (the lab's [`pisek::lab::poll`], for checks that cannot fail).
pub fn poll_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    pisek::lab::poll(what, timeout, || Ok(check())).unwrap_or_else(|e| panic!("{e}"))
}

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

/// A unique short tag for names (namespaces, interfaces, temp dirs).
pub fn unique_tag(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Interface names are at most 15 bytes, so keep the tag short.
    format!("{prefix}{:x}{n:x}", std::process::id() & 0xffff)
}

/// A network namespace that lives as long as this value.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates a namespace named `pk-<tag>` with loopback up.
    pub fn new(tag: &str) -> Netns {
        let name = format!("pk-{}", unique_tag(tag));
        run("ip", ["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(["link", "set", "lo", "up"]);
        ns
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
        let mut full: Vec<std::ffi::OsString> = vec![
            "netns".into(),
            "exec".into(),
            self.name.clone().into(),
            program.into(),
        ];
        full.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        run("ip", full)
    }

    /// Runs `ip ARGS` in the namespace.
    pub fn ip<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut full: Vec<std::ffi::OsString> = vec!["-n".into(), self.name.clone().into()];
        full.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        run("ip", full)
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
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill whatever still runs inside, then remove the namespace (which
        // removes its interfaces and, with them, the peer ends of its veths).
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Joins two namespaces with a veth pair and gives each end an address
/// (CIDR form, e.g. "10.99.0.1/24"); both ends are up.
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

/// A temporary directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("pisek-test-{}", unique_tag(tag)));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The path of a binary built from this workspace (`target/<profile>/NAME`),
/// for tests that drive the agent or an example as a separate process.
pub fn workspace_binary(name: &str) -> PathBuf {
    pisek::lab::profile_dir()
        .expect("the test's target directory")
        .join(name)
}

/// Runs a shell command inside a namespace and returns its stdout, or None
/// if it failed (for probes that poll).
pub fn ns_shell(ns: &Netns, script: &str) -> Option<String> {
    let out = ns
        .command("bash")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when a TCP connection to 127.0.0.1:`port` inside `ns` is accepted.
pub fn ns_port_open(ns: &Netns, port: u16) -> bool {
    ns_shell(ns, &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")).is_some()
}

/// `GET path` over HTTP/1.0 from inside `ns`; the whole response.
pub fn ns_http_get(ns: &Netns, port: u16, path: &str) -> Option<String> {
    ns_shell(
        ns,
        &format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
        ),
    )
}

/// The agent's binaries of this build, for `pisek::lab::Lab`.
#[allow(dead_code)]
pub fn lab_binaries() -> pisek::lab::Binaries {
    pisek::lab::Binaries {
        agent: workspace_binary("pisek-agent"),
        pisekctl: workspace_binary("pisekctl"),
    }
}
