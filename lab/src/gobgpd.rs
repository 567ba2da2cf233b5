//! gobgpd as a peer: the config Pisek's overlay needs (VPNv4 and VPNv6 with
//! graceful restart, optionally reflecting), starting it, and [`Gobgp`], a
//! gobgpd driven through its `gobgp` CLI. The lab's edge
//! ([`Reflector::Gobgpd`](crate::Reflector::Gobgpd)) and the BGP interop
//! tests (`tests/bgp_gobgp.rs`) run it alike.

use crate::bgp_speaker::{AS, common_poll};
use crate::process::Daemon;
use anyhow::Context;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A gobgpd configuration for Pisek's overlay: one iBGP speaker carrying
/// VPNv4 and VPNv6 (l3vpn-ipv4/ipv6-unicast) with graceful restart on every
/// neighbor, optionally reflecting. The lab's edge and the BGP interop tests
/// (through [`Gobgp`]) write theirs with it.
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
    /// The neighbor's AS; `None`: gobgpd's own (iBGP).
    pub peer_as: Option<u32>,
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
    peer-as = {peer_as}
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
                peer_as = n.peer_as.unwrap_or(asn),
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

/// gobgpd on `addr` with its gRPC API on `addr:50051`.
pub struct Gobgp {
    /// Its router id, listen address and API address.
    pub addr: IpAddr,
    /// The running daemon, if it runs.
    pub daemon: Option<Daemon>,
    /// Its config file.
    pub config: PathBuf,
}

impl Gobgp {
    /// The config file, written with [`GobgpdConfig`] (so the interop
    /// tests and the lab run gobgpd alike): router id and listen
    /// address `addr`, cluster id `cluster_id` or `addr`.
    pub fn write_config(
        dir: &Path,
        addr: IpAddr,
        neighbors: &[GobgpdNeighbor],
        cluster_id: Option<IpAddr>,
    ) -> PathBuf {
        Gobgp::write_config_in_as(dir, addr, AS, neighbors, cluster_id)
    }

    /// [`Gobgp::write_config`] for a gobgpd in AS `asn` (an external peer
    /// of the speakers in [`AS`]).
    pub fn write_config_in_as(
        dir: &Path,
        addr: IpAddr,
        asn: u32,
        neighbors: &[GobgpdNeighbor],
        cluster_id: Option<IpAddr>,
    ) -> PathBuf {
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => panic!("gobgpd's router and cluster ids are IPv4: {a}"),
        };
        let config = GobgpdConfig {
            asn,
            router_id: v4(addr),
            listen: addr,
            cluster_id: cluster_id.map(v4),
            neighbors: neighbors.to_vec(),
        };
        let path = dir.join(format!("gobgpd-{addr}.toml"));
        std::fs::write(&path, config.to_toml()).expect("write gobgpd config");
        path
    }

    /// Writes the config and starts gobgpd; waits for its API.
    pub fn start(
        dir: &Path,
        addr: IpAddr,
        neighbors: &[GobgpdNeighbor],
        cluster_id: Option<IpAddr>,
    ) -> Gobgp {
        Gobgp::start_config(addr, Gobgp::write_config(dir, addr, neighbors, cluster_id))
    }

    /// Starts gobgpd in AS `asn` with `neighbors` (eBGP when their AS
    /// differs).
    pub fn start_in_as(dir: &Path, addr: IpAddr, asn: u32, neighbors: &[GobgpdNeighbor]) -> Gobgp {
        Gobgp::start_config(
            addr,
            Gobgp::write_config_in_as(dir, addr, asn, neighbors, None),
        )
    }

    fn start_config(addr: IpAddr, config: PathBuf) -> Gobgp {
        let mut g = Gobgp {
            addr,
            daemon: None,
            config,
        };
        g.restart();
        g
    }

    /// (Re)starts the daemon.
    pub fn restart(&mut self) {
        self.daemon = None;
        let child = spawn_gobgpd(
            None,
            &self.config,
            std::net::SocketAddr::new(self.addr, 50051),
            &self.config.with_extension("log"),
        )
        .expect("start gobgpd");
        self.daemon = Some(Daemon {
            child,
            name: "gobgpd",
        });
        let addr = self.addr;
        common_poll("gobgpd API", || gobgp_cli(addr, &["global"]).ok());
    }

    /// Kills the daemon (as a crash).
    pub fn kill(&mut self) {
        self.daemon = None;
    }

    /// `gobgp ARGS` against this daemon; panics if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        gobgp_cli(self.addr, args).unwrap_or_else(|e| panic!("gobgp {args:?}: {e}"))
    }

    /// `gobgp global rib -a FAMILY -j` parsed.
    pub fn rib(&self, family: &str) -> serde_json::Value {
        let out = self.cli(&["global", "rib", "-a", family, "-j"]);
        serde_json::from_str(&out).unwrap_or(serde_json::Value::Null)
    }

    /// The neighbour's state as gobgp names it ("established", ...).
    pub fn neighbor_state(&self, neighbor: IpAddr) -> String {
        let out =
            gobgp_cli(self.addr, &["neighbor", &neighbor.to_string(), "-j"]).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        v["state"]["session_state"]
            .as_i64()
            .map(|s| s.to_string())
            .unwrap_or_default()
    }
}

/// A VPN route as `gobgp global rib -a FAMILY add|del` takes it.
pub struct GobgpVpnRoute<'a> {
    /// "vpnv4" or "vpnv6".
    pub family: &'a str,
    /// The IP prefix.
    pub prefix: &'a str,
    /// The MPLS label.
    pub label: u32,
    /// The route distinguisher.
    pub rd: &'a str,
    /// The route target.
    pub rt: &'a str,
    /// The next hop.
    pub next_hop: IpAddr,
}

impl Gobgp {
    /// Originates `route` from gobgp's global RIB.
    pub fn add_route(&self, route: &GobgpVpnRoute) {
        self.change_route("add", route);
    }

    /// Withdraws `route` from gobgp's global RIB.
    pub fn del_route(&self, route: &GobgpVpnRoute) {
        self.change_route("del", route);
    }

    fn change_route(&self, verb: &str, route: &GobgpVpnRoute) {
        let (label, next_hop) = (route.label.to_string(), route.next_hop.to_string());
        self.cli(&[
            "global",
            "rib",
            "-a",
            route.family,
            verb,
            route.prefix,
            "label",
            &label,
            "rd",
            route.rd,
            "rt",
            route.rt,
            "nexthop",
            &next_hop,
        ]);
    }
}

/// `gobgp ARGS` against the gobgpd whose API is on `addr:50051`: its stdout,
/// or its stderr as the error.
pub fn gobgp_cli(addr: IpAddr, args: &[&str]) -> Result<String, String> {
    let out = Command::new("gobgp")
        .args(["-u", &addr.to_string(), "-p", "50051"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// One path as `gobgp global rib -j` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GobgpPath {
    /// "RD:prefix" as gobgp keys it.
    pub key: String,
    /// Its labels.
    pub labels: Vec<u64>,
    /// MP_REACH's next hop.
    pub next_hop: String,
    /// Its route targets.
    pub route_targets: Vec<String>,
    /// Marked stale (graceful restart).
    pub stale: bool,
    /// ORIGINATOR_ID, if present.
    pub originator_id: Option<String>,
    /// CLUSTER_LIST, if present.
    pub cluster_list: Vec<String>,
}

impl Gobgp {
    /// Waits until gobgp's global RIB of `family` holds exactly `count`
    /// paths, and returns them.
    pub fn wait_paths(&self, what: &str, family: &str, count: usize) -> Vec<GobgpPath> {
        common_poll(what, || {
            let paths = self.paths(family);
            (paths.len() == count).then_some(paths)
        })
    }

    /// Every path in gobgp's global RIB of a family ("vpnv4", "vpnv6").
    pub fn paths(&self, family: &str) -> Vec<GobgpPath> {
        parse_rib(&self.rib(family))
    }
}

/// The paths of `gobgp global rib -a <family> -j` output, sorted by key;
/// none when it is not a JSON object.
pub fn parse_rib(rib: &serde_json::Value) -> Vec<GobgpPath> {
    let mut out = Vec::new();
    let Some(map) = rib.as_object() else {
        return out;
    };
    for (key, paths) in map {
        for p in paths.as_array().into_iter().flatten() {
            let labels = p["nlri"]["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_u64())
                .collect();
            let attrs = p["attrs"].as_array().cloned().unwrap_or_default();
            let next_hop = attrs
                .iter()
                .find(|a| a["type"] == 14)
                .and_then(|a| a["nexthop"].as_str())
                .unwrap_or_default()
                .to_string();
            let route_targets = attrs
                .iter()
                .filter(|a| a["type"] == 16)
                .flat_map(|a| a["value"].as_array().cloned().unwrap_or_default())
                .filter(|c| c["subtype"] == 2)
                .filter_map(|c| c["value"].as_str().map(str::to_string))
                .collect();
            let originator_id = attrs
                .iter()
                .find(|a| a["type"] == 9)
                .and_then(|a| a["value"].as_str())
                .map(str::to_string);
            let cluster_list = attrs
                .iter()
                .filter(|a| a["type"] == 10)
                .flat_map(|a| a["value"].as_array().cloned().unwrap_or_default())
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect();
            out.push(GobgpPath {
                key: key.clone(),
                labels,
                next_hop,
                route_targets,
                stale: p["stale"].as_bool().unwrap_or(false),
                originator_id,
                cluster_list,
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}
