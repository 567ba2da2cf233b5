//! Running CNI plugins through libcni, the reference library container
//! runtimes use: `tests/libcni/driver` (Go, built here offline in GOPATH
//! mode against Debian's golang-github-appc-cni-dev, libcni 1.1.2) prints
//! one JSON line per call.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The driver binary, built once per test process.
pub fn driver() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn build() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    let dir = std::env::temp_dir().join(format!("pisek-libcni-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("libcni-driver");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg("./tests/libcni/driver")
        .current_dir(root)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOFLAGS", "")
        .output()
        .context("running go build")?;
    if !status.status.success() {
        bail!(
            "go build of the libcni driver: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    Ok(out)
}

/// One libcni call: `command` (add, check, del, bench) with `args`; the
/// driver's JSON line.
pub fn call(command: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    call_in(None, command, args)
}

/// [`call`] run in network namespace `netns` (an `ip netns` name): where
/// the runtime and the agent are, so the chained plugins find the host side.
pub fn call_in(
    netns: Option<&str>,
    command: &str,
    args: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let driver = driver()?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&driver);
            c
        }
        None => Command::new(&driver),
    };
    let out = cmd
        .arg(command)
        .args(args)
        .output()
        .context("running the libcni driver")?;
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).with_context(|| {
        format!(
            "libcni driver {command}: not JSON: {line}; {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
