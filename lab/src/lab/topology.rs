//! The lab's topology: the WAN router and the three nodes behind it, each
//! node's keys and `agent.toml` (written with the agent's config fixture),
//! and the workloads attached through each agent's API.

use super::{Lab, Node, Reflector, WORKLOADS_PER_TENANT, Workload};
use crate::netns::Netns;
use crate::process::sh;
use anyhow::Context;
use pisek_agent::config::Role;
use pisek_agent::config::fixture::{AgentToml, BgpNeighborToml, TenantToml, WireguardPeerToml};
use pisek_agent::keyfile;
use pisek_overlay::wg::{PublicKey, StaticSecret};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

impl Lab {
    /// The WAN router and each node behind its own subnet.
    pub(super) fn build_underlay(&mut self, tag: &str) -> anyhow::Result<()> {
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
        let names: Vec<String> = std::iter::once("edge".to_string())
            .chain((1..=self.gateways).map(|n| format!("gw{n}")))
            .collect();
        for (i, name) in names.iter().enumerate() {
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
                agent: std::sync::Mutex::new(None),
            });
        }
        Ok(())
    }

    /// A namespace of the lab, deleted with it (a stale one of the same
    /// name, left by a run that was killed, is replaced).
    fn add_netns(&mut self, name: &str) -> anyhow::Result<()> {
        self.namespaces.push(Netns::named(name)?);
        Ok(())
    }

    /// Keys and agent.toml for every node.
    pub(super) fn write_configs(&self, tag: &str) -> anyhow::Result<()> {
        let mut public = Vec::new();
        for node in &self.nodes {
            let secret = keyfile::generate()?;
            let key = self.dir.join(format!("{}.key", node.name));
            keyfile::save(&key, &secret)?;
            let pk = x25519_public(&secret);
            public.push((key, pk));
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let role = if i == 0 { Role::Edge } else { Role::Gateway };
            let mut config = AgentToml::new(
                format!("{tag}-{}", node.name),
                role,
                node.tunnel_address,
                &public[i].0,
            )
            .underlay_listen(format!("172.16.{i}.2:51820"));
            let peers: Vec<usize> = if i == 0 {
                (1..self.nodes.len()).collect()
            } else {
                vec![0]
            };
            for p in &peers {
                let peer = &self.nodes[*p];
                let mut wg = WireguardPeerToml::new(&peer.name, &public[*p].1, peer.tunnel_address);
                if i != 0 {
                    // Gateways know the edge's endpoint and keep their NAT
                    // mapping open; the edge learns theirs from their packets.
                    wg = wg
                        .endpoint(format!("172.16.{p}.2:51820"))
                        .keepalive_secs(25);
                }
                config = config.peer(wg);
            }
            config = config.hold_time_secs(30);
            if self.workers > 0 {
                config = config.workers(self.workers);
            }
            let edge = &self.nodes[0];
            match (i, self.reflector) {
                (0, Reflector::Agent) => {
                    for p in &peers {
                        let peer = &self.nodes[*p];
                        config = config.neighbor(
                            BgpNeighborToml::new(peer.tunnel_address)
                                .name(&peer.name)
                                .passive(),
                        );
                    }
                }
                // A client of the reflector daemon, which owns TCP 179 of
                // this very address: the agent connects from it to it.
                (0, daemon @ (Reflector::Gobgpd | Reflector::Bird)) => {
                    let name = if daemon == Reflector::Bird {
                        "bird"
                    } else {
                        "gobgpd"
                    };
                    config = config
                        .bgp_listen(false)
                        .route_reflector(false)
                        .neighbor(BgpNeighborToml::new(edge.tunnel_address).name(name));
                }
                (_, reflector) => {
                    let name = match reflector {
                        Reflector::Agent => "edge",
                        Reflector::Gobgpd => "gobgpd",
                        Reflector::Bird => "bird",
                    };
                    config = config.neighbor(BgpNeighborToml::new(edge.tunnel_address).name(name));
                }
            }
            // The edge carries the tenants too: the datacenter services
            // (carbon, APIs) attach there, in 10.1.0.0/24 and fd00:10:1:0::/64.
            for (tenant, id) in &self.tenants {
                config = config.tenant(
                    TenantToml::new(tenant, *id)
                        .route_target(format!("65000:{id}"))
                        .prefixes([prefix_v4(i), prefix_v6(i)]),
                );
            }
            config
                .api_socket(&node.socket)
                .state_dir(self.dir.join(format!("{}-state", node.name)))
                .write(&node.config)?;
        }
        Ok(())
    }

    /// Attaches WORKLOADS_PER_TENANT namespaces per tenant on each gateway
    /// and one per tenant on the edge (the datacenter service).
    pub(super) fn attach_workloads(&mut self, tag: &str) -> anyhow::Result<()> {
        for g in 0..self.nodes.len() {
            let count = if g == 0 { 1 } else { WORKLOADS_PER_TENANT };
            for (tenant, _) in self.tenants.clone() {
                let tenant = tenant.as_str();
                for n in 1..=count {
                    let gateway = self.nodes[g].name.clone();
                    let short = tenant.get(..4).unwrap_or(tenant);
                    let netns = format!("{tag}-{gateway}-{short}{n}");
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
}

/// The public key (base64) of a secret.
fn x25519_public(secret: &StaticSecret) -> String {
    keyfile::encode_key(PublicKey::from(secret).as_bytes())
}

/// Runs `ip -n NETNS ARGS`; an error with ip's message if it fails.
fn ip(netns: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut full = vec!["ip", "-n", netns];
    full.extend_from_slice(args);
    sh(&full)
}

/// This node's IPv4 prefix in every tenant (the tenants overlap).
pub fn prefix_v4(node: usize) -> String {
    format!("10.1.{node}.0/24")
}

/// This node's IPv6 prefix in every tenant, mirroring [`prefix_v4`]:
/// `fd00:10:1:<node>::/64`, written as the agent prints it (node 0's is
/// `fd00:10:1::/64`).
pub fn prefix_v6(node: usize) -> String {
    let node = u16::try_from(node).unwrap_or(u16::MAX);
    format!("{}/64", Ipv6Addr::new(0xfd00, 0x10, 1, node, 0, 0, 0, 0))
}
