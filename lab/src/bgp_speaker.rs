//! Shared pieces of the BGP interop tests: unique loopback addresses, a
//! Pisek speaker in its own runtime, and gobgpd / BIRD as child processes.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use pisek::lab::{GobgpdConfig, GobgpdNeighbor, spawn_gobgpd};
use pisek_agent::bgp::{Bgp, BgpConfig, BgpHandle, RouteEvent};
use pisek_overlay::bgp::fsm::GracefulRestartConfig;
use pisek_overlay::bgp::packet::{Family, RouteDistinguisher, RouteTarget};
use pisek_overlay::bgp::policy::VrfConfig;
use pisek_overlay::bgp::speaker::{PeerConfig, SpeakerConfig};
use tokio::runtime::Runtime;

pub const AS: u32 = 65000;
/// Tests fail fast: a session is up in about a second with these timers.
pub const WAIT: Duration = Duration::from_secs(20);

/// A /24 of loopback addresses of our own: 127.<pid>.<n>.0/24, so tests in
/// parallel (threads and processes) never share an address or a port.
pub struct Loopback {
    pub base: [u8; 3],
}

impl Loopback {
    pub fn new() -> Loopback {
        static NEXT: AtomicU8 = AtomicU8::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = (std::process::id() % 250) as u8 + 2;
        Loopback {
            base: [127, pid, n],
        }
    }

    pub fn v4(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.base[0], self.base[1], self.base[2], host)
    }

    pub fn ip(&self, host: u8) -> IpAddr {
        IpAddr::V4(self.v4(host))
    }
}

pub fn rt(s: &str) -> RouteTarget {
    s.parse().expect("route target")
}

pub fn rd(s: &str) -> RouteDistinguisher {
    s.parse().expect("route distinguisher")
}

/// A tenant with one import and export target.
pub fn vrf(tenant: u32, rd_text: &str, target: &str) -> VrfConfig {
    VrfConfig {
        tenant,
        rd: rd(rd_text),
        import: vec![rt(target)],
        export: vec![rt(target)],
    }
}

/// Speaker settings with test timers (hold 9 s, retry from 200 ms).
pub fn speaker_config(router_id: Ipv4Addr) -> SpeakerConfig {
    SpeakerConfig {
        local_as: AS,
        router_id,
        next_hop: IpAddr::V4(router_id),
        hold_time: 9,
        connect_retry: Duration::from_millis(200),
        connect_retry_max: Duration::from_secs(2),
        mrai: Duration::ZERO,
        graceful_restart: Some(GracefulRestartConfig {
            restart_time: 120,
            restarting: false,
        }),
        stale_routes_time: Duration::from_secs(30),
        selection_deferral_time: Duration::from_secs(20),
        cluster_id: None,
        families: vec![Family::VPNV4, Family::VPNV6],
    }
}

/// A Pisek speaker running in its own runtime, driven from a sync test.
pub struct Pisek {
    pub rt: Runtime,
    pub bgp: Bgp,
    pub events: tokio::sync::mpsc::UnboundedReceiver<RouteEvent>,
}

impl Pisek {
    /// Starts a speaker on `local` (port 179) peering with `peers` (port 179).
    pub fn start(
        speaker: SpeakerConfig,
        local: IpAddr,
        peers: &[IpAddr],
        vrfs: Vec<VrfConfig>,
    ) -> Pisek {
        let config = BgpConfig {
            speaker,
            local_address: local,
            listen_port: Some(179),
            peers: peers
                .iter()
                .map(|a| {
                    (
                        PeerConfig {
                            address: *a,
                            rr_client: false,
                            passive: false,
                        },
                        179,
                    )
                })
                .collect(),
            vrfs,
            routes: Vec::new(),
        };
        Pisek::start_with(config)
    }

    /// Starts a route reflector on `local` with every peer a client.
    pub fn start_reflector(
        mut speaker: SpeakerConfig,
        local: IpAddr,
        clients: &[IpAddr],
        cluster_id: Ipv4Addr,
    ) -> Pisek {
        speaker.cluster_id = Some(cluster_id);
        let config = BgpConfig {
            speaker,
            local_address: local,
            listen_port: Some(179),
            peers: clients
                .iter()
                .map(|a| {
                    (
                        PeerConfig {
                            address: *a,
                            rr_client: true,
                            passive: false,
                        },
                        179,
                    )
                })
                .collect(),
            vrfs: Vec::new(),
            routes: Vec::new(),
        };
        Pisek::start_with(config)
    }

    /// Starts a speaker that comes back from a restart (Restart State and
    /// Forwarding State bits set) with `routes` (tenant 1) advertised before
    /// its sessions come up.
    pub fn start_restarting(
        local: Ipv4Addr,
        peer: IpAddr,
        vrfs: Vec<VrfConfig>,
        routes: &[(&str, u32)],
    ) -> Pisek {
        let mut speaker = speaker_config(local);
        speaker.graceful_restart = Some(GracefulRestartConfig {
            restart_time: 120,
            restarting: true,
        });
        let config = BgpConfig {
            speaker,
            local_address: IpAddr::V4(local),
            listen_port: Some(179),
            peers: vec![(
                PeerConfig {
                    address: peer,
                    rr_client: false,
                    passive: false,
                },
                179,
            )],
            vrfs,
            routes: routes
                .iter()
                .map(|(p, l)| {
                    (
                        1,
                        p.parse().expect("prefix"),
                        pisek_overlay::packet::Label::new(*l).expect("label"),
                    )
                })
                .collect(),
        };
        Pisek::start_with(config)
    }

    pub fn start_with(config: BgpConfig) -> Pisek {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (bgp, events) = rt.block_on(async {
            let bgp = pisek_agent::bgp::spawn(config)
                .await
                .expect("start speaker");
            let events = bgp.handle.subscribe_tenant(1).await.expect("subscribe");
            (bgp, events)
        });
        Pisek { rt, bgp, events }
    }

    pub fn handle(&self) -> &BgpHandle {
        &self.bgp.handle
    }

    pub fn advertise(&self, tenant: u32, prefix: &str, label: u32) {
        let label = pisek_overlay::packet::Label::new(label).expect("label");
        self.rt
            .block_on(
                self.handle()
                    .advertise(tenant, prefix.parse().expect("prefix"), label),
            )
            .expect("advertise");
    }

    pub fn withdraw(&self, tenant: u32, prefix: &str) {
        self.rt
            .block_on(
                self.handle()
                    .withdraw(tenant, prefix.parse().expect("prefix")),
            )
            .expect("withdraw");
    }

    /// True when every peer is Established.
    pub fn established(&self) -> bool {
        let sessions = self
            .rt
            .block_on(self.handle().sessions())
            .unwrap_or_default();
        !sessions.is_empty()
            && sessions
                .iter()
                .all(|s| s.state == pisek_overlay::bgp::fsm::State::Established)
    }

    pub fn wait_established(&self) {
        common_poll("Pisek session Established", || {
            self.established().then_some(())
        });
    }

    /// Route events received so far.
    pub fn drain_events(&mut self) -> Vec<RouteEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    /// Waits for a route announcement; events before it are dropped.
    pub fn wait_announcement(&mut self, what: &str) -> RouteEvent {
        common_poll(what, || {
            self.drain_events().into_iter().find(|e| e.route.is_some())
        })
    }

    /// Waits for a route withdrawal; events before it are dropped.
    pub fn wait_withdrawal(&mut self, what: &str) -> RouteEvent {
        common_poll(what, || {
            self.drain_events().into_iter().find(|e| e.route.is_none())
        })
    }

    /// Waits for as many route events as `expected` lists, one route per
    /// family as (prefix, label, family), and checks they announce those
    /// routes into tenant 1 with route distinguisher `rd` and `next_hop`.
    pub fn expect_imported(
        &mut self,
        what: &str,
        rd: &str,
        next_hop: IpAddr,
        expected: &[(&str, u32, Family)],
    ) {
        let mut seen: Vec<RouteEvent> = Vec::new();
        common_poll(what, || {
            seen.extend(self.drain_events());
            (seen.len() >= expected.len()).then_some(())
        });
        seen.sort_by_key(|e| e.prefix.family());
        assert_eq!(seen.len(), expected.len(), "{seen:?}");
        for (e, &(prefix, label, family)) in seen.iter().zip(expected) {
            assert_eq!(e.tenant, 1);
            assert_eq!(e.prefix.rd.to_string(), rd);
            assert_eq!(e.prefix.prefix.to_string(), prefix);
            assert_eq!(e.prefix.family(), family);
            let route = e.route.as_ref().expect("an announcement");
            assert_eq!(route.label.value(), label);
            assert_eq!(route.next_hop, next_hop);
        }
    }

    /// Stops without a NOTIFICATION (a crash or restart).
    pub fn crash(self) {
        self.rt.block_on(async {
            self.bgp.handle.crash().await;
            let _ = self.bgp.task.await;
        });
    }
}

fn common_poll<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    super::common::poll_until(what, WAIT, check)
}

/// A child process killed on drop.
pub struct Daemon {
    pub child: Child,
    pub name: &'static str,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// gobgpd on `addr` with its gRPC API on `addr:50051`.
pub struct Gobgp {
    pub addr: IpAddr,
    pub daemon: Option<Daemon>,
    pub config: PathBuf,
}

/// One neighbour in a gobgpd config.
pub struct GobgpNeighbor {
    pub address: IpAddr,
    pub rr_client: bool,
}

impl Gobgp {
    /// The config file, written with the lab's [`GobgpdConfig`] (so the
    /// interop tests and the lab run gobgpd alike): router id and listen
    /// address `addr`, cluster id `cluster_id` or `addr`.
    pub fn write_config(
        dir: &Path,
        addr: IpAddr,
        neighbors: &[GobgpNeighbor],
        cluster_id: Option<IpAddr>,
    ) -> PathBuf {
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => panic!("gobgpd's router and cluster ids are IPv4: {a}"),
        };
        let config = GobgpdConfig {
            asn: AS,
            router_id: v4(addr),
            listen: addr,
            cluster_id: cluster_id.map(v4),
            neighbors: neighbors
                .iter()
                .map(|n| GobgpdNeighbor {
                    address: n.address,
                    rr_client: n.rr_client,
                    passive: false,
                })
                .collect(),
        };
        let path = dir.join(format!("gobgpd-{addr}.toml"));
        std::fs::write(&path, config.to_toml()).expect("write gobgpd config");
        path
    }

    pub fn start(
        dir: &Path,
        addr: IpAddr,
        neighbors: &[GobgpNeighbor],
        cluster_id: Option<IpAddr>,
    ) -> Gobgp {
        let config = Gobgp::write_config(dir, addr, neighbors, cluster_id);
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
    pub prefix: &'a str,
    pub label: u32,
    pub rd: &'a str,
    pub rt: &'a str,
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
    pub labels: Vec<u64>,
    pub next_hop: String,
    pub route_targets: Vec<String>,
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
        let rib = self.rib(family);
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
}

/// BIRD 2 in a network namespace of its own, joined to the test's (root)
/// namespace by a veth pair on a /29 of 198.18.0.0/15 (RFC 2544's
/// benchmarking range): Pisek is .1 on the root side, BIRD .2, and .3 is the
/// next hop of BIRD's own VPN routes.
pub struct Bird {
    pub ns: super::common::Netns,
    pub daemon: Option<Daemon>,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub pisek: Ipv4Addr,
    pub addr: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

impl Bird {
    /// Builds the namespace and link, and starts BIRD peering with Pisek
    /// over vpn4 and vpn6 channels. `statics4`/`statics6` are `route ...;`
    /// lines for static protocols in the VPN tables.
    pub fn start(dir: &Path, statics4: &[String], statics6: &[String]) -> Bird {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = [
            198,
            18 + (std::process::id() % 2) as u8,
            (std::process::id() / 2 % 256) as u8,
            n.wrapping_mul(8),
        ];
        let host = |h: u8| Ipv4Addr::new(base[0], base[1], base[2], base[3] + h);
        let (pisek, addr, gateway) = (host(1), host(2), host(3));
        let ns = super::common::Netns::new("bird");
        let root_if = super::common::unique_tag("pkb");
        super::common::run(
            "ip",
            [
                "link", "add", &root_if, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
            ],
        );
        super::common::run(
            "ip",
            ["addr", "add", &format!("{pisek}/29"), "dev", &root_if],
        );
        super::common::run("ip", ["link", "set", &root_if, "up"]);
        ns.ip(["addr", "add", &format!("{addr}/29"), "dev", "eth0"]);
        ns.ip(["link", "set", "eth0", "up"]);

        let config = dir.join(format!("bird-{addr}.conf"));
        let socket = dir.join(format!("bird-{addr}.ctl"));
        // "GW" in a route line stands for the gateway address.
        let line = |r: &String| format!("  {}\n", r.replace("GW", &gateway.to_string()));
        let routes4: String = statics4.iter().map(line).collect();
        let routes6: String = statics6.iter().map(line).collect();
        let conf = format!(
            r#"router id {addr};
log "{log}" all;
vpn4 table vpntab4;
vpn6 table vpntab6;
protocol device {{ }}
protocol static static_vpn4 {{
  vpn4 {{ table vpntab4; }};
{routes4}}}
protocol static static_vpn6 {{
  vpn6 {{ table vpntab6; }};
{routes6}}}
protocol bgp pisek {{
  local {addr} as {AS};
  neighbor {pisek} as {AS};
  direct;
  hold time 9;
  keepalive time 3;
  connect retry time 1;
  error wait time 1, 2;
  graceful restart on;
  vpn4 mpls {{ table vpntab4; import all; export all; gateway direct; }};
  # VPNv6 over this IPv4 session: IPv4 next hops (RFC 4659 §3.2.1.2, RFC 8950).
  vpn6 mpls {{ table vpntab6; import all; export all; gateway direct; extended next hop on; }};
}}
"#,
            log = dir.join(format!("bird-{addr}.log")).display(),
        );
        std::fs::write(&config, conf).expect("write bird config");
        let mut b = Bird {
            ns,
            daemon: None,
            config,
            socket,
            pisek,
            addr,
            gateway,
        };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        self.daemon = None;
        let child = self
            .ns
            .command("bird")
            .args([
                "-f",
                "-c",
                &self.config.to_string_lossy(),
                "-s",
                &self.socket.to_string_lossy(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bird");
        self.daemon = Some(Daemon {
            child,
            name: "bird",
        });
        common_poll("BIRD control socket", || {
            self.birdc(&["show", "status"]).ok()
        });
    }

    pub fn kill(&mut self) {
        self.daemon = None;
    }

    pub fn birdc(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("birdc")
            .args(["-s", &self.socket.to_string_lossy()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && !text.contains("Unable to connect") {
            Ok(text)
        } else {
            Err(text + &String::from_utf8_lossy(&out.stderr))
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        self.birdc(args)
            .unwrap_or_else(|e| panic!("birdc {args:?}: {e}"))
    }

    /// True when BIRD's session to Pisek is Established.
    pub fn established(&self) -> bool {
        self.birdc(&["show", "protocols", "pisek"])
            .is_ok_and(|s| s.contains("Established"))
    }

    /// `show route all table T` split into one block per route.
    pub fn routes(&self, table: &str) -> Vec<String> {
        let out = self
            .birdc(&["show", "route", "all", "table", table])
            .unwrap_or_default();
        let mut blocks: Vec<String> = Vec::new();
        for line in out.lines().skip(1) {
            if line.starts_with("Table ") || line.trim().is_empty() {
                continue;
            }
            if line.starts_with(|c: char| c.is_ascii_digit()) {
                blocks.push(line.to_string());
            } else if let Some(last) = blocks.last_mut() {
                last.push('\n');
                last.push_str(line.trim());
            }
        }
        blocks
    }
}

/// The /24 network address of a loopback address.
fn net_base(addr: IpAddr) -> Ipv4Addr {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            Ipv4Addr::new(o[0], o[1], o[2], 0)
        }
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// A hand-driven BGP peer on a raw TCP connection, for feeding Pisek
/// malformed messages. It listens on its address; Pisek connects to it.
pub struct RawPeer {
    pub stream: std::net::TcpStream,
    pub buf: Vec<u8>,
}

impl RawPeer {
    /// Waits for Pisek's connection on `listener`.
    pub fn accept(listener: &std::net::TcpListener) -> RawPeer {
        listener.set_nonblocking(true).expect("nonblocking");
        let (stream, _) = common_poll("Pisek connects", || listener.accept().ok());
        stream.set_nonblocking(false).expect("blocking");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        RawPeer {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).expect("send to Pisek");
    }

    /// The next whole message, or None when Pisek closed the connection.
    pub fn read_message(&mut self) -> Option<Vec<u8>> {
        use std::io::Read;
        loop {
            if self.buf.len() >= 19 {
                let len = usize::from(u16::from_be_bytes([self.buf[16], self.buf[17]]));
                if self.buf.len() >= len {
                    return Some(self.buf.drain(..len).collect());
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until a NOTIFICATION and returns (code, subcode, data); then
    /// checks that Pisek closes the connection.
    pub fn expect_notification(&mut self) -> (u8, u8, Vec<u8>) {
        while let Some(m) = self.read_message() {
            if m[18] == 3 {
                let n = (m[19], m[20], m[21..].to_vec());
                assert!(
                    self.read_message().is_none(),
                    "Pisek closes the connection after a NOTIFICATION"
                );
                return n;
            }
        }
        panic!("connection closed without a NOTIFICATION");
    }

    /// Reads Pisek's OPEN and answers with `open` (raw bytes).
    pub fn exchange_open(&mut self, open: &[u8]) {
        let theirs = self.read_message().expect("Pisek's OPEN");
        assert_eq!(theirs[18], 1, "first message is an OPEN");
        self.send(open);
    }

    /// A full handshake with a well-formed OPEN from `router_id`.
    pub fn establish(&mut self, router_id: Ipv4Addr) {
        self.exchange_open(&raw_open(router_id, AS, 9, &[]));
        let ka = self.read_message().expect("KEEPALIVE");
        assert_eq!(ka[18], 4, "Pisek accepts the OPEN with a KEEPALIVE");
        self.send(&KEEPALIVE);
    }
}

/// A KEEPALIVE.
pub const KEEPALIVE: [u8; 19] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0, 19, 4,
];

/// An OPEN offering VPNv4 and VPNv6 with extra raw capabilities appended.
pub fn raw_open(router_id: Ipv4Addr, asn: u32, hold: u16, extra_caps: &[u8]) -> Vec<u8> {
    use pisek_overlay::bgp::packet::{Capability, Message, Open, SessionContext};
    let open = Open {
        my_as: u16::try_from(asn).unwrap_or(23456),
        hold_time: hold,
        bgp_id: router_id,
        capabilities: vec![
            Capability::Multiprotocol(Family::VPNV4),
            Capability::Multiprotocol(Family::VPNV6),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    };
    let mut out = Vec::new();
    Message::Open(open).encode(&SessionContext::default(), &mut out);
    if !extra_caps.is_empty() {
        // One more capabilities parameter; fix the lengths.
        out.push(2);
        out.push(extra_caps.len() as u8);
        out.extend_from_slice(extra_caps);
        out[28] += 2 + extra_caps.len() as u8;
        let len = out.len() as u16;
        out[16..18].copy_from_slice(&len.to_be_bytes());
    }
    out
}
