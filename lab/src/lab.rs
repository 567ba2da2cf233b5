//! The two-gateway lab: an edge, two gateways and their workloads in
//! network namespaces, each node running a real `pisek-agent`. Used by
//! `examples/two_gateways.rs` (to show it) and `tests/two_gateways.rs` (to
//! prove it), so both see the same topology. The topology itself (underlay,
//! configs, workloads) is in `topology.rs`; what a test reads from a running
//! lab (pings, counters, metrics) in `probes.rs`.
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
//! edge agent itself, or gobgpd or BIRD beside it ([`Reflector`]).
//! Dropping the [`Lab`] stops the agents and deletes every namespace and
//! the temporary directory.

pub mod faults;
mod probes;
mod topology;

use crate::binaries::Binaries;
use crate::gobgpd::{GobgpdConfig, GobgpdNeighbor, spawn_gobgpd};
use crate::netns::Netns;
use crate::poll::poll;
use crate::process::terminate;
use anyhow::{Context, bail};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use probes::longest_ping_gap;
pub use topology::{prefix_v4, prefix_v6};

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
    /// BIRD 2 in the same place, the same way.
    Bird,
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
    /// Its agent process; behind a lock so that a running lab (borrowed by
    /// its sensors) can still restart an agent on demand.
    agent: std::sync::Mutex<Option<Child>>,
}

impl Node {
    fn lock_agent(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        // A panic while holding it leaves a plain Option: still usable.
        self.agent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The agent's pid, while it runs.
    pub fn agent_pid(&self) -> Option<u32> {
        self.lock_agent().as_ref().map(Child::id)
    }
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
    namespaces: Vec<Netns>,
    reflector: Reflector,
    gateways: usize,
    tenants: Vec<(String, u32)>,
    /// `dataplane.workers` of every agent (0: the agent's default).
    workers: usize,
    /// The reflector daemon (gobgpd or BIRD), when it is not the agent.
    daemon: Option<Child>,
}

/// The shape of a lab: how many gateways, who reflects the routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabOptions {
    /// Gateways behind the edge (1 to 200).
    pub gateways: usize,
    /// Tenants on every node (1 to 16): `city` and `conference` (which
    /// overlap), then `t3`, `t4`, ... with the same prefixes again.
    pub tenants: usize,
    /// Who reflects the gateways' routes.
    pub reflector: Reflector,
    /// Forwarding workers of every agent (`dataplane.workers`); 0 leaves
    /// the agent's default (one per CPU).
    pub workers: usize,
}

impl Default for LabOptions {
    fn default() -> LabOptions {
        LabOptions {
            gateways: 2,
            tenants: TENANTS.len(),
            reflector: Reflector::Agent,
            workers: 0,
        }
    }
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
        Lab::start_opts(
            tag,
            binaries,
            LabOptions {
                reflector,
                ..LabOptions::default()
            },
        )
    }

    /// [`Lab::start`] in the shape of `options`.
    pub fn start_opts(tag: &str, binaries: Binaries, options: LabOptions) -> anyhow::Result<Lab> {
        let reflector = options.reflector;
        anyhow::ensure!(
            (1..=200).contains(&options.gateways),
            "a lab has 1 to 200 gateways, not {}",
            options.gateways
        );
        anyhow::ensure!(
            (1..=16).contains(&options.tenants),
            "a lab has 1 to 16 tenants, not {}",
            options.tenants
        );
        let tenants = (1..=options.tenants as u32)
            .map(|id| match TENANTS.get(id as usize - 1) {
                Some((name, id)) => (name.to_string(), *id),
                None => (format!("t{id}"), id),
            })
            .collect();
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
            gateways: options.gateways,
            workers: options.workers,
            tenants,
            daemon: None,
        };
        lab.build_underlay(tag)?;
        lab.write_configs(tag)?;
        // The edge first: its agent brings up pisek0 with the tunnel address
        // that gobgpd binds to, and gobgpd is there before the gateways call.
        lab.start_agent(0)?;
        match reflector {
            Reflector::Gobgpd => lab.start_gobgpd()?,
            Reflector::Bird => lab.start_bird()?,
            Reflector::Agent => {}
        }
        for i in 1..lab.nodes.len() {
            lab.start_agent(i)?;
        }
        lab.attach_workloads(tag)?;
        std::fs::write(
            lab.dir.join("lab.json"),
            serde_json::to_vec_pretty(&lab.describe())?,
        )?;
        Ok(lab)
    }

    /// Where everything is, for a person at a second terminal: every node's
    /// namespace, API socket, config, log and agent pid, every workload's
    /// namespace and addresses. Written as `lab.json` next to the configs.
    pub fn describe(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "name": n.name,
                    "netns": n.netns,
                    "tunnel_address": n.tunnel_address,
                    "socket": n.socket,
                    "config": n.config,
                    "log": self.dir.join(format!("{}.log", n.name)),
                    "agent_pid": n.agent_pid(),
                })
            })
            .collect();
        let workloads: Vec<serde_json::Value> = self
            .workloads
            .iter()
            .map(|w| {
                serde_json::json!({
                    "node": w.gateway,
                    "tenant": w.tenant,
                    "netns": w.netns,
                    "addresses": [w.address.to_string(), w.address_v6.to_string()],
                })
            })
            .collect();
        serde_json::json!({
            "dir": self.dir,
            "reflector": match self.reflector {
                Reflector::Agent => "edge agent",
                Reflector::Gobgpd => "gobgpd",
                Reflector::Bird => "bird",
            },
            "nodes": nodes,
            "workloads": workloads,
        })
    }

    /// BIRD in the edge's namespace on the edge's tunnel address, as
    /// [`Lab::start_gobgpd`] runs gobgpd: route reflector (RFC 4456) of the
    /// gateways and the edge agent over vpn4/vpn6 channels, next hops
    /// resolved over the tunnel network (`pisek0`).
    fn start_bird(&mut self) -> anyhow::Result<()> {
        let edge = &self.nodes[0];
        let (addr, router_id) = (edge.tunnel_address, Ipv4Addr::new(172, 16, 0, 2));
        let mut conf = format!(
            r#"router id {router_id};
log "{log}" all;
vpn4 table vpntab4;
vpn6 table vpntab6;
protocol device {{ }}
protocol direct {{ ipv4; interface "pisek0"; }}
template bgp rrclient {{
  local {addr} as 65000;
  rr client;
  rr cluster id {router_id};
  passive on;
  hold time 30;
  graceful restart on;
  vpn4 mpls {{ table vpntab4; import all; export all; igp table master4; }};
  vpn6 mpls {{ table vpntab6; import all; export all; igp table master4; extended next hop on; }};
}}
"#,
            log = self.dir.join("bird.log").display()
        );
        for node in &self.nodes {
            conf.push_str(&format!(
                "protocol bgp {} from rrclient {{ neighbor {} as 65000; }}\n",
                node.name, node.tunnel_address
            ));
        }
        let config = self.dir.join("bird.conf");
        let socket = self.dir.join("bird.ctl");
        std::fs::write(&config, conf)?;
        let log = std::fs::File::create(self.dir.join("bird.stderr"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &edge.netns, "bird", "-f", "-c"])
            .arg(&config)
            .arg("-s")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting bird")?;
        self.daemon = Some(child);
        poll("BIRD's control socket", Duration::from_secs(10), || {
            let out = Command::new("birdc")
                .arg("-s")
                .arg(&socket)
                .arg("show status")
                .stdin(Stdio::null())
                .output()?;
            Ok(out.status.success().then_some(()))
        })
    }

    /// gobgpd in the edge's namespace on the edge's tunnel address,
    /// reflecting VPNv4/VPNv6 routes (RFC 4456) between its three clients:
    /// the gateways and the edge agent. All connect to it (passive here).
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
                    peer_as: None,
                })
                .collect(),
        };
        let path = self.dir.join("gobgpd.toml");
        std::fs::write(&path, config.to_toml())?;
        let api = "127.0.0.1:50051".parse()?;
        let child = spawn_gobgpd(Some(&edge.netns), &path, api, &self.dir.join("gobgpd.log"))?;
        self.daemon = Some(child);
        let netns = edge.netns.clone();
        poll("gobgpd's API", Duration::from_secs(10), || {
            if let Some(status) = self
                .daemon
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
    pub fn start_agent(&self, i: usize) -> anyhow::Result<()> {
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
        *self.nodes[i].lock_agent() = Some(child);
        let socket = self.nodes[i].socket.clone();
        poll(
            &format!("{}'s API socket", self.nodes[i].name),
            Duration::from_secs(10),
            || {
                let exited = self.nodes[i]
                    .lock_agent()
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if let Some(status) = exited {
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
    pub fn stop_agent(&self, i: usize) -> anyhow::Result<()> {
        let child = self.nodes[i].lock_agent().take();
        if let Some(mut child) = child {
            let status = terminate(&mut child)?;
            if !status.success() {
                bail!("pisek-agent on {} exited with {status}", self.nodes[i].name);
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

    /// The last lines of every agent's log (and the reflector daemon's).
    pub fn logs(&self) -> String {
        let mut text = String::new();
        let mut names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        match self.reflector {
            Reflector::Gobgpd => names.push("gobgpd"),
            Reflector::Bird => names.push("bird"),
            Reflector::Agent => {}
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
                    for (tenant, _) in &self.tenants {
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

    /// The lab's tenants: (name, id).
    pub fn tenants(&self) -> &[(String, u32)] {
        &self.tenants
    }

    /// A workload by gateway, tenant and number (1-based).
    pub fn workload(&self, gateway: &str, tenant: &str, n: usize) -> &Workload {
        self.workloads
            .iter()
            .filter(|w| w.gateway == gateway && w.tenant == tenant)
            .nth(n - 1)
            .unwrap_or_else(|| panic!("no workload {gateway}/{tenant}/{n}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            let _ = self.stop_agent(i);
        }
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        // Workloads before their gateways, the WAN last: each namespace
        // kills what runs inside it and goes.
        while let Some(netns) = self.namespaces.pop() {
            drop(netns);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
