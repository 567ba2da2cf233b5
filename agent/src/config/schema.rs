//! The typed schema of `agent.toml`. Every struct rejects unknown fields, so
//! a misspelt key is an error with its line, never silently ignored.
//! Field meanings and defaults are documented in `docs/config.md`.

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node: name and role.
    pub node: NodeConfig,
    /// The underlay (WAN) side: where the WireGuard UDP socket listens.
    pub underlay: UnderlayConfig,
    /// The fabric interface `pisek0` and the tunnel network it is on.
    pub tunnel: TunnelConfig,
    /// This node's WireGuard key and its peers.
    pub wireguard: WireguardConfig,
    /// The iBGP speaker.
    pub bgp: BgpConfig,
    /// Tenants (virtual networks) present on this node.
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    /// The Unix-socket API.
    #[serde(default)]
    pub api: ApiConfig,
    /// The state directory.
    #[serde(default)]
    pub state: StateConfig,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The forwarding threads.
    #[serde(default)]
    pub dataplane: DataplaneConfig,
}

/// `[node]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name (host name or inventory name); used in logs and route
    /// distinguishers' documentation.
    pub name: String,
    /// Whether this agent runs on a gateway or on the datacenter edge.
    pub role: Role,
}

/// The two roles of the same agent.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An IoT gateway: WireGuard peers are the edge routers.
    Gateway,
    /// The datacenter edge: WireGuard peers are the gateways; route reflector by default.
    Edge,
}

/// `[underlay]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UnderlayConfig {
    /// Address and UDP port of the WireGuard socket.
    pub listen: SocketAddr,
    /// MTU of the underlay path; pod and TUN MTUs are computed from it.
    #[serde(default = "default_underlay_mtu")]
    pub mtu: u32,
}

fn default_underlay_mtu() -> u32 {
    1500
}

/// `[tunnel]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// This node's address on the tunnel network (held by `pisek0`); the BGP
    /// next hop of everything this node advertises.
    pub address: IpAddr,
    /// The tunnel network all nodes are on.
    pub network: IpNetwork,
}

/// `[wireguard]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireguardConfig {
    /// File holding this node's private key (base64, as `wg genkey` writes it).
    pub private_key_file: PathBuf,
    /// The peers: the edge routers on a gateway, the gateways on an edge.
    #[serde(default, rename = "peer")]
    pub peers: Vec<WireguardPeer>,
}

/// `[[wireguard.peer]]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireguardPeer {
    /// A name for logs, metrics and `pisekctl peers`.
    pub name: String,
    /// The peer's public key (base64).
    pub public_key: String,
    /// Where to send to; optional for peers that roam (gateways behind NAT,
    /// as seen from the edge).
    #[serde(default)]
    pub endpoint: Option<SocketAddr>,
    /// The peer's address on the tunnel network (crypto-key routing: next hops
    /// equal to it go to this peer).
    pub tunnel_address: IpAddr,
    /// Persistent keepalive in seconds (0 = off); keeps NAT mappings open.
    #[serde(default)]
    pub keepalive_secs: u16,
}

/// `[bgp]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BgpConfig {
    /// The autonomous system (four-octet); iBGP, so all nodes share it.
    pub asn: u32,
    /// The BGP identifier; by default the tunnel address when it is IPv4.
    #[serde(default)]
    pub router_id: Option<std::net::Ipv4Addr>,
    /// Act as the route reflector for the neighbors (RFC 4456). Defaults to
    /// true on the edge and false on a gateway.
    #[serde(default)]
    pub route_reflector: Option<bool>,
    /// Run the agent's own BGP speaker (the default). `false` on an edge
    /// whose route reflector is a separate daemon (GoBGP, BIRD, FRR) on the
    /// tunnel address: the agent then only forwards.
    #[serde(default = "default_speaker")]
    pub speaker: bool,
    /// Accept BGP connections on TCP 179 of the tunnel address (the
    /// default). `false` makes the speaker a pure client that only connects
    /// out: on an edge where a separate reflector daemon (GoBGP, BIRD, FRR)
    /// owns port 179 of the same address and the agent is one of its clients.
    #[serde(default = "default_listen")]
    pub listen: bool,
    /// Hold time offered in OPEN, seconds (0 or at least 3, RFC 4271 §4.2).
    #[serde(default = "default_hold_time")]
    pub hold_time_secs: u16,
    /// Graceful restart time advertised (RFC 4724), seconds.
    #[serde(default = "default_restart_time")]
    pub restart_time_secs: u16,
    /// The sessions to open (on a gateway: the reflector(s)).
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<BgpNeighbor>,
}

fn default_speaker() -> bool {
    true
}

fn default_listen() -> bool {
    true
}

fn default_hold_time() -> u16 {
    90
}

fn default_restart_time() -> u16 {
    120
}

impl BgpConfig {
    /// Whether this node reflects routes, after applying the role's default.
    pub fn is_route_reflector(&self, role: Role) -> bool {
        self.route_reflector.unwrap_or(role == Role::Edge)
    }
}

/// `[[bgp.neighbor]]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BgpNeighbor {
    /// The neighbor's address (on the tunnel network).
    pub address: IpAddr,
    /// A name for logs and `pisekctl bgp`.
    #[serde(default)]
    pub name: Option<String>,
    /// Passive: wait for the neighbor to connect (the reflector side).
    #[serde(default)]
    pub passive: bool,
    /// The neighbor's AS; absent or equal to `bgp.asn`: iBGP. Another AS
    /// makes the session eBGP (a PE or route server of the datacenter).
    #[serde(default)]
    pub remote_as: Option<u32>,
}

/// `[[tenant]]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant's name (`city`, `conference`); what attach requests name.
    pub name: String,
    /// The tenant's number, 1..=9999. The same on every node; the kernel
    /// routing table, rule priority, TUN name and route distinguisher derive
    /// from it.
    pub id: u32,
    /// Route targets attached to this tenant's advertised routes
    /// (`"<asn>:<n>"` or `"<ipv4>:<n>"`).
    #[serde(default)]
    pub export_route_targets: Vec<String>,
    /// Route targets whose routes this tenant imports.
    #[serde(default)]
    pub import_route_targets: Vec<String>,
    /// This node's prefixes for the tenant's local workloads (one IPv4 and/or
    /// one IPv6), like Kubernetes' per-node podCIDR.
    pub prefixes: Vec<IpNetwork>,
    /// Kubernetes namespaces whose pods belong to this tenant.
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// `[api]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Path of the Unix socket (created with mode 0600).
    #[serde(default = "default_api_socket")]
    pub socket: PathBuf,
    /// How often the agent looks for attachments whose network namespace
    /// is gone (a pod removed without a CNI DEL) and releases them.
    #[serde(default = "default_vanished_sweep_secs")]
    pub vanished_sweep_secs: u64,
}

fn default_api_socket() -> PathBuf {
    PathBuf::from("/run/pisek/agent.sock")
}

fn default_vanished_sweep_secs() -> u64 {
    30
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            socket: default_api_socket(),
            vanished_sweep_secs: default_vanished_sweep_secs(),
        }
    }
}

/// `[state]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of the state that survives a reboot (VRF labels, learned
    /// routes, peers' endpoints).
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// Directory of the state that describes this boot's kernel objects
    /// (endpoints and their IPAM leases); a tmpfs, so a reboot clears it
    /// with the veth pairs it names.
    #[serde(default = "default_runtime_dir")]
    pub runtime_dir: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/pisek")
}

fn default_runtime_dir() -> PathBuf {
    PathBuf::from("/run/pisek")
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: default_state_dir(),
            runtime_dir: default_runtime_dir(),
        }
    }
}

/// `[metrics]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Loopback address and port of the Prometheus endpoint.
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
}

fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9469))
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
        }
    }
}

/// `[dataplane]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// Forwarding workers (threads); each reads its own queue of every
    /// tenant TUN. `0` (the default): one per CPU the agent may run on.
    #[serde(default)]
    pub workers: usize,
    /// Packets each queue of a tenant TUN holds for its worker (the TUN's
    /// `txqueuelen`); what arrives while it is full is dropped.
    #[serde(default = "default_tun_queue_len")]
    pub tun_queue_len: u32,
}

fn default_tun_queue_len() -> u32 {
    crate::dataplane::tun::TUN_QUEUE_LEN
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            workers: 0,
            tun_queue_len: default_tun_queue_len(),
        }
    }
}

/// The longest TUN queue: each packet waiting in it may be a 64 KiB
/// super-packet, and a queue this long already holds a second of a flow
/// at 16k packets a second.
pub const MAX_TUN_QUEUE_LEN: u32 = 16_384;

/// The most forwarding workers: a TUN has at most 256 queues, and past a
/// few the workers mostly wait for the pipeline's lock.
pub const MAX_WORKERS: usize = 64;

impl DataplaneConfig {
    /// The worker count to run: `workers`, or with `0` one per CPU the
    /// process may use (1 when that is unknown), at most [`MAX_WORKERS`].
    pub fn worker_count(&self) -> usize {
        let n = match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        n.clamp(1, MAX_WORKERS)
    }
}

/// `[log]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `pisek_agent=debug`); `RUST_LOG` overrides it.
    #[serde(default)]
    pub level: Option<String>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The largest tenant id; keeps rule priorities below the main table's 32766.
pub const MAX_TENANT_ID: u32 = 9999;

/// Kernel routing tables of tenants are `TENANT_TABLE_BASE + id`, far above
/// the ids distributions and other tools use (main 254, local 255, default 253).
pub const TENANT_TABLE_BASE: u32 = 100_000;

/// Policy rules of tenants have priority `TENANT_RULE_PRIORITY_BASE + id`:
/// after `local` (0), before `main` (32766).
pub const TENANT_RULE_PRIORITY_BASE: u32 = 10_000;

impl TenantConfig {
    /// The tenant's kernel routing table, derived from its id only so a
    /// restarted agent (or an operator) finds it again.
    pub fn table_id(&self) -> u32 {
        TENANT_TABLE_BASE + self.id
    }

    /// The priority of the tenant's `iif <dev> lookup <table>` rules.
    pub fn rule_priority(&self) -> u32 {
        TENANT_RULE_PRIORITY_BASE + self.id
    }

    /// The tenant's TUN, `pisek-t<id>` (at most 11 bytes, within IFNAMSIZ).
    pub fn tun_name(&self) -> String {
        format!("pisek-t{}", self.id)
    }
}
