//! Macro benchmark: how long an attach + detach through the agent's API takes,
//! next to the same kernel objects made by `ip` commands (what a shell CNI
//! plugin would do), measured in the same run.
//!
//! ```sh
//! cargo build --release -p pisek-agent --bins
//! cargo run --release --example attach_latency -- [iterations]
//! ```
//!
//! Needs root. Everything happens in namespaces the example creates (one
//! playing the host, one workload) and removes at the end. It also prints the
//! agent's open file descriptors before and after, as a leak check.

use pisek_agent::config::Role;
use pisek_agent::config::fixture::{AgentToml, TenantToml, write_test_key};
use pisek_api::{ApiClient, Attachment, Request};
use pisek_lab::{Netns, poll, terminate, workspace_binary};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The agent under test, in the namespace playing the host, with its
/// config and state in a temp dir (removed on drop, as are the namespaces).
struct Setup {
    host: Netns,
    pod: Netns,
    dir: PathBuf,
    agent: Child,
    /// The agent's own pid (`ip netns exec` forks it), for the fd count.
    agent_pid: u32,
    client: ApiClient,
}

impl Setup {
    fn start() -> Setup {
        let tag = std::process::id();
        // The agent's metrics listen on the host namespace's loopback.
        let host = Netns::new("lat-h");
        let pod = Netns::new("lat-p");
        let dir = std::env::temp_dir().join(format!("pisek-latency-{tag}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key = dir.join("wg.key");
        write_test_key(&key).expect("key");
        AgentToml::new("latency", Role::Edge, "10.255.0.1", &key)
            .api_socket(dir.join("agent.sock"))
            .state_dir(dir.join("state"))
            .tenant(TenantToml::new("city", 1).prefixes(["10.1.1.0/24"]))
            .write(&dir.join("agent.toml"))
            .expect("config");
        let agent: Child = host
            .command(workspace_binary("pisek-agent"))
            .arg("--config")
            .arg(dir.join("agent.toml"))
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start pisek-agent (build it first: cargo build --release -p pisek-agent)");
        let socket = dir.join("agent.sock");
        let client = poll("the agent's API socket", Duration::from_secs(10), || {
            Ok(ApiClient::connect(&socket).ok())
        })
        .expect("agent did not start");
        let agent_pid = host.pids().first().copied().unwrap_or(agent.id());
        Setup {
            host,
            pod,
            dir,
            agent,
            agent_pid,
            client,
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.agent_pid.to_string()])
            .status();
        let _ = terminate(&mut self.agent);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Attach + detach through the agent's API, `iterations` times after one
/// warm-up: (attach times, attach + detach times, fds before, fds after).
fn measure_agent(
    setup: &mut Setup,
    iterations: usize,
) -> (Vec<Duration>, Vec<Duration>, usize, usize) {
    let attach = Request::Attach {
        container_id: "bench".into(),
        netns: setup.pod.path(),
        ifname: "eth0".into(),
        tenant: "city".into(),
        addresses: Vec::new(),
        mtu: None,
        owner: None,
    };
    let detach = Request::Detach {
        container_id: "bench".into(),
        ifname: "eth0".into(),
    };
    let client = &mut setup.client;
    let _: Attachment = client.call(&attach).expect("attach");
    let _: serde_json::Value = client.call(&detach).expect("detach");
    let fds_before = fds(setup.agent_pid);
    let mut attached = Vec::with_capacity(iterations);
    let mut both = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let _: Attachment = client.call(&attach).expect("attach");
        attached.push(start.elapsed());
        let _: serde_json::Value = client.call(&detach).expect("detach");
        both.push(start.elapsed());
    }
    (attached, both, fds_before, fds(setup.agent_pid))
}

/// The anchor: the same objects with iproute2, one command per object
/// (what a shell CNI plugin would do): (attach times, attach + detach times).
fn measure_ip(host: &str, pod: &str, iterations: usize) -> (Vec<Duration>, Vec<Duration>) {
    let mut ip_attach = Vec::with_capacity(iterations);
    let mut ip_both = Vec::with_capacity(iterations);
    let h = |args: &[&str]| {
        let mut full = vec!["-n", host];
        full.extend_from_slice(args);
        ip(&full);
    };
    let p = |args: &[&str]| {
        let mut full = vec!["-n", pod];
        full.extend_from_slice(args);
        ip(&full);
    };
    for _ in 0..iterations {
        let start = Instant::now();
        h(&[
            "link", "add", "pkbench", "type", "veth", "peer", "name", "pkbenchp",
        ]);
        h(&["link", "set", "pkbenchp", "netns", pod]);
        p(&["link", "set", "pkbenchp", "name", "eth0"]);
        p(&["link", "set", "eth0", "mtu", "1408", "up"]);
        p(&["addr", "add", "10.1.1.1/32", "dev", "eth0"]);
        p(&[
            "neigh",
            "replace",
            "169.254.1.1",
            "lladdr",
            "ee:ee:ee:ee:ee:ee",
            "dev",
            "eth0",
            "nud",
            "permanent",
        ]);
        p(&[
            "route",
            "replace",
            "default",
            "via",
            "169.254.1.1",
            "dev",
            "eth0",
            "onlink",
        ]);
        h(&["link", "set", "pkbench", "mtu", "1408", "up"]);
        h(&[
            "route",
            "replace",
            "10.1.1.1/32",
            "dev",
            "pkbench",
            "table",
            "100001",
        ]);
        h(&[
            "rule", "add", "iif", "pkbench", "lookup", "100001", "priority", "10001",
        ]);
        ip_attach.push(start.elapsed());
        h(&[
            "rule", "del", "iif", "pkbench", "lookup", "100001", "priority", "10001",
        ]);
        h(&["link", "del", "pkbench"]);
        ip_both.push(start.elapsed());
    }
    (ip_attach, ip_both)
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let mut setup = Setup::start();
    let (mut agent_attach, mut agent_both, fds_before, fds_after) =
        measure_agent(&mut setup, iterations);
    let (mut ip_attach, mut ip_both) = measure_ip(&setup.host.name, &setup.pod.name, iterations);
    drop(setup);

    for v in [
        &mut agent_attach,
        &mut agent_both,
        &mut ip_attach,
        &mut ip_both,
    ] {
        v.sort();
    }
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    println!("attach + detach of one workload, {iterations} iterations (ms)");
    println!("{:<34}  {:>7}  {:>7}  {:>7}", "", "p50", "p90", "p99");
    for (name, v) in [
        ("pisek-agent attach (API)", &agent_attach),
        ("pisek-agent attach + detach", &agent_both),
        ("ip commands attach (anchor)", &ip_attach),
        ("ip commands attach + detach", &ip_both),
    ] {
        println!(
            "{name:<34}  {:>7}  {:>7}  {:>7}",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.9)),
            ms(percentile(v, 0.99))
        );
    }
    let ratio =
        percentile(&agent_attach, 0.5).as_secs_f64() / percentile(&ip_attach, 0.5).as_secs_f64();
    println!("agent attach / ip attach (p50): {ratio:.2}");
    println!("agent open fds before/after the loop: {fds_before}/{fds_after}");
}
