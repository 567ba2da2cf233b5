//! Running code inside one of the lab's network namespaces from this
//! process: a thread joins the namespace (`setns(2)` moves only the calling
//! thread) and every socket it opens lives there. Cheaper than a process per
//! probe, and it lets the simulated sensors be plain Rust.

use anyhow::Context;
use nix::sched::{CloneFlags, setns};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Moves the calling thread into the namespace `/run/netns/<netns>`.
/// Only for threads of our own that do nothing else afterwards.
pub fn enter(netns: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{netns}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns {path}"))?;
    Ok(())
}

/// Runs `f` on a fresh thread inside `netns` and returns what it returns.
pub fn run<T: Send + 'static>(
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
    run(netns, move || {
        Ok(TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok())
    })
    .unwrap_or(false)
}

/// `GET path` over HTTP/1.0 to `address` from inside `netns`: the body of a
/// 200 answer.
pub fn http_get(netns: &str, address: SocketAddr, path: &str) -> anyhow::Result<String> {
    let request = format!("GET {path} HTTP/1.0\r\n\r\n");
    let what = format!("GET http://{address}{path} in {netns}");
    run(netns, move || {
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
