//! Where the workspace's programs are: the agent's binaries (`pisek-agent`,
//! `pisekctl`, `pisek-collector`) in the running program's build profile,
//! and building them for the examples that start them.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Where the lab's programs are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `pisek-agent`.
    pub agent: PathBuf,
    /// `pisekctl`.
    pub pisekctl: PathBuf,
}

/// The directory of the running program's build profile
/// (`target/<profile>`), where the workspace's binaries are.
pub fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir: &Path = exe.parent().context("exe has no directory")?;
    // examples/ and deps/ sit one level below the profile directory.
    if dir.ends_with("examples") || dir.ends_with("deps") {
        dir = dir.parent().context("no profile directory")?;
    }
    Ok(dir.to_path_buf())
}

/// Builds the agent's binaries (`pisek-agent`, `pisekctl`) in the profile of
/// `dir` (a `target/<profile>` directory), for the examples that start them.
pub fn build_agent(dir: &Path) -> anyhow::Result<()> {
    let mut cargo =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "-q", "-p", "pisek-agent", "--bins"]);
    // two_gateways starts the sensor collector, its own package.
    cargo.args(["-p", "pisek-collector"]);
    if dir.ends_with("release") {
        cargo.arg("--release");
    }
    let status = cargo.status().context("running cargo build")?;
    anyhow::ensure!(status.success(), "building pisek-agent failed");
    Ok(())
}

/// The path of a binary built from this workspace (`target/<profile>/NAME`),
/// for tests that drive the agent or an example as a separate process.
pub fn workspace_binary(name: &str) -> PathBuf {
    let path = profile_dir()
        .expect("the test's target directory")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries first \
         (cargo build --workspace --bins; scripts/test does)",
        path.display()
    );
    path
}

/// The agent's binaries of this build, for [`Lab`](crate::Lab).
pub fn lab_binaries() -> Binaries {
    Binaries {
        agent: workspace_binary("pisek-agent"),
        pisekctl: workspace_binary("pisekctl"),
    }
}
