//! What one scrape shows ([`Scrape`], plain data) and its rendering in the
//! Prometheus text exposition format 0.0.4: `# HELP` and `# TYPE` once per
//! family, then its samples; label values escaped (`\\`, `\"`, `\n`).
//! `docs/metrics.md` lists every family.

use crate::api::{BgpSessionInfo, DropCounter, PeerInfo, RouteInfo};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `Content-Type` of the rendering.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One tenant's traffic through the overlay. The agent's [`DataplaneView`]
/// does not report it yet; the family is rendered once a source fills it.
///
/// [`DataplaneView`]: crate::api::DataplaneView
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantTraffic {
    /// Tenant name.
    pub tenant: String,
    /// Packets from the overlay into the tenant's workloads.
    pub in_packets: u64,
    /// Bytes from the overlay into the tenant's workloads.
    pub in_bytes: u64,
    /// Packets from the tenant's workloads into the overlay.
    pub out_packets: u64,
    /// Bytes from the tenant's workloads into the overlay.
    pub out_bytes: u64,
}

/// Everything one scrape shows, read from the agent at scrape time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    /// Whether the data plane runs.
    pub dataplane_up: bool,
    /// Per-tenant traffic (empty when unknown).
    pub tenants: Vec<TenantTraffic>,
    /// WireGuard peers (`None` without a data plane).
    pub peers: Option<Vec<PeerInfo>>,
    /// Drop counters.
    pub drops: Vec<DropCounter>,
    /// BGP sessions (`None` without a speaker).
    pub bgp_sessions: Option<Vec<BgpSessionInfo>>,
    /// Learned routes refused for claiming an own prefix (`None` without
    /// a speaker).
    pub refused_routes: Option<u64>,
    /// Routes learned by BGP.
    pub remote_routes: Vec<RouteInfo>,
    /// Attached endpoints per tenant, and their addresses (local routes);
    /// `None` when the endpoint list is not available.
    pub endpoints: Option<BTreeMap<String, EndpointCount>>,
    /// Seconds since the Unix epoch at scrape time, to turn a peer's
    /// handshake age into a timestamp.
    pub now_unix_secs: u64,
}

/// A tenant's attached endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointCount {
    /// Attached interfaces.
    pub endpoints: u64,
    /// Their addresses: each is a local route in the tenant's VRF.
    pub addresses: u64,
}

/// Escapes a label value (exposition format 0.0.4: backslash, double quote
/// and line feed).
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A metric family being written: its header goes out with its first sample,
/// so a family without samples leaves no `# TYPE` line behind.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    header_written: bool,
}

impl<'a> Family<'a> {
    fn new(
        out: &'a mut String,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
    ) -> Self {
        Family {
            out,
            name,
            kind,
            help,
            header_written: false,
        }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: u64) {
        if !self.header_written {
            // HELP texts are constants without `\` or line feeds: no escaping.
            let _ = writeln!(self.out, "# HELP {} {}", self.name, self.help);
            let _ = writeln!(self.out, "# TYPE {} {}", self.name, self.kind);
            self.header_written = true;
        }
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{name}=\"{}\"", escape_label_value(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Renders a scrape. Families and samples come in a stable order (the order
/// of the sources, tenants sorted), so the text can be compared in tests.
pub fn render(scrape: &Scrape) -> String {
    let mut out = String::new();
    render_dataplane(&mut out, scrape);
    render_tenants(&mut out, &scrape.tenants);
    if let Some(peers) = &scrape.peers {
        render_peers(&mut out, peers, scrape.now_unix_secs);
    }
    render_drops(&mut out, &scrape.drops);
    if let Some(sessions) = &scrape.bgp_sessions {
        render_bgp(&mut out, sessions);
    }
    if let Some(refused) = scrape.refused_routes {
        Family::new(
            &mut out,
            "pisek_bgp_routes_refused_total",
            "counter",
            "Learned VPN routes refused because they claim one of this node's own prefixes.",
        )
        .sample(&[], refused);
    }
    render_routes(&mut out, scrape);
    if let Some(endpoints) = &scrape.endpoints {
        let mut family = Family::new(
            &mut out,
            "pisek_endpoints",
            "gauge",
            "Workload interfaces attached to the tenant on this node.",
        );
        for (tenant, count) in endpoints {
            family.sample(&[("tenant", tenant)], count.endpoints);
        }
    }
    out
}

fn render_dataplane(out: &mut String, scrape: &Scrape) {
    Family::new(
        out,
        "pisek_dataplane_up",
        "gauge",
        "1 when the agent's data plane (TUNs, forwarder) runs, else 0.",
    )
    .sample(&[], u64::from(scrape.dataplane_up));
}

fn render_tenants(out: &mut String, tenants: &[TenantTraffic]) {
    let mut packets = Family::new(
        out,
        "pisek_tenant_packets_total",
        "counter",
        "Tenant packets through the overlay; in = towards the workloads.",
    );
    for t in tenants {
        packets.sample(&[("tenant", &t.tenant), ("direction", "in")], t.in_packets);
        packets.sample(
            &[("tenant", &t.tenant), ("direction", "out")],
            t.out_packets,
        );
    }
    let mut bytes = Family::new(
        out,
        "pisek_tenant_bytes_total",
        "counter",
        "Tenant bytes (inner IP packets) through the overlay; in = towards the workloads.",
    );
    for t in tenants {
        bytes.sample(&[("tenant", &t.tenant), ("direction", "in")], t.in_bytes);
        bytes.sample(&[("tenant", &t.tenant), ("direction", "out")], t.out_bytes);
    }
}

/// A per-peer counter family: its name, its help text, and the field of
/// [`PeerInfo`] it shows.
type PeerCounter = (&'static str, &'static str, fn(&PeerInfo) -> u64);

fn render_peers(out: &mut String, peers: &[PeerInfo], now_unix_secs: u64) {
    /// The per-peer counters: name, help, and the field.
    const COUNTERS: [PeerCounter; 6] = [
        (
            "pisek_wireguard_peer_receive_bytes_total",
            "Bytes received from the WireGuard peer.",
            |p| p.rx_bytes,
        ),
        (
            "pisek_wireguard_peer_transmit_bytes_total",
            "Bytes sent to the WireGuard peer.",
            |p| p.tx_bytes,
        ),
        (
            "pisek_wireguard_peer_receive_packets_total",
            "Packets received from the WireGuard peer (decrypted, source allowed).",
            |p| p.rx_packets,
        ),
        (
            "pisek_wireguard_peer_transmit_packets_total",
            "Packets sent to the WireGuard peer (keepalives excluded).",
            |p| p.tx_packets,
        ),
        (
            "pisek_wireguard_peer_handshakes_total",
            "Handshakes completed with the WireGuard peer.",
            |p| p.handshakes,
        ),
        (
            "pisek_wireguard_peer_endpoint_changes_total",
            "Times the WireGuard peer's endpoint changed (roaming).",
            |p| p.endpoint_changes,
        ),
    ];
    for (name, help, value) in COUNTERS {
        let mut family = Family::new(out, name, "counter", help);
        for p in peers {
            family.sample(&peer_labels(p), value(p));
        }
    }
    let mut handshake = Family::new(
        out,
        "pisek_wireguard_peer_last_handshake_seconds",
        "gauge",
        "Unix time of the last completed handshake with the peer; absent if none yet.",
    );
    for p in peers {
        if let Some(age) = p.last_handshake_secs {
            handshake.sample(&peer_labels(p), now_unix_secs.saturating_sub(age));
        }
    }
    let mut drops = Family::new(
        out,
        "pisek_wireguard_peer_drops_total",
        "counter",
        "Packets from or to the WireGuard peer that WireGuard dropped, by reason; a reason appears with its first drop.",
    );
    for p in peers {
        let [peer, public_key] = peer_labels(p);
        for (reason, packets) in &p.drops {
            drops.sample(&[peer, public_key, ("reason", reason)], *packets);
        }
    }
}

fn peer_labels(p: &PeerInfo) -> [(&'static str, &str); 2] {
    [("peer", &p.name), ("public_key", &p.public_key)]
}

fn render_drops(out: &mut String, drops: &[DropCounter]) {
    let mut node = Family::new(
        out,
        "pisek_drops_total",
        "counter",
        "Packets the data plane dropped, by reason (every tenant's included).",
    );
    for d in drops.iter().filter(|d| d.tenant.is_none()) {
        node.sample(&[("reason", &d.reason)], d.packets);
    }
    let mut tenant = Family::new(
        out,
        "pisek_tenant_drops_total",
        "counter",
        "Packets the data plane dropped once their tenant was known, by tenant and reason.",
    );
    for d in drops {
        if let Some(name) = &d.tenant {
            tenant.sample(&[("tenant", name), ("reason", &d.reason)], d.packets);
        }
    }
}

fn render_bgp(out: &mut String, sessions: &[BgpSessionInfo]) {
    let neighbors: Vec<(String, &str, &BgpSessionInfo)> = sessions
        .iter()
        .map(|s| (s.neighbor.to_string(), s.name.as_deref().unwrap_or(""), s))
        .collect();
    let mut state = Family::new(
        out,
        "pisek_bgp_session_state",
        "gauge",
        "1 for the BGP session's current FSM state (RFC 4271 section 8.2.2).",
    );
    for (neighbor, name, s) in &neighbors {
        state.sample(
            &[("neighbor", neighbor), ("name", name), ("state", &s.state)],
            1,
        );
    }
    let mut up = Family::new(
        out,
        "pisek_bgp_session_established",
        "gauge",
        "1 when the BGP session is Established, else 0.",
    );
    for (neighbor, name, s) in &neighbors {
        let established = s.state.eq_ignore_ascii_case("established");
        up.sample(
            &[("neighbor", neighbor), ("name", name)],
            u64::from(established),
        );
    }
    let mut received = Family::new(
        out,
        "pisek_bgp_routes_received",
        "gauge",
        "Routes the BGP neighbor currently advertises to this node.",
    );
    for (neighbor, name, s) in &neighbors {
        received.sample(&[("neighbor", neighbor), ("name", name)], s.received);
    }
    let mut advertised = Family::new(
        out,
        "pisek_bgp_routes_advertised",
        "gauge",
        "Routes this node currently advertises to the BGP neighbor.",
    );
    for (neighbor, name, s) in &neighbors {
        advertised.sample(&[("neighbor", neighbor), ("name", name)], s.advertised);
    }
}

fn render_routes(out: &mut String, scrape: &Scrape) {
    let mut remote: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &scrape.remote_routes {
        *remote.entry(r.tenant.as_str()).or_default() += 1;
    }
    let mut family = Family::new(
        out,
        "pisek_routes",
        "gauge",
        "Routes in the tenant's VRF: source=local (attached endpoints' addresses) or bgp.",
    );
    if let Some(endpoints) = &scrape.endpoints {
        for (tenant, count) in endpoints {
            family.sample(&[("tenant", tenant), ("source", "local")], count.addresses);
        }
    }
    for (tenant, count) in remote {
        family.sample(&[("tenant", tenant), ("source", "bgp")], count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn route(tenant: &str, prefix: &str) -> RouteInfo {
        RouteInfo {
            tenant: tenant.into(),
            prefix: prefix.into(),
            source: "bgp".into(),
            interface: None,
            next_hop: Some(IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1))),
            label: Some(100),
        }
    }

    fn scrape() -> Scrape {
        Scrape {
            dataplane_up: true,
            tenants: vec![TenantTraffic {
                tenant: "city".into(),
                in_packets: 3,
                in_bytes: 252,
                out_packets: 4,
                out_bytes: 336,
            }],
            peers: Some(vec![
                PeerInfo {
                    name: "edge".into(),
                    public_key: "cGVlcg==".into(),
                    endpoint: Some("192.0.2.1:51820".into()),
                    tunnel_address: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
                    last_handshake_secs: Some(7),
                    rx_bytes: 1024,
                    tx_bytes: 2048,
                    rx_packets: 12,
                    tx_packets: 21,
                    handshakes: 3,
                    endpoint_changes: 1,
                    drops: BTreeMap::from([
                        ("decrypt-failed".to_string(), 2),
                        ("replay".to_string(), 1),
                    ]),
                },
                PeerInfo {
                    name: "edge2".into(),
                    public_key: "b3RoZXI=".into(),
                    endpoint: None,
                    tunnel_address: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 2)),
                    last_handshake_secs: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                    rx_packets: 0,
                    tx_packets: 0,
                    handshakes: 0,
                    endpoint_changes: 0,
                    drops: BTreeMap::new(),
                },
            ]),
            drops: vec![
                DropCounter {
                    reason: "spoofed-source".into(),
                    tenant: None,
                    packets: 2,
                },
                DropCounter {
                    reason: "spoofed-source".into(),
                    tenant: Some("city".into()),
                    packets: 2,
                },
                DropCounter {
                    reason: "spoofed-source".into(),
                    tenant: Some("conference".into()),
                    packets: 0,
                },
                DropCounter {
                    reason: "bad-label".into(),
                    tenant: None,
                    packets: 5,
                },
            ],
            bgp_sessions: Some(vec![BgpSessionInfo {
                neighbor: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
                name: Some("edge".into()),
                state: "Established".into(),
                uptime_secs: Some(30),
                received: 3,
                advertised: 2,
            }]),
            refused_routes: Some(2),
            remote_routes: vec![
                route("city", "10.1.2.0/24"),
                route("city", "10.1.3.0/24"),
                route("conference", "10.2.2.0/24"),
            ],
            endpoints: Some(BTreeMap::from([
                (
                    "city".to_string(),
                    EndpointCount {
                        endpoints: 2,
                        addresses: 2,
                    },
                ),
                (
                    "conference".to_string(),
                    EndpointCount {
                        endpoints: 1,
                        addresses: 1,
                    },
                ),
            ])),
            now_unix_secs: 1_700_000_000,
        }
    }

    static GOLDEN: &str = r#"# HELP pisek_dataplane_up 1 when the agent's data plane (TUNs, forwarder) runs, else 0.
# TYPE pisek_dataplane_up gauge
pisek_dataplane_up 1
# HELP pisek_tenant_packets_total Tenant packets through the overlay; in = towards the workloads.
# TYPE pisek_tenant_packets_total counter
pisek_tenant_packets_total{tenant="city",direction="in"} 3
pisek_tenant_packets_total{tenant="city",direction="out"} 4
# HELP pisek_tenant_bytes_total Tenant bytes (inner IP packets) through the overlay; in = towards the workloads.
# TYPE pisek_tenant_bytes_total counter
pisek_tenant_bytes_total{tenant="city",direction="in"} 252
pisek_tenant_bytes_total{tenant="city",direction="out"} 336
# HELP pisek_wireguard_peer_receive_bytes_total Bytes received from the WireGuard peer.
# TYPE pisek_wireguard_peer_receive_bytes_total counter
pisek_wireguard_peer_receive_bytes_total{peer="edge",public_key="cGVlcg=="} 1024
pisek_wireguard_peer_receive_bytes_total{peer="edge2",public_key="b3RoZXI="} 0
# HELP pisek_wireguard_peer_transmit_bytes_total Bytes sent to the WireGuard peer.
# TYPE pisek_wireguard_peer_transmit_bytes_total counter
pisek_wireguard_peer_transmit_bytes_total{peer="edge",public_key="cGVlcg=="} 2048
pisek_wireguard_peer_transmit_bytes_total{peer="edge2",public_key="b3RoZXI="} 0
# HELP pisek_wireguard_peer_receive_packets_total Packets received from the WireGuard peer (decrypted, source allowed).
# TYPE pisek_wireguard_peer_receive_packets_total counter
pisek_wireguard_peer_receive_packets_total{peer="edge",public_key="cGVlcg=="} 12
pisek_wireguard_peer_receive_packets_total{peer="edge2",public_key="b3RoZXI="} 0
# HELP pisek_wireguard_peer_transmit_packets_total Packets sent to the WireGuard peer (keepalives excluded).
# TYPE pisek_wireguard_peer_transmit_packets_total counter
pisek_wireguard_peer_transmit_packets_total{peer="edge",public_key="cGVlcg=="} 21
pisek_wireguard_peer_transmit_packets_total{peer="edge2",public_key="b3RoZXI="} 0
# HELP pisek_wireguard_peer_handshakes_total Handshakes completed with the WireGuard peer.
# TYPE pisek_wireguard_peer_handshakes_total counter
pisek_wireguard_peer_handshakes_total{peer="edge",public_key="cGVlcg=="} 3
pisek_wireguard_peer_handshakes_total{peer="edge2",public_key="b3RoZXI="} 0
# HELP pisek_wireguard_peer_endpoint_changes_total Times the WireGuard peer's endpoint changed (roaming).
# TYPE pisek_wireguard_peer_endpoint_changes_total counter
pisek_wireguard_peer_endpoint_changes_total{peer="edge",public_key="cGVlcg=="} 1
pisek_wireguard_peer_endpoint_changes_total{peer="edge2",public_key="b3RoZXI="} 0
# HELP pisek_wireguard_peer_last_handshake_seconds Unix time of the last completed handshake with the peer; absent if none yet.
# TYPE pisek_wireguard_peer_last_handshake_seconds gauge
pisek_wireguard_peer_last_handshake_seconds{peer="edge",public_key="cGVlcg=="} 1699999993
# HELP pisek_wireguard_peer_drops_total Packets from or to the WireGuard peer that WireGuard dropped, by reason; a reason appears with its first drop.
# TYPE pisek_wireguard_peer_drops_total counter
pisek_wireguard_peer_drops_total{peer="edge",public_key="cGVlcg==",reason="decrypt-failed"} 2
pisek_wireguard_peer_drops_total{peer="edge",public_key="cGVlcg==",reason="replay"} 1
# HELP pisek_drops_total Packets the data plane dropped, by reason (every tenant's included).
# TYPE pisek_drops_total counter
pisek_drops_total{reason="spoofed-source"} 2
pisek_drops_total{reason="bad-label"} 5
# HELP pisek_tenant_drops_total Packets the data plane dropped once their tenant was known, by tenant and reason.
# TYPE pisek_tenant_drops_total counter
pisek_tenant_drops_total{tenant="city",reason="spoofed-source"} 2
pisek_tenant_drops_total{tenant="conference",reason="spoofed-source"} 0
# HELP pisek_bgp_session_state 1 for the BGP session's current FSM state (RFC 4271 section 8.2.2).
# TYPE pisek_bgp_session_state gauge
pisek_bgp_session_state{neighbor="10.255.0.1",name="edge",state="Established"} 1
# HELP pisek_bgp_session_established 1 when the BGP session is Established, else 0.
# TYPE pisek_bgp_session_established gauge
pisek_bgp_session_established{neighbor="10.255.0.1",name="edge"} 1
# HELP pisek_bgp_routes_received Routes the BGP neighbor currently advertises to this node.
# TYPE pisek_bgp_routes_received gauge
pisek_bgp_routes_received{neighbor="10.255.0.1",name="edge"} 3
# HELP pisek_bgp_routes_advertised Routes this node currently advertises to the BGP neighbor.
# TYPE pisek_bgp_routes_advertised gauge
pisek_bgp_routes_advertised{neighbor="10.255.0.1",name="edge"} 2
# HELP pisek_bgp_routes_refused_total Learned VPN routes refused because they claim one of this node's own prefixes.
# TYPE pisek_bgp_routes_refused_total counter
pisek_bgp_routes_refused_total 2
# HELP pisek_routes Routes in the tenant's VRF: source=local (attached endpoints' addresses) or bgp.
# TYPE pisek_routes gauge
pisek_routes{tenant="city",source="local"} 2
pisek_routes{tenant="conference",source="local"} 1
pisek_routes{tenant="city",source="bgp"} 2
pisek_routes{tenant="conference",source="bgp"} 1
# HELP pisek_endpoints Workload interfaces attached to the tenant on this node.
# TYPE pisek_endpoints gauge
pisek_endpoints{tenant="city"} 2
pisek_endpoints{tenant="conference"} 1
"#;

    #[test]
    fn full_scrape_renders_the_golden_text() {
        assert_eq!(render(&scrape()), GOLDEN);
    }

    #[test]
    fn agent_without_dataplane_shows_only_that_it_is_down() {
        let text = render(&Scrape::default());
        assert_eq!(
            text,
            "# HELP pisek_dataplane_up 1 when the agent's data plane (TUNs, forwarder) runs, else 0.\n\
             # TYPE pisek_dataplane_up gauge\n\
             pisek_dataplane_up 0\n"
        );
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("line\nbreak"), "line\\nbreak");
        assert_eq!(escape_label_value("plain-name.1"), "plain-name.1");
        assert_eq!(escape_label_value("zürich"), "zürich");
    }

    #[test]
    fn hostile_peer_name_cannot_break_out_of_its_label() {
        let s = Scrape {
            peers: Some(vec![PeerInfo {
                name: "x\"} 1\nfake_metric 2".into(),
                public_key: "k\\".into(),
                endpoint: None,
                tunnel_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
                last_handshake_secs: None,
                rx_bytes: 9,
                tx_bytes: 0,
                rx_packets: 0,
                tx_packets: 0,
                handshakes: 0,
                endpoint_changes: 0,
                drops: BTreeMap::new(),
            }]),
            ..Scrape::default()
        };
        let text = render(&s);
        assert!(text.contains(
            "pisek_wireguard_peer_receive_bytes_total{peer=\"x\\\"} 1\\nfake_metric 2\",public_key=\"k\\\\\"} 9\n"
        ));
        assert!(!text.lines().any(|l| l.starts_with("fake_metric")));
    }

    #[test]
    fn handshake_in_the_future_is_clamped_to_zero_not_wrapped() {
        let mut s = scrape();
        s.now_unix_secs = 3;
        let text = render(&s);
        assert!(text.contains(
            "pisek_wireguard_peer_last_handshake_seconds{peer=\"edge\",public_key=\"cGVlcg==\"} 0\n"
        ));
    }
}
