//! `pisekctl`: the operator's command line for a running agent.
//!
//! Every command talks to the agent's API socket and prints an aligned table,
//! or, with `--json`, the API's result as JSON.
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use pisek_api::{
    ApiClient, Attachment, BgpSessionInfo, Detached, DropCounter, PeerInfo, Request, RibRoute,
    RouteInfo, Status, VrfInfo,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Pisek operator CLI.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Path of the agent's API socket.
    #[arg(long, global = true, default_value = "/run/pisek/agent.sock")]
    socket: PathBuf,
    /// Print the agent's answer as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum BgpCommand {
    /// Every path of the BGP RIB, as `show bgp vpnv4 all` lists it: RD,
    /// prefix, next hop, labels, route targets, the peer it came from,
    /// best (`*>`) or not (`*`), stale (`S`), age.
    Rib {
        /// Only the paths this tenant's VRF imports.
        #[arg(long)]
        vrf: Option<String>,
        /// Only `vpnv4` or `vpnv6`.
        #[arg(long)]
        family: Option<String>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// The agent's summary.
    Status,
    /// Attached endpoints.
    Endpoints,
    /// Tenants' VRFs: label, kernel table, TUN, prefixes.
    Vrfs,
    /// Routes of a tenant (all tenants without --tenant).
    Routes {
        /// Tenant name.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// WireGuard peers: handshakes, packets and bytes each way, endpoint
    /// changes, drops by reason.
    Peers,
    /// BGP sessions; `bgp rib` lists every path of the RIB.
    Bgp {
        #[command(subcommand)]
        what: Option<BgpCommand>,
    },
    /// Drop counters by reason: the node's total (tenant `-`) and each
    /// tenant's (rows at zero left out; `--json` lists them all).
    Drops,
    /// Attach a network namespace to a tenant, as a pod.
    Attach {
        /// Path of the namespace (`/run/netns/NAME`).
        #[arg(long)]
        netns: PathBuf,
        /// Tenant name.
        #[arg(long)]
        tenant: String,
        /// Container id; by default `netns-<name of the namespace file>`.
        #[arg(long)]
        container_id: Option<String>,
        /// Interface name inside the namespace.
        #[arg(long, default_value = "eth0")]
        ifname: String,
        /// Request this address (at most one per family; repeatable). One
        /// outside the tenant's prefix on this node is advertised as a host route.
        #[arg(long = "address", value_name = "ADDRESS")]
        addresses: Vec<std::net::IpAddr>,
    },
    /// Detach a namespace (by --netns as attached with `attach`, or by --container-id).
    Detach {
        /// Path of the namespace.
        #[arg(long, required_unless_present = "container_id")]
        netns: Option<PathBuf>,
        /// Container id.
        #[arg(long)]
        container_id: Option<String>,
        /// Interface name inside the namespace.
        #[arg(long, default_value = "eth0")]
        ifname: String,
    },
    /// Compare an attachment with the live system.
    Check {
        /// Path of the namespace.
        #[arg(long, required_unless_present = "container_id")]
        netns: Option<PathBuf>,
        /// Container id.
        #[arg(long)]
        container_id: Option<String>,
        /// Interface name inside the namespace.
        #[arg(long, default_value = "eth0")]
        ifname: String,
    },
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("pisekctl: {e:#}");
        std::process::exit(1);
    }
}

/// The container id `pisekctl attach --netns` uses for a namespace.
fn container_id_for(netns: &Path) -> anyhow::Result<String> {
    let name = netns
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("--netns has no file name")?;
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(format!("netns-{clean}"))
}

fn key(netns: &Option<PathBuf>, container_id: &Option<String>) -> anyhow::Result<String> {
    match (container_id, netns) {
        (Some(id), _) => Ok(id.clone()),
        (None, Some(path)) => container_id_for(path),
        (None, None) => bail!("give --netns or --container-id"),
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let mut client = ApiClient::connect(&args.socket)?;
    let json = args.json;
    match &args.command {
        Command::Status => show(&mut client, &Request::Status, json, status_table),
        Command::Endpoints => show(&mut client, &Request::Endpoints, json, endpoints_table),
        Command::Vrfs => show(&mut client, &Request::Vrfs, json, vrfs_table),
        Command::Routes { tenant } => {
            let request = Request::Routes {
                tenant: tenant.clone(),
            };
            show(&mut client, &request, json, routes_table)
        }
        Command::Peers => show(&mut client, &Request::Peers, json, peers_table),
        Command::Bgp { what: None } => show(&mut client, &Request::Bgp, json, bgp_table),
        Command::Bgp {
            what: Some(BgpCommand::Rib { vrf, family }),
        } => show(
            &mut client,
            &Request::BgpRib {
                vrf: vrf.clone(),
                family: family.clone(),
            },
            json,
            rib_table,
        ),
        Command::Drops => show(&mut client, &Request::Drops, json, drops_table),
        Command::Attach {
            netns,
            tenant,
            container_id,
            ifname,
            addresses,
        } => {
            let request = attach_request(netns, tenant, container_id, ifname, addresses)?;
            show(&mut client, &request, json, |a: Attachment| {
                endpoints_table(vec![a])
            })
        }
        Command::Detach {
            netns,
            container_id,
            ifname,
        } => {
            let request = Request::Detach {
                container_id: key(netns, container_id)?,
                ifname: ifname.clone(),
            };
            show(&mut client, &request, json, detached_text)
        }
        Command::Check {
            netns,
            container_id,
            ifname,
        } => {
            let request = Request::Check {
                container_id: key(netns, container_id)?,
                ifname: ifname.clone(),
            };
            show(&mut client, &request, json, |a: Attachment| {
                format!("{} {}: ok\n", a.container_id, a.ifname)
            })
        }
    }
}

/// The `attach` request: the container id defaults to the namespace's.
fn attach_request(
    netns: &Path,
    tenant: &str,
    container_id: &Option<String>,
    ifname: &str,
    addresses: &[std::net::IpAddr],
) -> anyhow::Result<Request> {
    let container_id = match container_id {
        Some(id) => id.clone(),
        None => container_id_for(netns)?,
    };
    Ok(Request::Attach {
        container_id,
        netns: netns.to_path_buf(),
        ifname: ifname.to_string(),
        tenant: tenant.to_string(),
        addresses: addresses.to_vec(),
        mtu: None,
        owner: Some("pisekctl".into()),
    })
}

/// Calls the agent and prints the result as JSON or through `render`.
fn show<T: DeserializeOwned + Serialize>(
    client: &mut ApiClient,
    request: &Request,
    json: bool,
    render: impl FnOnce(T) -> String,
) -> anyhow::Result<()> {
    let result: T = client.call(request)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", render(result));
    }
    Ok(())
}

fn status_table(s: Status) -> String {
    table(
        &[
            "NODE",
            "ROLE",
            "TUNNEL",
            "TENANTS",
            "ENDPOINTS",
            "DATAPLANE",
            "UPTIME",
            "VERSION",
        ],
        vec![vec![
            s.node,
            s.role,
            s.tunnel_address.to_string(),
            s.tenants.to_string(),
            s.endpoints.to_string(),
            if s.dataplane {
                "running"
            } else {
                "not running"
            }
            .into(),
            format!("{}s", s.uptime_secs),
            s.version,
        ]],
    )
}

fn vrfs_table(vrfs: Vec<VrfInfo>) -> String {
    table(
        &[
            "TENANT",
            "ID",
            "LABEL",
            "TABLE",
            "TUN",
            "PREFIXES",
            "EXPORT RT",
            "IMPORT RT",
            "ENDPOINTS",
        ],
        vrfs.into_iter()
            .map(|v| {
                vec![
                    v.tenant,
                    v.id.to_string(),
                    opt(v.label),
                    v.table.to_string(),
                    v.tun,
                    v.prefixes.join(","),
                    v.export_route_targets.join(","),
                    v.import_route_targets.join(","),
                    v.endpoints.to_string(),
                ]
            })
            .collect(),
    )
}

fn routes_table(routes: Vec<RouteInfo>) -> String {
    table(
        &[
            "TENANT",
            "PREFIX",
            "SOURCE",
            "INTERFACE",
            "NEXT HOP",
            "LABEL",
        ],
        routes
            .into_iter()
            .map(|r| {
                vec![
                    r.tenant,
                    r.prefix,
                    r.source,
                    r.interface.unwrap_or_else(|| "-".into()),
                    opt(r.next_hop),
                    opt(r.label),
                ]
            })
            .collect(),
    )
}

/// The RIB grouped by route distinguisher, in the shape of `show bgp vpnv4
/// all` (Cisco, FRR): status codes, network, next hop, labels, targets,
/// where it came from, age.
fn rib_table(routes: Vec<RibRoute>) -> String {
    let mut out = String::from("Status codes: * valid, > best, S stale\n");
    let mut rds: Vec<&str> = routes.iter().map(|r| r.rd.as_str()).collect();
    rds.dedup();
    let mut seen = std::collections::BTreeSet::new();
    for rd in rds {
        if !seen.insert(rd) {
            continue;
        }
        out.push_str(&format!("\nRoute Distinguisher: {rd}\n"));
        let rows = routes
            .iter()
            .filter(|r| r.rd == rd)
            .map(|r| {
                vec![
                    format!(
                        "*{}{}",
                        if r.best { ">" } else { " " },
                        if r.stale { "S" } else { "" }
                    ),
                    r.prefix.clone(),
                    r.next_hop.map_or("-".into(), |a| a.to_string()),
                    r.labels
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join("/"),
                    r.route_targets.join(" "),
                    match &r.peer {
                        Some(name) => format!("{} ({name})", r.from),
                        None => r.from.clone(),
                    },
                    age(r.age_secs),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "",
                "NETWORK",
                "NEXT HOP",
                "LABELS",
                "ROUTE TARGETS",
                "FROM",
                "AGE",
            ],
            rows,
        ));
    }
    out
}

/// `hh:mm:ss`, or `NdHHh` past a day, as routers print a route's age.
fn age(secs: u64) -> String {
    if secs >= 86_400 {
        format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600)
    } else {
        format!(
            "{:02}:{:02}:{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    }
}

fn bgp_table(sessions: Vec<BgpSessionInfo>) -> String {
    table(
        &[
            "NEIGHBOR",
            "NAME",
            "STATE",
            "UPTIME",
            "RECEIVED",
            "ADVERTISED",
        ],
        sessions
            .into_iter()
            .map(|b| {
                vec![
                    b.neighbor.to_string(),
                    b.name.unwrap_or_else(|| "-".into()),
                    b.state,
                    b.uptime_secs.map_or("-".into(), |s| format!("{s}s")),
                    b.received.to_string(),
                    b.advertised.to_string(),
                ]
            })
            .collect(),
    )
}

fn detached_text(d: Detached) -> String {
    match d.removed {
        Some(a) => format!("detached {} ({})\n", a.container_id, a.addresses.join(", ")),
        None => "nothing was attached\n".into(),
    }
}

fn peers_table(peers: Vec<PeerInfo>) -> String {
    table(
        &[
            "PEER",
            "ENDPOINT",
            "TUNNEL",
            "HANDSHAKE",
            "HANDSHAKES",
            "RX PACKETS",
            "RX BYTES",
            "TX PACKETS",
            "TX BYTES",
            "ROAMED",
            "DROPS",
            "KEY",
        ],
        peers
            .into_iter()
            .map(|p| {
                let drops = p
                    .drops
                    .iter()
                    .map(|(reason, packets)| format!("{reason}={packets}"))
                    .collect::<Vec<_>>()
                    .join(",");
                vec![
                    p.name,
                    p.endpoint.unwrap_or_else(|| "-".into()),
                    p.tunnel_address.to_string(),
                    p.last_handshake_secs
                        .map_or("never".into(), |s| format!("{s}s ago")),
                    p.handshakes.to_string(),
                    p.rx_packets.to_string(),
                    p.rx_bytes.to_string(),
                    p.tx_packets.to_string(),
                    p.tx_bytes.to_string(),
                    p.endpoint_changes.to_string(),
                    if drops.is_empty() { "-".into() } else { drops },
                    p.public_key,
                ]
            })
            .collect(),
    )
}

/// The node's total for every reason, each followed by the tenants that
/// dropped packets for it (tenant rows at zero are left out of the table;
/// `--json` has every row).
fn drops_table(drops: Vec<DropCounter>) -> String {
    table(
        &["REASON", "TENANT", "PACKETS"],
        drops
            .into_iter()
            .filter(|d| d.tenant.is_none() || d.packets > 0)
            .map(|d| {
                vec![
                    d.reason,
                    d.tenant.unwrap_or_else(|| "-".into()),
                    d.packets.to_string(),
                ]
            })
            .collect(),
    )
}

fn endpoints_table(endpoints: Vec<Attachment>) -> String {
    table(
        &[
            "CONTAINER",
            "IFNAME",
            "TENANT",
            "ADDRESSES",
            "HOST IF",
            "MAC",
            "MTU",
            "NETNS",
        ],
        endpoints
            .into_iter()
            .map(|a| {
                vec![
                    a.container_id,
                    a.ifname,
                    a.tenant,
                    a.addresses.join(","),
                    a.host_ifname,
                    a.mac.unwrap_or_else(|| "-".into()),
                    a.mtu.to_string(),
                    a.netns.display().to_string(),
                ]
            })
            .collect(),
    )
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// Left-aligned columns, two spaces apart, header first.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn drop_row(reason: &str, tenant: Option<&str>, packets: u64) -> DropCounter {
        DropCounter {
            reason: reason.into(),
            tenant: tenant.map(str::to_string),
            packets,
        }
    }

    #[test]
    fn drops_table_keeps_every_node_row_and_only_tenant_rows_with_drops() {
        let text = drops_table(vec![
            drop_row("no-route", None, 0),
            drop_row("no-route", Some("city"), 0),
            drop_row("spoofed-source", None, 3),
            drop_row("spoofed-source", Some("city"), 3),
            drop_row("spoofed-source", Some("conference"), 0),
        ]);
        assert_eq!(
            text,
            "REASON          TENANT  PACKETS\n\
             no-route        -       0\n\
             spoofed-source  -       3\n\
             spoofed-source  city    3\n"
        );
    }

    #[test]
    fn peers_table_shows_packets_handshakes_and_drops_by_reason() {
        let text = peers_table(vec![PeerInfo {
            name: "edge".into(),
            public_key: "a2V5".into(),
            endpoint: None,
            tunnel_address: "10.255.0.1".parse().expect("address"),
            last_handshake_secs: Some(4),
            rx_bytes: 840,
            tx_bytes: 1680,
            rx_packets: 10,
            tx_packets: 20,
            handshakes: 2,
            endpoint_changes: 1,
            drops: BTreeMap::from([("decrypt-failed".into(), 2), ("replay".into(), 1)]),
        }]);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| {
                l.split("  ")
                    .filter(|c| !c.is_empty())
                    .map(str::trim)
                    .collect()
            })
            .collect();
        assert_eq!(
            lines,
            [
                vec![
                    "PEER",
                    "ENDPOINT",
                    "TUNNEL",
                    "HANDSHAKE",
                    "HANDSHAKES",
                    "RX PACKETS",
                    "RX BYTES",
                    "TX PACKETS",
                    "TX BYTES",
                    "ROAMED",
                    "DROPS",
                    "KEY"
                ],
                vec![
                    "edge",
                    "-",
                    "10.255.0.1",
                    "4s ago",
                    "2",
                    "10",
                    "840",
                    "20",
                    "1680",
                    "1",
                    "decrypt-failed=2,replay=1",
                    "a2V5"
                ],
            ]
        );
    }
}
