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
//!           fd00:10:1:1::/64              fd00:10:1:0::/64        fd00:10:1:2::/64
//!      conference: the same          conference: the same    conference: the same
//!      2 workloads per tenant        1 per tenant: the       2 workloads per tenant
//!                                    datacenter service
//! ```
//! Every tenant is dual stack, and city and conference overlap on purpose in
//! both families (same prefixes, same addresses): isolation must come from
//! the VRFs, never from the addresses, for IPv6 as for IPv4. The IPv6 prefix
//! mirrors the IPv4 one (`fd00:10:1:<node>::/64` beside `10.1.<node>.0/24`).
//! WireGuard is hub and spoke (each gateway has the edge as its only peer);
//! iBGP runs over the tunnel network with the edge as route reflector: the
//! edge agent itself, or gobgpd beside it ([`Reflector`]).
//! Dropping the [`Lab`] stops the agents and deletes every namespace and
//! the temporary directory.

use anyhow::{Context, bail};
use pisek_agent::keyfile;
use pisek_overlay::wg::{PublicKey, StaticSecret};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    /// `gobgpd` on the edge's tunnel address, reflecting between its three
    /// clients: the two gateways and the edge agent, whose speaker only
    /// connects out (`bgp.listen = false`) because gobgpd owns TCP 179 there.
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
    /// The IPv4 address the agent gave it.
    pub address: Ipv4Addr,
    /// The IPv6 address the agent gave it (every lab tenant is dual stack).
    pub address_v6: Ipv6Addr,
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
    gobgpd: Option<Child>,
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
            gobgpd: None,
        };
        lab.build_underlay(tag)?;
        lab.write_configs(tag)?;
        // The edge first: its agent brings up pisek0 with the tunnel address
        // that gobgpd binds to, and gobgpd is there before the gateways call.
        lab.start_agent(0)?;
        if reflector == Reflector::Gobgpd {
            lab.start_gobgpd()?;
        }
        for i in 1..lab.nodes.len() {
            lab.start_agent(i)?;
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
            let edge = &self.nodes[0];
            match (i, self.reflector) {
                (0, Reflector::Agent) => {
                    for p in &peers {
                        let peer = &self.nodes[*p];
                        text.push_str(&format!(
                            "\n[[bgp.neighbor]]\naddress = \"{}\"\nname = \"{}\"\npassive = true\n",
                            peer.tunnel_address, peer.name
                        ));
                    }
                }
                // A client of gobgpd, which owns TCP 179 of this very
                // address: the agent connects from it to it.
                (0, Reflector::Gobgpd) => text.push_str(&format!(
                    "listen = false\nroute_reflector = false\n\n[[bgp.neighbor]]\naddress = \"{}\"\nname = \"gobgpd\"\n",
                    edge.tunnel_address
                )),
                (_, reflector) => {
                    let name = match reflector {
                        Reflector::Agent => "edge",
                        Reflector::Gobgpd => "gobgpd",
                    };
                    text.push_str(&format!(
                        "\n[[bgp.neighbor]]\naddress = \"{}\"\nname = \"{name}\"\n",
                        edge.tunnel_address
                    ));
                }
            }
            // The edge carries the tenants too: the datacenter services
            // (carbon, APIs) attach there, in 10.1.0.0/24 and fd00:10:1:0::/64.
            for (tenant, id) in TENANTS {
                text.push_str(&format!(
                    "\n[[tenant]]\nname = \"{tenant}\"\nid = {id}\nexport_route_targets = [\"65000:{id}\"]\nimport_route_targets = [\"65000:{id}\"]\nprefixes = [\"{}\", \"{}\"]\n",
                    prefix_v4(i),
                    prefix_v6(i)
                ));
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

    /// gobgpd in the edge's namespace on the edge's tunnel address,
    /// reflecting VPNv4/VPNv6 routes (RFC 4456) between its three clients:
    /// gw1, gw2 and the edge agent. All three connect to it (passive here).
    ///
    /// The edge agent connects from the very address gobgpd listens on
    /// (its tunnel address, 10.255.0.1 -> 10.255.0.1:179 over the kernel's
    /// local route): gobgpd 3.x takes a neighbor equal to its own listen
    /// address and matches the accepted connection by its source address,
    /// so no extra address is needed. What must differ is the BGP
    /// identifier: the agent's is its tunnel address, so gobgpd takes the
    /// edge's underlay address as router id and cluster id (two speakers
    /// with one identifier fail OPEN, RFC 6286 §2.2).
    fn start_gobgpd(&mut self) -> anyhow::Result<()> {
        let edge = &self.nodes[0];
        let addr = IpAddr::V4(edge.tunnel_address);
        let router_id = Ipv4Addr::new(172, 16, 0, 2);
        let config = GobgpdConfig {
            asn: 65000,
            router_id,
            listen: addr,
            cluster_id: Some(router_id),
            neighbors: self
                .nodes
                .iter()
                .map(|node| GobgpdNeighbor {
                    address: IpAddr::V4(node.tunnel_address),
                    rr_client: true,
                    passive: true,
                })
                .collect(),
        };
        let path = self.dir.join("gobgpd.toml");
        std::fs::write(&path, config.to_toml())?;
        let api = "127.0.0.1:50051".parse()?;
        let child = spawn_gobgpd(Some(&edge.netns), &path, api, &self.dir.join("gobgpd.log"))?;
        self.gobgpd = Some(child);
        let netns = edge.netns.clone();
        poll("gobgpd's API", Duration::from_secs(10), || {
            if let Some(status) = self
                .gobgpd
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "gobgpd exited with {status}; log:\n{}",
                    std::fs::read_to_string(self.dir.join("gobgpd.log")).unwrap_or_default()
                );
            }
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &netns,
                    "gobgp",
                    "-u",
                    "127.0.0.1",
                    "-p",
                    "50051",
                    "global",
                ])
                .stdin(Stdio::null())
                .output()?;
            Ok(out.status.success().then_some(()))
        })
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
            let status = terminate(&mut child)?;
            if !status.success() {
                bail!("pisek-agent on {} exited with {status}", self.nodes[i].name);
            }
        }
        Ok(())
    }

    /// Attaches WORKLOADS_PER_TENANT namespaces per tenant on each gateway
    /// and one per tenant on the edge (the datacenter service).
    fn attach_workloads(&mut self, tag: &str) -> anyhow::Result<()> {
        for g in 0..self.nodes.len() {
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
                    let addresses: Vec<IpAddr> = answer["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.as_str()?.split('/').next()?.parse().ok())
                        .collect();
                    let address = addresses
                        .iter()
                        .find_map(|a| match a {
                            IpAddr::V4(a) => Some(*a),
                            IpAddr::V6(_) => None,
                        })
                        .with_context(|| format!("no IPv4 address in attach answer: {out}"))?;
                    let address_v6 = addresses
                        .iter()
                        .find_map(|a| match a {
                            IpAddr::V6(a) => Some(*a),
                            IpAddr::V4(_) => None,
                        })
                        .with_context(|| format!("no IPv6 address in attach answer: {out}"))?;
                    self.workloads.push(Workload {
                        gateway,
                        tenant: tenant.to_string(),
                        netns,
                        address,
                        address_v6,
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the edge carries tenants with a datacenter-service workload
    /// each (`workload("edge", tenant, 1)`): always, with either reflector.
    pub fn has_dc_services(&self) -> bool {
        true
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
    /// every agent's BGP session is established (with the edge agent or with
    /// gobgpd) and each node has every other node's IPv4 and IPv6 routes in
    /// both tenants.
    pub fn wait_until_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        self.wait_for_control_plane(timeout)
            .with_context(|| format!("agents' logs:\n{}", self.logs()))
    }

    /// The last lines of every agent's log (and gobgpd's, if it runs).
    pub fn logs(&self) -> String {
        let mut text = String::new();
        let mut names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        if self.gobgpd.is_some() {
            names.push("gobgpd");
        }
        for name in names {
            let log =
                std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            text.push_str(&format!("--- {name}\n"));
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
            for i in 0..self.nodes.len() {
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
            "VPNv4 and VPNv6 routes to every other node's prefixes in every tenant",
            timeout,
            || {
                for g in 0..self.nodes.len() {
                    for (tenant, _) in TENANTS {
                        let routes = self.pisekctl(g, &["routes", "--tenant", tenant, "--json"])?;
                        for other in (0..self.nodes.len()).filter(|&o| o != g) {
                            for prefix in [prefix_v4(other), prefix_v6(other)] {
                                if !routes.contains(&format!("\"{prefix}\"")) {
                                    return Ok(None);
                                }
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

    /// `ping -c count` from `from` to `to` (IPv4 or IPv6): the summary line,
    /// and whether every reply came back.
    pub fn ping(
        &self,
        from: &Workload,
        to: impl Into<IpAddr>,
        count: u32,
    ) -> anyhow::Result<(bool, String)> {
        let to: IpAddr = to.into();
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
    /// Node `i`'s Prometheus page (`/metrics` on the agent's default
    /// loopback address, 127.0.0.1:9469, inside the node's namespace).
    pub fn metrics(&self, i: usize) -> anyhow::Result<String> {
        let out = self.exec(
            &self.nodes[i].netns,
            "python3",
            &[
                "-c",
                "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9469/metrics',timeout=5).read().decode())",
            ],
        )?;
        if !out.status.success() {
            bail!(
                "metrics of {}: {}",
                self.nodes[i].name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The value of the first sample on node `i`'s metrics page whose line
    /// starts with `sample` (name and labels), if there is one.
    pub fn metric(&self, i: usize, sample: &str) -> anyhow::Result<Option<u64>> {
        Ok(self
            .metrics(i)?
            .lines()
            .find(|l| l.starts_with(sample))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok()))
    }

    /// Node `i`'s drop counter for `reason`, of `tenant` (`None`: the
    /// node-wide row), from `pisekctl drops --json`.
    pub fn drops(&self, i: usize, tenant: Option<&str>, reason: &str) -> anyhow::Result<u64> {
        let answer = self.json(i, &["drops", "--json"])?;
        answer
            .as_array()
            .and_then(|rows| {
                rows.iter()
                    .find(|d| d["reason"] == reason && d["tenant"].as_str() == tenant)
            })
            .and_then(|d| d["packets"].as_u64())
            .with_context(|| format!("no {reason} row for {tenant:?} on node {i}: {answer}"))
    }

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

    /// ICMPv6 echo requests the workload's namespace received
    /// (`Icmp6InEchos` of /proc/net/snmp6, one `name value` line per
    /// counter): the IPv6 twin of [`Lab::echo_requests_received`].
    pub fn echo6_requests_received(&self, workload: &Workload) -> anyhow::Result<u64> {
        let out = self.exec(&workload.netns, "cat", &["/proc/net/snmp6"])?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(char::is_whitespace))
            .find(|(name, _)| *name == "Icmp6InEchos")
            .and_then(|(_, v)| v.trim().parse().ok())
            .with_context(|| format!("Icmp6InEchos in /proc/net/snmp6 of {}", workload.netns))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            let _ = self.stop_agent(i);
        }
        if let Some(mut gobgpd) = self.gobgpd.take() {
            let _ = gobgpd.kill();
            let _ = gobgpd.wait();
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

/// Stops a process of ours as an operator does: SIGTERM, then SIGKILL if
/// it is still there after a few seconds (a hung process must not hang the
/// lab's teardown).
pub(crate) fn terminate(child: &mut Child) -> anyhow::Result<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exited = poll("a process to exit", Duration::from_secs(5), || {
        Ok(child.try_wait()?)
    });
    match exited {
        Ok(status) => Ok(status),
        Err(_) => {
            child.kill()?;
            Ok(child.wait()?)
        }
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

/// This node's IPv4 prefix in every tenant (the tenants overlap).
fn prefix_v4(node: usize) -> String {
    format!("10.1.{node}.0/24")
}

/// This node's IPv6 prefix in every tenant, mirroring [`prefix_v4`]:
/// `fd00:10:1:<node>::/64`, written as the agent prints it (node 0's is
/// `fd00:10:1::/64`).
fn prefix_v6(node: usize) -> String {
    let node = u16::try_from(node).unwrap_or(u16::MAX);
    format!("{}/64", Ipv6Addr::new(0xfd00, 0x10, 1, node, 0, 0, 0, 0))
}

/// A gobgpd configuration for Pisek's overlay: one iBGP speaker carrying
/// VPNv4 and VPNv6 (l3vpn-ipv4/ipv6-unicast) with graceful restart on every
/// neighbor, optionally reflecting. The lab's edge and the BGP interop tests
/// (`tests/bgp_support/`) write theirs with it.
#[derive(Debug, Clone)]
pub struct GobgpdConfig {
    /// The AS of everyone (iBGP).
    pub asn: u32,
    /// gobgpd's BGP identifier.
    pub router_id: Ipv4Addr,
    /// The address gobgpd binds TCP 179 to, and connects from.
    pub listen: IpAddr,
    /// The cluster id of its reflector clients (RFC 4456 §7); `None`
    /// leaves `route-reflector-cluster-id` to gobgpd's default, the router id.
    pub cluster_id: Option<Ipv4Addr>,
    /// Its neighbors.
    pub neighbors: Vec<GobgpdNeighbor>,
}

/// One neighbor of a [`GobgpdConfig`].
#[derive(Debug, Clone)]
pub struct GobgpdNeighbor {
    /// The neighbor's address.
    pub address: IpAddr,
    /// A route-reflector client of gobgpd.
    pub rr_client: bool,
    /// gobgpd waits for the neighbor to connect.
    pub passive: bool,
}

impl GobgpdConfig {
    /// The config file (`gobgpd -t toml`). Test timers: hold time 9 s,
    /// keepalive 3 s, connect retry 1 s, so a session comes up (or is seen
    /// to be down) in seconds.
    pub fn to_toml(&self) -> String {
        let (asn, addr) = (self.asn, self.listen);
        let mut conf = format!(
            "[global.config]\n  as = {asn}\n  router-id = \"{}\"\n  port = 179\n  local-address-list = [\"{addr}\"]\n",
            self.router_id
        );
        for n in &self.neighbors {
            conf.push_str(&format!(
                r#"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{a}"
    peer-as = {asn}
  [neighbors.transport.config]
    local-address = "{addr}"
    passive-mode = {passive}
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
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
                a = n.address,
                passive = n.passive,
            ));
            if n.rr_client {
                let cluster = self.cluster_id.unwrap_or(self.router_id);
                conf.push_str(&format!(
                    "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = \"{cluster}\"\n"
                ));
            }
        }
        conf
    }
}

/// Starts `gobgpd -f config` (in `netns`, if given) with its gRPC API on
/// `api`, stdout and stderr into `log`.
pub fn spawn_gobgpd(
    netns: Option<&str>,
    config: &Path,
    api: std::net::SocketAddr,
    log: &Path,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    let mut command = match netns {
        Some(netns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", netns, "gobgpd"]);
            c
        }
        None => Command::new("gobgpd"),
    };
    command
        .args(["-t", "toml", "-f"])
        .arg(config)
        .args(["--api-hosts", &api.to_string(), "--pprof-disable"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting gobgpd")
}
