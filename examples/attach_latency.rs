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

use pisek_api::{ApiClient, Attachment, Request};
use std::path::{Path, PathBuf};
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

struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/attach_latency -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join(name)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let tag = std::process::id();
    let host = format!("pk-lat-h{tag:x}");
    let pod = format!("pk-lat-p{tag:x}");
    let _cleanup = Namespaces(vec![host.clone(), pod.clone()]);
    ip(&["netns", "add", &host]);
    ip(&["netns", "add", &pod]);
    // The agent's metrics listen on the host namespace's loopback.
    ip(&["-n", &host, "link", "set", "lo", "up"]);
    let dir = std::env::temp_dir().join(format!("pisek-latency-{tag}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("wg.key"),
        "YNqHbfBQKaGvzefSSuLF5KoKsRB1A7ULpnIzX0tPTkA=\n",
    )
    .expect("key");
    // The agent refuses a private key others can read, as `wg` does.
    std::fs::set_permissions(
        dir.join("wg.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("key mode");
    let config = format!(
        r#"[node]
name = "latency"
role = "edge"
[underlay]
listen = "0.0.0.0:51820"
[tunnel]
address = "10.255.0.1"
network = "10.255.0.0/24"
[wireguard]
private_key_file = "{d}/wg.key"
[bgp]
asn = 65000
[api]
socket = "{d}/agent.sock"
[state]
dir = "{d}/state"
[[tenant]]
name = "city"
id = 1
prefixes = ["10.1.1.0/24"]
"#,
        d = dir.display()
    );
    std::fs::write(dir.join("agent.toml"), config).expect("config");
    let mut agent: Child = Command::new("ip")
        .args(["netns", "exec", &host])
        .arg(binary("pisek-agent"))
        .arg("--config")
        .arg(dir.join("agent.toml"))
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start pisek-agent (build it first: cargo build --release -p pisek-agent)");
    let socket = dir.join("agent.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        if let Ok(c) = ApiClient::connect(&socket) {
            break c;
        }
        assert!(Instant::now() < deadline, "agent did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    // `ip netns exec` forks the agent: find its pid for the fd count.
    let agent_pid = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "pids", &host])
            .output()
            .expect("pids")
            .stdout,
    )
    .split_whitespace()
    .next()
    .and_then(|p| p.parse().ok())
    .unwrap_or(agent.id());
    let netns = PathBuf::from(format!("/run/netns/{pod}"));

    // Warm up once, then measure.
    let attach = Request::Attach {
        container_id: "bench".into(),
        netns: netns.clone(),
        ifname: "eth0".into(),
        tenant: "city".into(),
        addresses: Vec::new(),
    };
    let detach = Request::Detach {
        container_id: "bench".into(),
        ifname: "eth0".into(),
    };
    let _: Attachment = client.call(&attach).expect("attach");
    let _: serde_json::Value = client.call(&detach).expect("detach");
    let fds_before = fds(agent_pid);
    let mut agent_attach = Vec::with_capacity(iterations);
    let mut agent_both = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let _: Attachment = client.call(&attach).expect("attach");
        agent_attach.push(start.elapsed());
        let _: serde_json::Value = client.call(&detach).expect("detach");
        agent_both.push(start.elapsed());
    }
    let fds_after = fds(agent_pid);

    // The anchor: the same objects with iproute2, one command per object.
    let mut ip_attach = Vec::with_capacity(iterations);
    let mut ip_both = Vec::with_capacity(iterations);
    let h = |args: &[&str]| {
        let mut full = vec!["-n", host.as_str()];
        full.extend_from_slice(args);
        ip(&full);
    };
    let p = |args: &[&str]| {
        let mut full = vec!["-n", pod.as_str()];
        full.extend_from_slice(args);
        ip(&full);
    };
    for _ in 0..iterations {
        let start = Instant::now();
        h(&[
            "link", "add", "pkbench", "type", "veth", "peer", "name", "pkbenchp",
        ]);
        h(&["link", "set", "pkbenchp", "netns", &pod]);
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

    let _ = Command::new("kill")
        .args(["-TERM", &agent_pid.to_string()])
        .status();
    let _ = agent.wait();
    let _ = std::fs::remove_dir_all(&dir);

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
