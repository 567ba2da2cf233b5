//! Whole-config validation: every problem is collected, none stops the check,
//! so one run of the agent tells the operator everything to fix.

use super::schema::{Config, MAX_TENANT_ID, Role, TenantConfig};
use ipnetwork::IpNetwork;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

/// One thing wrong with a config: where (a dotted field path) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The field concerned, e.g. `tenant[1].prefixes[0]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Checks a parsed config; returns every problem found.
pub fn validate(config: &Config) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    node(config, &mut p);
    underlay_and_tunnel(config, &mut p);
    wireguard(config, &mut p);
    bgp(config, &mut p);
    tenants(config, &mut p);
    paths(config, &mut p);
    p.0
}

/// Names that end up in interface names, file names and metrics labels:
/// lowercase letters, digits, `-` and `.`, starting with a letter or digit.
fn check_name(p: &mut Problems, field: &str, name: &str, max: usize) {
    if name.is_empty() {
        p.add(field, "must not be empty");
    } else if name.len() > max {
        p.add(field, format!("`{name}` is longer than {max} characters"));
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        p.add(
            field,
            format!("`{name}` may hold only a-z, 0-9, `-` and `.`, and must start with a letter or digit"),
        );
    }
}

fn node(config: &Config, p: &mut Problems) {
    check_name(p, "node.name", &config.node.name, 63);
}

fn underlay_and_tunnel(config: &Config, p: &mut Problems) {
    // Below 1280 IPv6 cannot run inside the overlay (RFC 8200 §5).
    let mtu = config.underlay.mtu;
    if !(1280..=65535).contains(&mtu) {
        p.add("underlay.mtu", format!("{mtu} is outside 1280..=65535"));
    }
    if config.underlay.listen.port() == 0 {
        p.add(
            "underlay.listen",
            "needs a port (peers must know where to send)",
        );
    }
    let tunnel = &config.tunnel;
    check_network_address(p, "tunnel.network", tunnel.network);
    if !tunnel.network.contains(tunnel.address) {
        p.add(
            "tunnel.address",
            format!(
                "{} is not inside tunnel.network {}",
                tunnel.address, tunnel.network
            ),
        );
    }
}

/// WireGuard keys are 32 bytes, base64 with padding: 44 characters ending in `=`.
pub(crate) fn looks_like_wireguard_key(key: &str) -> bool {
    let key = key.trim();
    key.len() == 44
        && key.ends_with('=')
        && key[..43]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

fn wireguard(config: &Config, p: &mut Problems) {
    let wg = &config.wireguard;
    match read_key_file(&wg.private_key_file) {
        Err(e) => p.add(
            "wireguard.private_key_file",
            format!("cannot read {}: {e}", wg.private_key_file.display()),
        ),
        Ok(key) if !looks_like_wireguard_key(&key) => p.add(
            "wireguard.private_key_file",
            format!(
                "{} does not hold a base64 WireGuard key (44 characters, as `wg genkey` writes)",
                wg.private_key_file.display()
            ),
        ),
        Ok(_) => {}
    }
    if config.node.role == Role::Gateway && wg.peers.is_empty() {
        p.add(
            "wireguard.peer",
            "a gateway needs at least one edge router as peer",
        );
    }
    let mut names = BTreeSet::new();
    let mut keys = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    for (i, peer) in wg.peers.iter().enumerate() {
        let at = format!("wireguard.peer[{i}]");
        check_name(p, &format!("{at}.name"), &peer.name, 63);
        if !names.insert(&peer.name) {
            p.add(
                format!("{at}.name"),
                format!("`{}` is used by another peer", peer.name),
            );
        }
        if !looks_like_wireguard_key(&peer.public_key) {
            p.add(
                format!("{at}.public_key"),
                "is not a base64 WireGuard key (44 characters, as `wg pubkey` writes)",
            );
        } else if !keys.insert(peer.public_key.trim()) {
            p.add(format!("{at}.public_key"), "is the key of another peer");
        }
        if config.node.role == Role::Gateway && peer.endpoint.is_none() {
            p.add(
                format!("{at}.endpoint"),
                "is required on a gateway (the gateway initiates towards the edge)",
            );
        }
        if !config.tunnel.network.contains(peer.tunnel_address) {
            p.add(
                format!("{at}.tunnel_address"),
                format!(
                    "{} is not inside tunnel.network {}",
                    peer.tunnel_address, config.tunnel.network
                ),
            );
        } else if peer.tunnel_address == config.tunnel.address {
            p.add(
                format!("{at}.tunnel_address"),
                "is this node's own tunnel address",
            );
        } else if !addresses.insert(peer.tunnel_address) {
            p.add(
                format!("{at}.tunnel_address"),
                "is the address of another peer",
            );
        }
    }
}

/// Reads at most a few hundred bytes: a key is 44, and a mistyped path such as
/// `/dev/zero` must not hang or exhaust the agent.
fn read_key_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(256)
        .read_to_string(&mut text)?;
    Ok(text)
}

fn bgp(config: &Config, p: &mut Problems) {
    let bgp = &config.bgp;
    // AS 0 is reserved (RFC 7607); 23456 is AS_TRANS (RFC 6793 §9).
    if bgp.asn == 0 || bgp.asn == 23456 {
        p.add("bgp.asn", format!("{} is reserved", bgp.asn));
    }
    if bgp.router_id.is_none() && !config.tunnel.address.is_ipv4() {
        p.add(
            "bgp.router_id",
            "is required when the tunnel address is IPv6 (a BGP identifier is 32 bits)",
        );
    }
    if let Some(id) = bgp.router_id
        && (id.is_unspecified() || id.is_broadcast())
    {
        p.add("bgp.router_id", format!("{id} cannot be a BGP identifier"));
    }
    // RFC 4271 §4.2: the hold time is zero or at least three seconds.
    if bgp.hold_time_secs != 0 && bgp.hold_time_secs < 3 {
        p.add(
            "bgp.hold_time_secs",
            "must be 0 or at least 3 (RFC 4271 §4.2)",
        );
    }
    // RFC 4724 §3: the restart time is a 12-bit field.
    if bgp.restart_time_secs > 4095 {
        p.add(
            "bgp.restart_time_secs",
            "must be at most 4095 (RFC 4724 §3)",
        );
    }
    let reflector = bgp.is_route_reflector(config.node.role);
    if bgp.neighbors.is_empty() && !reflector && bgp.speaker {
        p.add(
            "bgp.neighbor",
            "a node that is not the route reflector needs at least one neighbor",
        );
    } else if bgp.neighbors.is_empty() && !bgp.listen && bgp.speaker {
        p.add(
            "bgp.neighbor",
            "with bgp.listen = false the speaker only connects out: it needs at least one neighbor",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, n) in bgp.neighbors.iter().enumerate() {
        let at = format!("bgp.neighbor[{i}]");
        // Our own address is a neighbor only when a reflector daemon on this
        // node owns port 179 there and the agent is its client (listen = false).
        if n.address == config.tunnel.address && bgp.listen {
            p.add(
                format!("{at}.address"),
                "is this node's own tunnel address (only a client with bgp.listen = false may peer with a reflector daemon there)",
            );
        } else if !seen.insert(n.address) {
            p.add(
                format!("{at}.address"),
                format!("{} is listed twice", n.address),
            );
        }
        if n.passive && !bgp.listen {
            p.add(
                format!("{at}.passive"),
                "a passive neighbor needs bgp.listen = true (with listen = false nothing would accept its connection)",
            );
        }
        // 0 and AS_TRANS are never a real AS (RFC 7607, RFC 6793 §9).
        if let Some(asn @ (0 | 23456)) = n.remote_as {
            p.add(
                format!("{at}.remote_as"),
                format!("{asn} is not a usable AS number"),
            );
        }
    }
}

fn tenants(config: &Config, p: &mut Problems) {
    let mut names = BTreeMap::new();
    let mut ids = BTreeMap::new();
    let mut namespaces = BTreeMap::new();
    for (i, t) in config.tenants.iter().enumerate() {
        let at = format!("tenant[{i}]");
        check_name(p, &format!("{at}.name"), &t.name, 32);
        if let Some(first) = names.insert(&t.name, i) {
            p.add(
                format!("{at}.name"),
                format!("`{}` is also the name of tenant[{first}]", t.name),
            );
        }
        if t.id == 0 || t.id > MAX_TENANT_ID {
            p.add(
                format!("{at}.id"),
                format!("{} is outside 1..={MAX_TENANT_ID}", t.id),
            );
        } else if let Some(first) = ids.insert(t.id, i) {
            p.add(
                format!("{at}.id"),
                format!("{} is also the id of tenant[{first}]", t.id),
            );
        }
        tenant_prefixes(t, &at, &config.tunnel.network, p);
        for (j, rt) in t.export_route_targets.iter().enumerate() {
            check_route_target(p, &format!("{at}.export_route_targets[{j}]"), rt);
        }
        for (j, rt) in t.import_route_targets.iter().enumerate() {
            check_route_target(p, &format!("{at}.import_route_targets[{j}]"), rt);
        }
        for (j, ns) in t.namespaces.iter().enumerate() {
            if let Some(other) = namespaces.insert(ns.as_str(), t.name.as_str())
                && other != t.name
            {
                p.add(
                    format!("{at}.namespaces[{j}]"),
                    format!("`{ns}` is already mapped to tenant `{other}`"),
                );
            }
        }
    }
}

fn tenant_prefixes(t: &TenantConfig, at: &str, tunnel: &IpNetwork, p: &mut Problems) {
    if t.prefixes.is_empty() {
        p.add(
            format!("{at}.prefixes"),
            "needs this node's prefix for the tenant",
        );
    }
    let (mut v4, mut v6) = (0, 0);
    for (j, prefix) in t.prefixes.iter().enumerate() {
        let field = format!("{at}.prefixes[{j}]");
        check_network_address(p, &field, *prefix);
        match prefix {
            IpNetwork::V4(n) => {
                v4 += 1;
                // A /31 or /32 leaves no address once the network address is skipped.
                if n.prefix() > 30 {
                    p.add(
                        &field,
                        format!("{prefix} is too small for workloads (at most /30)"),
                    );
                }
            }
            IpNetwork::V6(n) => {
                v6 += 1;
                if n.prefix() > 126 {
                    p.add(
                        &field,
                        format!("{prefix} is too small for workloads (at most /126)"),
                    );
                }
            }
        }
        if prefix.overlaps_with(tunnel) {
            p.add(&field, format!("{prefix} overlaps tunnel.network {tunnel}"));
        }
    }
    if v4 > 1 || v6 > 1 {
        p.add(
            format!("{at}.prefixes"),
            "holds at most one IPv4 and one IPv6 prefix per node",
        );
    }
}

trait Overlaps {
    fn overlaps_with(&self, other: &IpNetwork) -> bool;
}

impl Overlaps for IpNetwork {
    fn overlaps_with(&self, other: &IpNetwork) -> bool {
        match (self, other) {
            (IpNetwork::V4(a), IpNetwork::V4(b)) => a.overlaps(*b),
            (IpNetwork::V6(a), IpNetwork::V6(b)) => a.overlaps(*b),
            _ => false,
        }
    }
}

/// A prefix must be written as its network address (`10.1.0.0/24`, not
/// `10.1.0.5/24`), or an operator's typo silently changes the pool.
fn check_network_address(p: &mut Problems, field: &str, net: IpNetwork) {
    if net.ip() != net.network() {
        p.add(
            field,
            format!(
                "{net} has host bits set; did you mean {}/{}?",
                net.network(),
                net.prefix()
            ),
        );
    }
}

/// Route targets as operators write them (RFC 4360 §4): `<asn>:<n>` (two- or
/// four-octet AS) or `<ipv4>:<n>`.
fn check_route_target(p: &mut Problems, field: &str, rt: &str) {
    let ok = match rt.rsplit_once(':') {
        Some((admin, assigned)) => {
            if admin.parse::<std::net::Ipv4Addr>().is_ok() {
                assigned.parse::<u16>().is_ok()
            } else if let Ok(asn) = admin.parse::<u32>() {
                if asn <= u32::from(u16::MAX) {
                    assigned.parse::<u32>().is_ok()
                } else {
                    assigned.parse::<u16>().is_ok()
                }
            } else {
                false
            }
        }
        None => false,
    };
    if !ok {
        p.add(
            field,
            format!("`{rt}` is not a route target (`<asn>:<n>` or `<ipv4>:<n>`)"),
        );
    }
}

fn paths(config: &Config, p: &mut Problems) {
    check_absolute(p, "api.socket", &config.api.socket);
    if config.api.vanished_sweep_secs == 0 {
        p.add("api.vanished_sweep_secs", "must be at least 1");
    }
    check_absolute(p, "state.dir", &config.state.dir);
    check_absolute(
        p,
        "wireguard.private_key_file",
        &config.wireguard.private_key_file,
    );
    let metrics: IpAddr = config.metrics.listen.ip();
    if !metrics.is_loopback() {
        p.add(
            "metrics.listen",
            format!("{metrics} is not a loopback address (metrics are not for the network)"),
        );
    }
    if config.dataplane.workers > super::schema::MAX_WORKERS {
        p.add(
            "dataplane.workers",
            format!("at most {} (0: one per CPU)", super::schema::MAX_WORKERS),
        );
    }
    let queue = config.dataplane.tun_queue_len;
    if !(1..=super::schema::MAX_TUN_QUEUE_LEN).contains(&queue) {
        p.add(
            "dataplane.tun_queue_len",
            format!(
                "{queue} packets: from 1 to {}",
                super::schema::MAX_TUN_QUEUE_LEN
            ),
        );
    }
    if let Some(level) = &config.log.level
        && level.trim().is_empty()
    {
        p.add("log.level", "must not be empty (leave it out for `info`)");
    }
}

fn check_absolute(p: &mut Problems, field: &str, path: &Path) {
    if !path.is_absolute() {
        p.add(field, format!("{} is not an absolute path", path.display()));
    }
}
