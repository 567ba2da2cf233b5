//! The two-gateway lab: an edge, two gateways and their workloads in
//! network namespaces, each node running a real `pisek-agent`. Used by
//! `examples/two_gateways.rs` (to show it) and `tests/two_gateways.rs` (to
//! prove it), so both see the same topology.
//!
//! ```text
//!                      ┌──────── <tag>-wan (router) ────────┐
//!          172.16.1.0/24│           172.16.0.0/24│          │172.16.2.0/24
//!     <tag>-gw1 (gateway)           <tag>-edge (edge, RR)   <tag>-gw2 (gateway)
//!      pisek0 10.255.0.11            pisek0 10.255.0.1       pisek0 10.255.0.12
//!      city 10.1.1.0/24              city 10.1.0.0/24        city 10.1.2.0/24
//!      conference 10.1.1.0/24        conference 10.1.0.0/24  conference 10.1.2.0/24
//!      2 workloads per tenant        1 per tenant: the       2 workloads per tenant
//!                                    datacenter service
//! ```
//! City and conference overlap on purpose (same prefixes, same addresses).
//! WireGuard is hub and spoke (each gateway has the edge as its only peer);
//! iBGP runs over the tunnel network with the edge as route reflector.
//! Dropping the [`Lab`] stops the agents and deletes every namespace and
//! the temporary directory.

use anyhow::{Context, bail};
use pisek_agent::keyfile;
use pisek_overlay::wg::{PublicKey, StaticSecret};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The tenants of the lab: (name, id).
pub const TENANTS: [(&str, u32); 2] = [("city", 1), ("conference", 2)];

/// Workloads per tenant per gateway.
pub const WORKLOADS_PER_TENANT: usize = 2;

/// Who reflects the gateways' routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reflector {
    /// The edge agent's own speaker (the default role of the edge).
    Agent,
    /// `gobgpd` on the edge's tunnel address; the edge agent runs no speaker
    /// (`bgp.speaker = false`) and only forwards.
    Gobgpd,
}

/// Where the lab's programs are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `pisek-agent`.
    pub agent: PathBuf,
    /// `pisekctl`.
    pub pisekctl: PathBuf,
}

/// One node of the lab.
#[derive(Debug)]
pub struct Node {
    /// `edge`, `gw1`, `gw2`.
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// Its tunnel address.
    pub tunnel_address: Ipv4Addr,
    /// Its API socket.
    pub socket: PathBuf,
    /// Its agent.config file.
    pub config: PathBuf,
    agent: Option<Child>,
}

/// An attached workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The gateway it is on.
    pub gateway: String,
    /// Its tenant.
    pub tenant: String,
    /// Its namespace.
    pub netns: String,
    /// The address the agent gave it.
    pub address: Ipv4Addr,
}

/// The running lab.
pub struct Lab {
    /// The temporary directory (configs, keys, state, sockets, logs).
    pub dir: PathBuf,
    /// Edge, gw1, gw2.
    pub nodes: Vec<Node>,
    /// Every workload.
    pub workloads: Vec<Workload>,
    binaries: Binaries,
    namespaces: Vec<String>,
    reflector: Reflector,
}

impl Lab {
    /// Builds the namespaces, writes configs and keys, starts the three
    /// agents and attaches the workloads. `tag` (a few characters) makes
    /// every name unique to this run.
    pub fn start(tag: &str, binaries: Binaries) -> anyhow::Result<Lab> {
        Lab::start_with(tag, binaries, Reflector::Agent)
    }

    /// [`Lab::start`] with the route reflector of choice.
    pub fn start_with(tag: &str, binaries: Binaries, reflector: Reflector) -> anyhow::Result<Lab> {
        let dir = std::env::temp_dir().join(format!("pisek-lab-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut lab = Lab {
            dir,
            nodes: Vec::new(),
            workloads: Vec::new(),
            binaries,
            namespaces: Vec::new(),
            reflector,
        };
        lab.build_underlay(tag)?;
        lab.write_configs(tag)?;
        for i in 0..lab.nodes.len() {
            lab.start_agent(i)?;
        }
        if reflector == Reflector::Gobgpd {
            lab.start_gobgpd()?;
        }
        lab.attach_workloads(tag)?;
        Ok(lab)
    }

    /// The WAN router and each node behind its own subnet.
    fn build_underlay(&mut self, tag: &str) -> anyhow::Result<()> {
        let wan = format!("{tag}-wan");
        self.add_netns(&wan)?;
        sh(&[
            "ip",
            "netns",
            "exec",
            &wan,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        for (i, name) in ["edge", "gw1", "gw2"].iter().enumerate() {
            let netns = format!("{tag}-{name}");
            self.add_netns(&netns)?;
            let subnet = format!("172.16.{i}");
            sh(&[
                "ip",
                "link",
                "add",
                "wan0",
                "netns",
                &netns,
                "type",
                "veth",
                "peer",
                "name",
                &format!("to-{name}"),
                "netns",
                &wan,
            ])?;
            ip(
                &wan,
                &[
                    "addr",
                    "add",
                    &format!("{subnet}.1/24"),
                    "dev",
                    &format!("to-{name}"),
                ],
            )?;
            ip(&wan, &["link", "set", &format!("to-{name}"), "up"])?;
            ip(
                &netns,
                &["addr", "add", &format!("{subnet}.2/24"), "dev", "wan0"],
            )?;
            ip(&netns, &["link", "set", "wan0", "up"])?;
            ip(&netns, &["link", "set", "lo", "up"])?;
            ip(
                &netns,
                &["route", "add", "default", "via", &format!("{subnet}.1")],
            )?;
            let host = if i == 0 { 1 } else { 10 + i as u8 };
            self.nodes.push(Node {
                name: name.to_string(),
                netns,
                tunnel_address: Ipv4Addr::new(10, 255, 0, host),
                socket: self.dir.join(format!("{name}.sock")),
                config: self.dir.join(format!("{name}.toml")),
                agent: None,
            });
        }
        Ok(())
    }

    fn add_netns(&mut self, name: &str) -> anyhow::Result<()> {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        sh(&["ip", "netns", "add", name])?;
        self.namespaces.push(name.to_string());
        Ok(())
    }

    /// Keys and agent.toml for every node.
    fn write_configs(&self, tag: &str) -> anyhow::Result<()> {
        let mut public = Vec::new();
        for node in &self.nodes {
            let secret = keyfile::generate()?;
            let key = self.dir.join(format!("{}.key", node.name));
            keyfile::save(&key, &secret)?;
            let pk = x25519_public(&secret);
            public.push((key, pk));
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let role = if i == 0 { "edge" } else { "gateway" };
            let mut text = format!(
                r#"[node]
name = "{tag}-{name}"
role = "{role}"

[underlay]
listen = "172.16.{i}.2:51820"

[tunnel]
address = "{tunnel}"
network = "10.255.0.0/24"

[wireguard]
private_key_file = "{key}"
"#,
                name = node.name,
                tunnel = node.tunnel_address,
                key = public[i].0.display(),
            );
            let peers: Vec<usize> = if i == 0 { vec![1, 2] } else { vec![0] };
            for p in &peers {
                let peer = &self.nodes[*p];
                text.push_str(&format!(
                    "\n[[wireguard.peer]]\nname = \"{}\"\npublic_key = \"{}\"\ntunnel_address = \"{}\"\n",
                    peer.name, public[*p].1, peer.tunnel_address
                ));
                if i != 0 {
                    // Gateways know the edge's endpoint and keep their NAT
                    // mapping open; the edge learns theirs from their packets.
                    text.push_str(&format!(
                        "endpoint = \"172.16.{p}.2:51820\"\nkeepalive_secs = 25\n"
                    ));
                }
            }
            text.push_str("\n[bgp]\nasn = 65000\nhold_time_secs = 30\n");
            let own_speaker = i != 0 || self.reflector == Reflector::Agent;
            if !own_speaker {
                text.push_str("speaker = false\n");
            }
            for p in peers.iter().filter(|_| own_speaker) {
                let peer = &self.nodes[*p];
                text.push_str(&format!(
                    "\n[[bgp.neighbor]]\naddress = \"{}\"\nname = \"{}\"\npassive = {}\n",
                    peer.tunnel_address,
                    peer.name,
                    i == 0
                ));
            }
            // The edge carries the tenants too: the datacenter services
            // (carbon, APIs) attach there, in 10.1.0.0/24. With gobgpd as
            // reflector the edge agent runs no speaker, so it has no routes
            // and no tenants.
            if i != 0 || self.reflector == Reflector::Agent {
                for (tenant, id) in TENANTS {
                    text.push_str(&format!(
                        "\n[[tenant]]\nname = \"{tenant}\"\nid = {id}\nexport_route_targets = [\"65000:{id}\"]\nimport_route_targets = [\"65000:{id}\"]\nprefixes = [\"10.1.{i}.0/24\"]\n"
                    ));
                }
            }
            text.push_str(&format!(
                "\n[api]\nsocket = \"{}\"\n\n[state]\ndir = \"{}\"\n",
                node.socket.display(),
                self.dir.join(format!("{}-state", node.name)).display()
            ));
            std::fs::write(&node.config, text)?;
        }
        Ok(())
    }

    /// gobgpd on the edge's tunnel address, reflecting VPNv4/VPNv6 routes
    /// between the gateways (RFC 4456), graceful restart on.
    fn start_gobgpd(&mut self) -> anyhow::Result<()> {
        let edge = &self.nodes[0];
        let addr = edge.tunnel_address;
        let mut conf = format!(
            "[global.config]\n  as = 65000\n  router-id = \"{addr}\"\n  port = 179\n  local-address-list = [\"{addr}\"]\n"
        );
        for gateway in &self.nodes[1..] {
            conf.push_str(&format!(
                r#"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{a}"
    peer-as = 65000
  [neighbors.transport.config]
    local-address = "{addr}"
    passive-mode = true
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [neighbors.route-reflector.config]
    route-reflector-client = true
    route-reflector-cluster-id = "{addr}"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "l3vpn-ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "l3vpn-ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
"#,
                a = gateway.tunnel_address
            ));
        }
        let path = self.dir.join("gobgpd.toml");
        std::fs::write(&path, conf)?;
        let log = std::fs::File::create(self.dir.join("gobgpd.log"))?;
        Command::new("ip")
            .args(["netns", "exec", &edge.netns, "gobgpd", "-t", "toml", "-f"])
            .arg(&path)
            .args(["--api-hosts", "127.0.0.1:50051", "--pprof-disable"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting gobgpd")?;
        Ok(())
    }

    /// Starts (or restarts) node `i`'s agent and waits for its API socket.
    pub fn start_agent(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &self.nodes[i];
        let _ = std::fs::remove_file(&node.socket);
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", node.name)))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &node.netns])
            .arg(&self.binaries.agent)
            .arg("--config")
            .arg(&node.config)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting pisek-agent")?;
        self.nodes[i].agent = Some(child);
        let socket = self.nodes[i].socket.clone();
        poll(
            &format!("{}'s API socket", self.nodes[i].name),
            Duration::from_secs(10),
            || {
                if let Some(status) = self.nodes[i]
                    .agent
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    return Err(anyhow::anyhow!(
                        "pisek-agent on {} exited with {status}; logs:\n{}",
                        self.nodes[i].name,
                        self.logs()
                    ));
                }
                Ok(socket.exists().then_some(()))
            },
        )
    }

    /// Stops node `i`'s agent with SIGTERM (interfaces and routes stay).
    pub fn stop_agent(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.nodes[i].agent.take() {
            sh(&["kill", "-TERM", &child.id().to_string()])?;
            let status = child.wait()?;
            if !status.success() {
                bail!("pisek-agent on {} exited with {status}", self.nodes[i].name);
            }
        }
        Ok(())
    }

    /// Attaches WORKLOADS_PER_TENANT namespaces per tenant on each gateway
    /// and one per tenant on the edge (the datacenter service).
    fn attach_workloads(&mut self, tag: &str) -> anyhow::Result<()> {
        let first = if self.has_dc_services() { 0 } else { 1 };
        for g in first..self.nodes.len() {
            let count = if g == 0 { 1 } else { WORKLOADS_PER_TENANT };
            for (tenant, _) in TENANTS {
                for n in 1..=count {
                    let gateway = self.nodes[g].name.clone();
                    let netns = format!("{tag}-{gateway}-{}{n}", &tenant[..4]);
                    self.add_netns(&netns)?;
                    ip(&netns, &["link", "set", "lo", "up"])?;
                    let out = self.pisekctl(
                        g,
                        &[
                            "attach",
                            "--netns",
                            &format!("/run/netns/{netns}"),
                            "--tenant",
                            tenant,
                            "--json",
                        ],
                    )?;
                    let answer: serde_json::Value = serde_json::from_str(&out)?;
                    let address = answer["addresses"][0]
                        .as_str()
                        .and_then(|a| a.split('/').next())
                        .and_then(|a| a.parse().ok())
                        .with_context(|| format!("no address in attach answer: {out}"))?;
                    self.workloads.push(Workload {
                        gateway,
                        tenant: tenant.to_string(),
                        netns,
                        address,
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the edge carries tenants with a datacenter-service workload
    /// each (`workload("edge", tenant, 1)`).
    pub fn has_dc_services(&self) -> bool {
        self.reflector == Reflector::Agent
    }

    /// Runs `pisekctl` against node `i`; its stdout.
    pub fn pisekctl(&self, i: usize, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.binaries.pisekctl)
            .arg("--socket")
            .arg(&self.nodes[i].socket)
            .args(args)
            .output()
            .context("running pisekctl")?;
        if !out.status.success() {
            bail!(
                "pisekctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until every gateway has a WireGuard handshake with the edge,
    /// every BGP session is established and each gateway has the other's
    /// routes in both tenants.
    pub fn wait_until_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        self.wait_for_control_plane(timeout)
            .with_context(|| format!("agents' logs:\n{}", self.logs()))
    }

    /// The last lines of every agent's log.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for node in &self.nodes {
            let log = std::fs::read_to_string(self.dir.join(format!("{}.log", node.name)))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            text.push_str(&format!("--- {}\n", node.name));
            for line in &lines[lines.len().saturating_sub(15)..] {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    fn wait_for_control_plane(&self, timeout: Duration) -> anyhow::Result<()> {
        poll("WireGuard handshakes with the edge", timeout, || {
            for g in 1..self.nodes.len() {
                let peers = self.json(g, &["peers", "--json"])?;
                let all_up = peers.as_array().is_some_and(|p| {
                    !p.is_empty() && p.iter().all(|p| p["last_handshake_secs"].is_u64())
                });
                if !all_up {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })?;
        poll("BGP sessions established", timeout, || {
            let first = if self.reflector == Reflector::Agent {
                0
            } else {
                1
            };
            for i in first..self.nodes.len() {
                let sessions = self.json(i, &["bgp", "--json"])?;
                let all_up = sessions.as_array().is_some_and(|s| {
                    !s.is_empty() && s.iter().all(|s| s["state"] == "Established")
                });
                if !all_up {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })?;
        poll(
            "routes to every other node's prefix in every tenant",
            timeout,
            || {
                let nodes: Vec<usize> = if self.has_dc_services() {
                    (0..self.nodes.len()).collect()
                } else {
                    (1..self.nodes.len()).collect()
                };
                for &g in &nodes {
                    for &other in nodes.iter().filter(|&&o| o != g) {
                        for (tenant, _) in TENANTS {
                            let routes =
                                self.pisekctl(g, &["routes", "--tenant", tenant, "--json"])?;
                            if !routes.contains(&format!("\"10.1.{other}.0/24\"")) {
                                return Ok(None);
                            }
                        }
                    }
                }
                Ok(Some(()))
            },
        )
    }

    /// `pisekctl ... --json` against node `i`, parsed.
    pub fn json(&self, i: usize, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let out = self.pisekctl(i, args)?;
        serde_json::from_str(&out)
            .with_context(|| format!("pisekctl {}: not JSON: {out}", args.join(" ")))
    }

    /// A workload by gateway, tenant and number (1-based).
    pub fn workload(&self, gateway: &str, tenant: &str, n: usize) -> &Workload {
        self.workloads
            .iter()
            .filter(|w| w.gateway == gateway && w.tenant == tenant)
            .nth(n - 1)
            .unwrap_or_else(|| panic!("no workload {gateway}/{tenant}/{n}"))
    }

    /// Runs a program in a namespace.
    pub fn exec(&self, netns: &str, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", netns, program])
            .args(args)
            .output()
            .with_context(|| format!("running {program} in {netns}"))
    }

    /// `ping -c count` from `from` to `to`: the summary line, and whether
    /// every reply came back.
    pub fn ping(
        &self,
        from: &Workload,
        to: Ipv4Addr,
        count: u32,
    ) -> anyhow::Result<(bool, String)> {
        let out = self.exec(
            &from.netns,
            "ping",
            &[
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "1",
                &to.to_string(),
            ],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .filter(|l| l.contains("packets transmitted") || l.starts_with("rtt"))
            .collect::<Vec<_>>()
            .join("; ");
        Ok((out.status.success(), summary))
    }
}

impl Lab {
    /// ICMP echo requests the workload's namespace received (`InEchos` of
    /// /proc/net/snmp, per namespace): unlike the interface's packet counter
    /// it does not move with IPv6 neighbour discovery or MLD multicast, so it
    /// shows exactly whether pings arrived.
    pub fn echo_requests_received(&self, workload: &Workload) -> anyhow::Result<u64> {
        let out = self.exec(&workload.netns, "cat", &["/proc/net/snmp"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut icmp = text.lines().filter(|l| l.starts_with("Icmp:"));
        let (Some(names), Some(values)) = (icmp.next(), icmp.next()) else {
            bail!("no Icmp lines in /proc/net/snmp of {}", workload.netns);
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "InEchos")
            .and_then(|(_, v)| v.parse().ok())
            .context("InEchos in /proc/net/snmp")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            let _ = self.stop_agent(i);
        }
        for netns in self.namespaces.iter().rev() {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", netns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", netns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The public key (base64) of a secret.
fn x25519_public(secret: &StaticSecret) -> String {
    keyfile::encode_key(PublicKey::from(secret).as_bytes())
}

fn sh(args: &[&str]) -> anyhow::Result<()> {
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

fn ip(netns: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut full = vec!["ip", "-n", netns];
    full.extend_from_slice(args);
    sh(&full)
}

/// Polls `check` until it gives a value, fails, or `timeout` passes; the pause
/// between checks grows from 5 ms to 100 ms, so a quick condition is seen quickly.
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
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
    if dir.ends_with("release") {
        cargo.arg("--release");
    }
    let status = cargo.status().context("running cargo build")?;
    anyhow::ensure!(status.success(), "building pisek-agent failed");
    Ok(())
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
