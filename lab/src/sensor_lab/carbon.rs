//! carbon-cache (graphite-carbon) as the datacenter's Graphite: its own
//! config dir, the plaintext line receiver on every address of the
//! namespace it runs in, one-second points kept for six hours (so each
//! reading's timestamp is stored exactly).

use crate::netns;
use anyhow::Context;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// carbon's plaintext (line) receiver port.
pub const LINE_PORT: u16 = 2003;

/// carbon-cache's files and, while it runs, its process.
pub struct Carbon {
    /// Config, whisper tree, logs.
    pub dir: PathBuf,
    netns: String,
    process: Option<Child>,
}

impl Carbon {
    /// Writes carbon's config under `dir/carbon` for a carbon-cache in `netns`.
    pub fn new(dir: &Path, netns: &str) -> anyhow::Result<Carbon> {
        let dir = dir.join("carbon");
        for sub in ["whisper", "log", "run"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let d = dir.display();
        std::fs::write(
            dir.join("carbon.conf"),
            format!(
                "[cache]\nSTORAGE_DIR = {d}/\nLOCAL_DATA_DIR = {d}/whisper/\nWHISPER_DIR = {d}/whisper/\n\
                 CONF_DIR = {d}/\nLOG_DIR = {d}/log/\nPID_DIR = {d}/run/\nENABLE_TAGS = False\n\
                 MAX_CACHE_SIZE = inf\nMAX_UPDATES_PER_SECOND = inf\nMAX_CREATES_PER_MINUTE = inf\n\
                 LINE_RECEIVER_INTERFACE = 0.0.0.0\nLINE_RECEIVER_PORT = {LINE_PORT}\n\
                 ENABLE_UDP_LISTENER = False\nPICKLE_RECEIVER_INTERFACE = 127.0.0.1\n\
                 PICKLE_RECEIVER_PORT = 2004\nCACHE_QUERY_INTERFACE = 127.0.0.1\nCACHE_QUERY_PORT = 7002\n\
                 CACHE_WRITE_STRATEGY = sorted\nWHISPER_AUTOFLUSH = False\n"
            ),
        )?;
        std::fs::write(
            dir.join("storage-schemas.conf"),
            "[all]\npattern = .*\nretentions = 1s:6h\n",
        )?;
        Ok(Carbon {
            dir,
            netns: netns.to_string(),
            process: None,
        })
    }

    /// Whether `carbon-cache` is installed.
    pub fn installed() -> bool {
        std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .chain(["/usr/bin", "/usr/local/bin"])
            .any(|dir| Path::new(dir).join("carbon-cache").is_file())
    }

    /// The root of the whisper tree.
    pub fn whisper_dir(&self) -> PathBuf {
        self.dir.join("whisper")
    }

    /// Starts carbon-cache in the foreground and waits for its line receiver.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.process.is_some() {
            return Ok(());
        }
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("carbon.out"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, "carbon-cache"])
            .arg(format!(
                "--config={}",
                self.dir.join("carbon.conf").display()
            ))
            .args(["--debug", "start"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting carbon-cache")?;
        self.process = Some(child);
        let receiver = SocketAddr::from((Ipv4Addr::LOCALHOST, LINE_PORT));
        crate::poll::poll(
            "carbon-cache's line receiver",
            Duration::from_secs(20),
            || {
                if let Some(status) = self
                    .process
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    anyhow::bail!(
                        "carbon-cache exited with {status}: see {}",
                        self.dir.join("carbon.out").display()
                    );
                }
                Ok(netns::port_open(&self.netns, receiver).then_some(()))
            },
        )
    }

    /// Stops carbon-cache as an operator does (SIGTERM) and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.process.take() {
            crate::process::terminate(&mut child)?;
        }
        Ok(())
    }

    /// Whether it runs.
    pub fn running(&self) -> bool {
        self.process.is_some()
    }
}

impl Drop for Carbon {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
