//! Running a CNI plugin exactly as the spec's exec protocol says: `CNI_*`
//! variables, the network configuration on stdin, the result or error
//! object on stdout. For the tests of `pisek-cni` (ADD, DEL, CHECK, and
//! STATUS and GC, which Debian's libcni predates) and for bad input that no
//! library would send.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One invocation.
#[derive(Debug, Clone, Default)]
pub struct CniCall {
    /// `CNI_COMMAND`.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS`.
    pub args: Option<String>,
    /// `CNI_PATH` (default: the plugin's directory).
    pub path: Option<String>,
    /// Variables left out on purpose (a test of a missing one).
    pub unset: Vec<&'static str>,
}

impl CniCall {
    /// A call of `command` for container `id` in `netns` on `eth0`.
    pub fn new(command: &str, id: &str, netns: &Path) -> CniCall {
        CniCall {
            command: command.into(),
            container_id: Some(id.into()),
            netns: Some(netns.to_path_buf()),
            ifname: Some("eth0".into()),
            ..CniCall::default()
        }
    }
}

/// What the plugin answered.
#[derive(Debug, Clone)]
pub struct CniOutput {
    /// The exit status (0 on success).
    pub status: i32,
    /// stdout as JSON (`Null` when empty).
    pub json: serde_json::Value,
    /// stdout as text.
    pub stdout: String,
    /// How long the plugin ran.
    pub took: Duration,
}

impl CniOutput {
    /// The error code, when the plugin failed.
    pub fn code(&self) -> Option<u64> {
        (self.status != 0)
            .then(|| self.json["code"].as_u64())
            .flatten()
    }
}

/// Runs `binary` with `call` and `stdin`; panics only if it cannot be run
/// or prints something that is not JSON.
pub fn run_cni(binary: &Path, call: &CniCall, stdin: &[u8]) -> CniOutput {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", &call.command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let dir = binary
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let vars = [
        ("CNI_CONTAINERID", call.container_id.clone()),
        (
            "CNI_NETNS",
            call.netns.as_ref().map(|p| p.display().to_string()),
        ),
        ("CNI_IFNAME", call.ifname.clone()),
        ("CNI_ARGS", call.args.clone()),
        ("CNI_PATH", Some(call.path.clone().unwrap_or(dir))),
    ];
    for (k, v) in vars {
        if let Some(v) = v
            && !call.unset.contains(&k)
        {
            cmd.env(k, v);
        }
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("run the CNI plugin");
    if let Some(mut input) = child.stdin.take() {
        // A plugin may stop reading early (an oversized config): that is
        // its right, so a broken pipe here is not an error.
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().expect("wait for the CNI plugin");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = if stdout.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{} printed something that is not JSON ({e}): {stdout:?}; stderr: {}",
                call.command,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    CniOutput {
        status: out.status.code().unwrap_or(-1),
        json,
        stdout,
        took,
    }
}
