//! An `agent.toml` builder for tests and labs (not for production configs):
//! the agent's own tests, `pisek-lab`'s topology, the root package's
//! integration tests and examples all write their configs with it, so a
//! change of the schema is made in one place.
//!
//! [`AgentToml::render`] writes the TOML an operator would write, one key
//! per line in the order of `docs/config.md`; optional keys and sections are
//! left out unless set, so the agent's defaults apply. Values are kept as
//! text, so a test can write a deliberately wrong one (a prefix with host
//! bits, a tenant id of 0) and check that validation names it.
//!
//! ```
//! use pisek_agent::config::{Config, Role};
//! use pisek_agent::config::fixture::{AgentToml, TenantToml};
//!
//! let text = AgentToml::new("gw-1", Role::Gateway, "10.255.0.2", "/etc/pisek/wg.key")
//!     .tenant(TenantToml::new("city", 1).prefixes(["10.1.1.0/24"]))
//!     .render();
//! let config = Config::parse(&text, "agent.toml").expect("parses");
//! assert_eq!(config.tenants[0].name, "city");
//! ```

use super::Role;
use std::fmt::{Display, Write as _};
use std::path::Path;

/// A WireGuard private key (base64) for tests: never a real node's.
pub const TEST_PRIVATE_KEY: &str = "YNqHbfBQKaGvzefSSuLF5KoKsRB1A7ULpnIzX0tPTkA=";

/// A WireGuard public key (base64) of a test peer: never a real node's.
pub const TEST_PEER_PUBLIC_KEY: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";

/// Writes [`TEST_PRIVATE_KEY`] to `path` with mode 0600 (the agent refuses
/// a private key others can read, as `wg` does).
pub fn write_test_key(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{TEST_PRIVATE_KEY}\n"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// One `agent.toml`, built key by key.
#[derive(Debug, Clone)]
pub struct AgentToml {
    node_name: String,
    role: Role,
    underlay_listen: String,
    tunnel_address: String,
    tunnel_network: String,
    private_key_file: String,
    peers: Vec<WireguardPeerToml>,
    bgp: BgpToml,
    tenants: Vec<TenantToml>,
    api_socket: Option<String>,
    vanished_sweep_secs: Option<u64>,
    state_dir: Option<String>,
    runtime_dir: Option<String>,
    workers: Option<usize>,
    raw: String,
}

/// The `[bgp]` section of an [`AgentToml`].
#[derive(Debug, Clone)]
struct BgpToml {
    asn: u32,
    hold_time_secs: Option<u16>,
    listen: Option<bool>,
    route_reflector: Option<bool>,
    neighbors: Vec<BgpNeighborToml>,
}

/// One `[[wireguard.peer]]`.
#[derive(Debug, Clone)]
pub struct WireguardPeerToml {
    name: String,
    public_key: String,
    endpoint: Option<String>,
    tunnel_address: String,
    keepalive_secs: Option<u16>,
}

/// One `[[bgp.neighbor]]`.
#[derive(Debug, Clone)]
pub struct BgpNeighborToml {
    address: String,
    name: Option<String>,
    passive: bool,
}

/// One `[[tenant]]`.
#[derive(Debug, Clone)]
pub struct TenantToml {
    name: String,
    id: u32,
    export_route_targets: Vec<String>,
    import_route_targets: Vec<String>,
    prefixes: Vec<String>,
    namespaces: Vec<String>,
}

impl AgentToml {
    /// A node with the required keys: its name, role, tunnel address (in
    /// 10.255.0.0/24 unless [`AgentToml::tunnel_network`] says otherwise)
    /// and key file; the underlay listens on 0.0.0.0:51820, BGP is AS 65000.
    pub fn new(
        node_name: impl Display,
        role: Role,
        tunnel_address: impl Display,
        private_key_file: impl AsRef<Path>,
    ) -> AgentToml {
        AgentToml {
            node_name: node_name.to_string(),
            role,
            underlay_listen: "0.0.0.0:51820".into(),
            tunnel_address: tunnel_address.to_string(),
            tunnel_network: "10.255.0.0/24".into(),
            private_key_file: private_key_file.as_ref().display().to_string(),
            peers: Vec::new(),
            bgp: BgpToml {
                asn: 65000,
                hold_time_secs: None,
                listen: None,
                route_reflector: None,
                neighbors: Vec::new(),
            },
            tenants: Vec::new(),
            api_socket: None,
            vanished_sweep_secs: None,
            state_dir: None,
            runtime_dir: None,
            workers: None,
            raw: String::new(),
        }
    }

    /// The rendered config, parsed: for unit tests, which need a `Config`
    /// and no file. Panics on a config that does not parse (a test's own
    /// mistake).
    pub fn config(&self) -> super::Config {
        super::Config::parse(&self.render(), "agent.toml").expect("the fixture's config parses")
    }

    /// `underlay.listen`.
    pub fn underlay_listen(mut self, address: impl Display) -> Self {
        self.underlay_listen = address.to_string();
        self
    }

    /// `tunnel.network`.
    pub fn tunnel_network(mut self, network: impl Display) -> Self {
        self.tunnel_network = network.to_string();
        self
    }

    /// Adds a `[[wireguard.peer]]`.
    pub fn peer(mut self, peer: WireguardPeerToml) -> Self {
        self.peers.push(peer);
        self
    }

    /// `bgp.asn`.
    pub fn asn(mut self, asn: u32) -> Self {
        self.bgp.asn = asn;
        self
    }

    /// `bgp.hold_time_secs`.
    pub fn hold_time_secs(mut self, secs: u16) -> Self {
        self.bgp.hold_time_secs = Some(secs);
        self
    }

    /// `bgp.listen`.
    pub fn bgp_listen(mut self, listen: bool) -> Self {
        self.bgp.listen = Some(listen);
        self
    }

    /// `bgp.route_reflector`.
    pub fn route_reflector(mut self, reflector: bool) -> Self {
        self.bgp.route_reflector = Some(reflector);
        self
    }

    /// Adds a `[[bgp.neighbor]]`.
    pub fn neighbor(mut self, neighbor: BgpNeighborToml) -> Self {
        self.bgp.neighbors.push(neighbor);
        self
    }

    /// Adds a `[[tenant]]`.
    pub fn tenant(mut self, tenant: TenantToml) -> Self {
        self.tenants.push(tenant);
        self
    }

    /// `api.socket`.
    pub fn api_socket(mut self, socket: impl AsRef<Path>) -> Self {
        self.api_socket = Some(socket.as_ref().display().to_string());
        self
    }

    /// `api.vanished_sweep_secs`.
    pub fn vanished_sweep_secs(mut self, secs: u64) -> Self {
        self.vanished_sweep_secs = Some(secs);
        self
    }

    /// `state.dir`, and `state.runtime_dir` as its `run` subdirectory (each
    /// test agent has a runtime directory of its own).
    pub fn state_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.state_dir = Some(dir.as_ref().display().to_string());
        self
    }

    /// `state.runtime_dir` (after [`AgentToml::state_dir`], which sets it).
    pub fn runtime_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.runtime_dir = Some(dir.as_ref().display().to_string());
        self
    }

    /// `dataplane.workers`.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// TOML appended as it is, after everything else: for keys the builder
    /// does not know, on purpose (a test of the unknown-field error).
    pub fn raw(mut self, toml: &str) -> Self {
        self.raw.push_str(toml);
        self
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let role = match self.role {
            Role::Gateway => "gateway",
            Role::Edge => "edge",
        };
        let mut t = String::new();
        let _ = write!(
            t,
            "[node]\nname = {}\nrole = \"{role}\"\n\n[underlay]\nlisten = {}\n\n\
             [tunnel]\naddress = {}\nnetwork = {}\n\n[wireguard]\nprivate_key_file = {}\n",
            quote(&self.node_name),
            quote(&self.underlay_listen),
            quote(&self.tunnel_address),
            quote(&self.tunnel_network),
            quote(&self.private_key_file),
        );
        for peer in &self.peers {
            peer.render(&mut t);
        }
        self.bgp.render(&mut t);
        for tenant in &self.tenants {
            tenant.render(&mut t);
        }
        if self.api_socket.is_some() || self.vanished_sweep_secs.is_some() {
            t.push_str("\n[api]\n");
        }
        if let Some(socket) = &self.api_socket {
            let _ = writeln!(t, "socket = {}", quote(socket));
        }
        if let Some(secs) = self.vanished_sweep_secs {
            let _ = writeln!(t, "vanished_sweep_secs = {secs}");
        }
        if let Some(dir) = &self.state_dir {
            let runtime = self
                .runtime_dir
                .clone()
                .unwrap_or_else(|| format!("{dir}/run"));
            let _ = write!(
                t,
                "\n[state]\ndir = {}\nruntime_dir = {}\n",
                quote(dir),
                quote(&runtime)
            );
        }
        if let Some(workers) = self.workers {
            let _ = write!(t, "\n[dataplane]\nworkers = {workers}\n");
        }
        t.push_str(&self.raw);
        t
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.render())
    }
}

impl BgpToml {
    fn render(&self, t: &mut String) {
        let _ = write!(t, "\n[bgp]\nasn = {}\n", self.asn);
        if let Some(secs) = self.hold_time_secs {
            let _ = writeln!(t, "hold_time_secs = {secs}");
        }
        if let Some(listen) = self.listen {
            let _ = writeln!(t, "listen = {listen}");
        }
        if let Some(reflector) = self.route_reflector {
            let _ = writeln!(t, "route_reflector = {reflector}");
        }
        for n in &self.neighbors {
            let _ = write!(t, "\n[[bgp.neighbor]]\naddress = {}\n", quote(&n.address));
            if let Some(name) = &n.name {
                let _ = writeln!(t, "name = {}", quote(name));
            }
            if n.passive {
                t.push_str("passive = true\n");
            }
        }
    }
}

impl WireguardPeerToml {
    /// A peer by name, public key and tunnel address.
    pub fn new(
        name: impl Display,
        public_key: impl Display,
        tunnel_address: impl Display,
    ) -> WireguardPeerToml {
        WireguardPeerToml {
            name: name.to_string(),
            public_key: public_key.to_string(),
            endpoint: None,
            tunnel_address: tunnel_address.to_string(),
            keepalive_secs: None,
        }
    }

    /// `endpoint` (a gateway knows its edge's).
    pub fn endpoint(mut self, endpoint: impl Display) -> Self {
        self.endpoint = Some(endpoint.to_string());
        self
    }

    /// `keepalive_secs`.
    pub fn keepalive_secs(mut self, secs: u16) -> Self {
        self.keepalive_secs = Some(secs);
        self
    }

    fn render(&self, t: &mut String) {
        let _ = write!(
            t,
            "\n[[wireguard.peer]]\nname = {}\npublic_key = {}\n",
            quote(&self.name),
            quote(&self.public_key)
        );
        if let Some(endpoint) = &self.endpoint {
            let _ = writeln!(t, "endpoint = {}", quote(endpoint));
        }
        let _ = writeln!(t, "tunnel_address = {}", quote(&self.tunnel_address));
        if let Some(secs) = self.keepalive_secs {
            let _ = writeln!(t, "keepalive_secs = {secs}");
        }
    }
}

impl BgpNeighborToml {
    /// A neighbor the speaker connects to.
    pub fn new(address: impl Display) -> BgpNeighborToml {
        BgpNeighborToml {
            address: address.to_string(),
            name: None,
            passive: false,
        }
    }

    /// `name`.
    pub fn name(mut self, name: impl Display) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// `passive = true`: the speaker waits for the neighbor to connect.
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }
}

impl TenantToml {
    /// A tenant by name and id, with no prefix yet.
    pub fn new(name: impl Display, id: u32) -> TenantToml {
        TenantToml {
            name: name.to_string(),
            id,
            export_route_targets: Vec::new(),
            import_route_targets: Vec::new(),
            prefixes: Vec::new(),
            namespaces: Vec::new(),
        }
    }

    /// The same route target exported and imported.
    pub fn route_target(self, target: impl Display) -> Self {
        let target = target.to_string();
        self.export_route_targets([target.clone()])
            .import_route_targets([target])
    }

    /// `export_route_targets`.
    pub fn export_route_targets<S: Display>(
        mut self,
        targets: impl IntoIterator<Item = S>,
    ) -> Self {
        self.export_route_targets = targets.into_iter().map(|t| t.to_string()).collect();
        self
    }

    /// `import_route_targets`.
    pub fn import_route_targets<S: Display>(
        mut self,
        targets: impl IntoIterator<Item = S>,
    ) -> Self {
        self.import_route_targets = targets.into_iter().map(|t| t.to_string()).collect();
        self
    }

    /// `prefixes`.
    pub fn prefixes<S: Display>(mut self, prefixes: impl IntoIterator<Item = S>) -> Self {
        self.prefixes = prefixes.into_iter().map(|p| p.to_string()).collect();
        self
    }

    /// `namespaces` (Kubernetes namespaces mapped to this tenant).
    pub fn namespaces<S: Display>(mut self, namespaces: impl IntoIterator<Item = S>) -> Self {
        self.namespaces = namespaces.into_iter().map(|n| n.to_string()).collect();
        self
    }

    fn render(&self, t: &mut String) {
        let _ = write!(
            t,
            "\n[[tenant]]\nname = {}\nid = {}\n",
            quote(&self.name),
            self.id
        );
        if !self.export_route_targets.is_empty() {
            let _ = writeln!(
                t,
                "export_route_targets = {}",
                list(&self.export_route_targets)
            );
        }
        if !self.import_route_targets.is_empty() {
            let _ = writeln!(
                t,
                "import_route_targets = {}",
                list(&self.import_route_targets)
            );
        }
        let _ = writeln!(t, "prefixes = {}", list(&self.prefixes));
        if !self.namespaces.is_empty() {
            let _ = writeln!(t, "namespaces = {}", list(&self.namespaces));
        }
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A TOML array of basic strings, on one line.
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_full_edge_renders_as_the_schema_reads_it() {
        let text = AgentToml::new("lab-edge", Role::Edge, "10.255.0.1", "/k/edge.key")
            .underlay_listen("172.16.0.2:51820")
            .peer(
                WireguardPeerToml::new("gw1", TEST_PEER_PUBLIC_KEY, "10.255.0.11")
                    .endpoint("172.16.1.2:51820")
                    .keepalive_secs(25),
            )
            .hold_time_secs(30)
            .bgp_listen(false)
            .route_reflector(false)
            .neighbor(BgpNeighborToml::new("10.255.0.11").name("gw1").passive())
            .tenant(
                TenantToml::new("city", 1)
                    .route_target("65000:1")
                    .prefixes(["10.1.0.0/24", "fd00:10:1::/64"])
                    .namespaces(["city"]),
            )
            .api_socket("/run/x.sock")
            .state_dir("/var/x")
            .render();
        let config = Config::parse(&text, "agent.toml").expect("parses");
        assert_eq!(config.node.name, "lab-edge");
        assert_eq!(config.node.role, Role::Edge);
        assert_eq!(config.underlay.listen.to_string(), "172.16.0.2:51820");
        assert_eq!(config.wireguard.peers.len(), 1);
        assert_eq!(config.bgp.hold_time_secs, 30);
        assert!(!config.bgp.listen);
        assert!(config.bgp.neighbors[0].passive);
        assert_eq!(config.tenants[0].prefixes.len(), 2);
        assert_eq!(config.api.socket, Path::new("/run/x.sock"));
        assert_eq!(config.state.dir, Path::new("/var/x"));
        assert_eq!(config.state.runtime_dir, Path::new("/var/x/run"));
    }

    #[test]
    fn a_path_with_a_quote_stays_one_string() {
        let text = AgentToml::new("n", Role::Gateway, "10.255.0.2", "/tmp/a\"b\\c.key").render();
        let config = Config::parse(&text, "agent.toml").expect("parses");
        assert_eq!(
            config.wireguard.private_key_file,
            Path::new("/tmp/a\"b\\c.key")
        );
    }
}
