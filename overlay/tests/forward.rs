//! The forwarding pipeline end to end, in memory: two gateways and two
//! edges wired back to back through queues, two tenants with overlapping
//! prefixes. No socket, no sleep: time is passed in.

use ipnet::IpNet;
use pisek_overlay::drop::DropReason;
use pisek_overlay::forward::{
    ForwardOutput, Interface, PacketBatch, Pipeline, PipelineConfig, Role,
};
use pisek_overlay::packet::checksum::{self, Sum};
use pisek_overlay::packet::{Encapsulation, Label};
use pisek_overlay::vrf::{InterfaceId, NextHop, TenantId, Vrfs};
use pisek_overlay::wg::{
    PeerConfig, PeerHealth, PeerId, PublicKey, StaticSecret, WgInterface, WgOutput, WgSettings,
};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const A: TenantId = TenantId(1);
const B: TenantId = TenantId(2);
const GW1: usize = 0;
const GW2: usize = 1;
const EDGE1: usize = 2;
const EDGE2: usize = 3;
const UNDERLAY_MTU: usize = 1500;
/// Pod MTU for a 1500-byte IPv4 underlay and IPv4 tunnel network.
const TENANT_MTU: usize = 1408;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn prefix(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn secret(seed: u8) -> StaticSecret {
    StaticSecret::from([seed; 32])
}

fn public(seed: u8) -> PublicKey {
    PublicKey::from(&secret(seed))
}

fn label(v: u32) -> Label {
    Label::for_vrf(v).expect("test label")
}

/// An IPv4/UDP packet with DF set, a valid header checksum, `len` bytes.
fn ipv4_packet(src: &str, dst: &str, len: usize, fill: u8) -> Vec<u8> {
    let mut p = vec![fill; len];
    p[..20].copy_from_slice(&[
        0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    let (IpAddr::V4(s), IpAddr::V4(d)) = (ip(src), ip(dst)) else {
        panic!("IPv4 addresses expected")
    };
    p[12..16].copy_from_slice(&s.octets());
    p[16..20].copy_from_slice(&d.octets());
    let sum = Sum::new().add_bytes(&p[..20]).checksum();
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[20..28].copy_from_slice(&[0x9c, 0x40, 0x13, 0x89, 0, 0, 0, 0]);
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    p
}

/// An IPv6/UDP packet of `len` bytes.
fn ipv6_packet(src: &str, dst: &str, len: usize, fill: u8) -> Vec<u8> {
    let mut p = vec![fill; len];
    p[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, 17, 64]);
    p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    let (IpAddr::V6(s), IpAddr::V6(d)) = (ip(src), ip(dst)) else {
        panic!("IPv6 addresses expected")
    };
    p[8..24].copy_from_slice(&s.octets());
    p[24..40].copy_from_slice(&d.octets());
    p[40..44].copy_from_slice(&[0x9c, 0x40, 0x13, 0x89]);
    p[44..46].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    p
}

/// The packet as it must arrive: TTL / hop limit one less, IPv4 header
/// checksum recomputed.
fn after_one_hop(p: &[u8]) -> Vec<u8> {
    let mut q = p.to_vec();
    if q[0] >> 4 == 4 {
        q[8] -= 1;
        q[10..12].copy_from_slice(&[0, 0]);
        let sum = Sum::new().add_bytes(&q[..20]).checksum();
        q[10..12].copy_from_slice(&sum.to_be_bytes());
    } else {
        q[7] -= 1;
    }
    q
}

struct Node {
    pipeline: Pipeline,
    underlay: SocketAddr,
    /// Datagrams waiting to be read from this node's socket.
    inbox: VecDeque<(Vec<u8>, SocketAddr)>,
    /// What came out of this node's TUNs.
    delivered: Vec<(Vec<u8>, Interface)>,
    /// False: the node's host is down, datagrams to it vanish.
    alive: bool,
    /// Its peers by node index.
    peers: HashMap<usize, PeerId>,
}

/// Four nodes on an in-memory underlay.
struct Network {
    nodes: Vec<Node>,
    now: Instant,
    output: ForwardOutput,
}

fn tunnel_address(node: usize) -> IpAddr {
    match node {
        GW1 => ip("100.64.0.1"),
        GW2 => ip("100.64.0.2"),
        EDGE1 => ip("100.64.0.254"),
        _ => ip("100.64.0.253"),
    }
}

fn underlay_address(node: usize) -> SocketAddr {
    SocketAddr::new(ip(&format!("192.0.2.{}", node + 1)), 51820)
}

/// A gateway's VRFs: tenants A and B both use 10.1.0.0/24 on gw1 and
/// 10.2.0.0/24 on gw2 (and fd00:1::/64, fd00:2::/64); A goes MPLSoUDP,
/// B MPLSoGRE. Labels: node n binds A to n*1000+1 and B to n*1000+2.
fn gateway_vrfs(node: usize) -> Vrfs {
    let other = 1 - node;
    let mut vrfs = Vrfs::new();
    for (tenant, encap) in [
        (A, Encapsulation::MplsOverUdp),
        (B, Encapsulation::MplsOverGre),
    ] {
        let own_label = label(((node + 1) * 1000) as u32 + tenant.0);
        let remote_label = label(((other + 1) * 1000) as u32 + tenant.0);
        let vrf = vrfs.create(tenant, own_label).expect("vrf");
        let remote = NextHop::Tunnel {
            endpoint: tunnel_address(other),
            label: remote_label,
            encap,
        };
        vrf.insert(
            prefix(&format!("10.{}.0.0/24", node + 1)),
            NextHop::Local(InterfaceId(1)),
        );
        vrf.insert(
            prefix(&format!("fd00:{}::/64", node + 1)),
            NextHop::Local(InterfaceId(1)),
        );
        vrf.insert(prefix(&format!("10.{}.0.0/24", other + 1)), remote);
        vrf.insert(prefix(&format!("fd00:{}::/64", other + 1)), remote);
        // A route to gw2 with a label gw2 never bound.
        vrf.insert(
            prefix("10.9.0.0/24"),
            NextHop::Tunnel {
                endpoint: tunnel_address(other),
                label: label(999_999),
                encap,
            },
        );
    }
    vrfs.commit_changed();
    vrfs
}

fn peer_config(seed: u8, endpoint: Option<SocketAddr>) -> PeerConfig {
    PeerConfig {
        public_key: public(seed),
        preshared_key: None,
        endpoint,
        persistent_keepalive: None,
    }
}

impl Network {
    fn new() -> Network {
        let mut nodes = Vec::new();
        for node in [GW1, GW2, EDGE1, EDGE2] {
            let is_gateway = node == GW1 || node == GW2;
            let role = if is_gateway {
                Role::Gateway
            } else {
                Role::Edge
            };
            let config = PipelineConfig::new(role, tunnel_address(node), UNDERLAY_MTU);
            let vrfs = if is_gateway {
                gateway_vrfs(node)
            } else {
                Vrfs::new()
            };
            let mut wg = WgInterface::new(secret(node as u8 + 1), WgSettings::default());
            let mut peers = HashMap::new();
            if is_gateway {
                // Both edges, edge 1 preferred: crypto-key routing sends the
                // whole tunnel network through them (hub and spoke).
                for edge in [EDGE1, EDGE2] {
                    let id = wg
                        .add_peer(peer_config(edge as u8 + 1, Some(underlay_address(edge))))
                        .expect("peer");
                    peers.insert(edge, id);
                }
                wg.add_route(prefix("100.64.0.0/24"), peers[&EDGE1], Some(peers[&EDGE2]))
                    .expect("route");
            } else {
                for gw in [GW1, GW2] {
                    let id = wg
                        .add_peer(peer_config(gw as u8 + 1, Some(underlay_address(gw))))
                        .expect("peer");
                    peers.insert(gw, id);
                    wg.add_route(IpNet::from(tunnel_address(gw)), id, None)
                        .expect("route");
                }
            }
            let mut pipeline = Pipeline::new(config, vrfs, wg);
            if is_gateway {
                for tenant in [A, B] {
                    let own = node + 1;
                    pipeline
                        .add_workload(tenant, ip(&format!("10.{own}.0.5")))
                        .unwrap();
                    pipeline
                        .add_workload(tenant, ip(&format!("fd00:{own}::5")))
                        .unwrap();
                }
            }
            nodes.push(Node {
                pipeline,
                underlay: underlay_address(node),
                inbox: VecDeque::new(),
                delivered: Vec::new(),
                alive: true,
                peers,
            });
        }
        let output = ForwardOutput::new(64, &nodes[GW1].pipeline.config().mtu);
        Network {
            nodes,
            now: Instant::now(),
            output,
        }
    }

    /// Moves what the last call produced into the network.
    fn route_output(&mut self, from: usize) {
        let source = self.nodes[from].underlay;
        for (d, to) in self.output.underlay.datagrams() {
            if let Some(n) = self.nodes.iter_mut().find(|n| n.underlay == to)
                && n.alive
            {
                n.inbox.push_back((d.to_vec(), source));
            }
        }
        for (p, interface) in self.output.local.deliveries() {
            self.nodes[from].delivered.push((p.to_vec(), interface));
        }
        self.output.clear();
    }

    /// Sends `packets` from `tenant`'s TUN on `node`.
    fn send(&mut self, node: usize, tenant: TenantId, packets: &[Vec<u8>]) {
        let mut batch = self.nodes[node].pipeline.egress_input(packets.len());
        for p in packets {
            assert!(batch.push(p));
        }
        let now = self.now;
        self.nodes[node]
            .pipeline
            .egress_batch(tenant, &mut batch, now, &mut self.output);
        self.route_output(node);
    }

    /// Delivers datagrams until every inbox is empty.
    fn run(&mut self) {
        for _ in 0..20 {
            let mut quiet = true;
            for node in 0..self.nodes.len() {
                let inbox: Vec<_> = self.nodes[node].inbox.drain(..).collect();
                if inbox.is_empty() {
                    continue;
                }
                quiet = false;
                let mut batch = self.nodes[node].pipeline.ingress_input(inbox.len());
                for (d, from) in &inbox {
                    assert!(batch.push_datagram(d, *from));
                }
                let now = self.now;
                self.nodes[node]
                    .pipeline
                    .ingress_batch(&batch, now, &mut self.output);
                self.route_output(node);
            }
            if quiet {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    fn tick(&mut self, node: usize) {
        let now = self.now;
        self.nodes[node].pipeline.tick(now, &mut self.output);
        self.route_output(node);
    }

    fn take_delivered(&mut self, node: usize) -> Vec<(Vec<u8>, Interface)> {
        std::mem::take(&mut self.nodes[node].delivered)
    }

    fn drops(&self, node: usize, reason: DropReason) -> u64 {
        self.nodes[node].pipeline.drops().get(reason)
    }
}

#[test]
fn a_packet_crosses_the_edge_to_the_same_tenant_byte_exact_after_one_hop() {
    let mut net = Network::new();
    let a = ipv4_packet("10.1.0.5", "10.2.0.7", 200, 0xaa);
    net.send(GW1, A, std::slice::from_ref(&a));
    net.run();
    // The first packet waited for the handshake; it arrives all the same.
    let got = net.take_delivered(GW2);
    assert_eq!(got, [(after_one_hop(&a), Interface::Tenant(A))]);

    // And with sessions up, a second one in each tenant, same addresses.
    let b = ipv4_packet("10.1.0.5", "10.2.0.7", 300, 0xbb);
    net.send(GW1, B, std::slice::from_ref(&b));
    net.send(GW1, A, std::slice::from_ref(&a));
    net.run();
    let got = net.take_delivered(GW2);
    assert_eq!(
        got,
        [
            (after_one_hop(&b), Interface::Tenant(B)),
            (after_one_hop(&a), Interface::Tenant(A)),
        ]
    );
    let counters = net.nodes[GW2].pipeline.tenant_counters(A).unwrap();
    assert_eq!((counters.rx_packets, counters.rx_bytes), (2, 400));
    let sent = net.nodes[GW1].pipeline.tenant_counters(A).unwrap();
    assert_eq!((sent.tx_packets, sent.tx_bytes), (2, 400));
    // The edge relayed and never decapsulated.
    assert!(net.take_delivered(EDGE1).is_empty());
    let edge_peer = net.nodes[EDGE1].peers[&GW2];
    let metrics = net.nodes[EDGE1]
        .pipeline
        .wireguard()
        .peer_status(edge_peer)
        .unwrap()
        .metrics;
    assert!(metrics.tx_packets >= 3, "{metrics:?}");
}

#[test]
fn nothing_from_one_tenant_reaches_the_other_with_overlapping_prefixes() {
    let mut net = Network::new();
    let (mut sent_a, mut sent_b) = (Vec::new(), Vec::new());
    for i in 0..20u8 {
        // Same addresses in both tenants, different payloads.
        let p = ipv4_packet("10.1.0.5", "10.2.0.7", 100 + i as usize, i);
        sent_a.push(after_one_hop(&p));
        let q = ipv6_packet("fd00:1::5", "fd00:2::7", 120 + i as usize, i);
        sent_a.push(after_one_hop(&q));
        net.send(GW1, A, &[p, q]);
        let r = ipv4_packet("10.1.0.5", "10.2.0.7", 100 + i as usize, 0x80 | i);
        sent_b.push(after_one_hop(&r));
        net.send(GW1, B, &[r]);
        net.run();
    }
    let got = net.take_delivered(GW2);
    assert_eq!(got.len(), 60);
    for (p, interface) in &got {
        match interface {
            Interface::Tenant(A) => assert!(sent_a.contains(p), "tenant A got a foreign packet"),
            Interface::Tenant(B) => assert!(sent_b.contains(p), "tenant B got a foreign packet"),
            other => panic!("delivered to {other:?}"),
        }
    }
    let count = |t| {
        got.iter()
            .filter(|(_, i)| *i == Interface::Tenant(t))
            .count()
    };
    assert_eq!((count(A), count(B)), (40, 20));
}

#[test]
fn ipv6_packets_cross_both_ways() {
    let mut net = Network::new();
    let there = ipv6_packet("fd00:1::5", "fd00:2::7", 1000, 1);
    let back = ipv6_packet("fd00:2::5", "fd00:1::9", 1000, 2);
    net.send(GW1, B, std::slice::from_ref(&there));
    net.run();
    net.send(GW2, B, std::slice::from_ref(&back));
    net.run();
    assert_eq!(
        net.take_delivered(GW2),
        [(after_one_hop(&there), Interface::Tenant(B))]
    );
    assert_eq!(
        net.take_delivered(GW1),
        [(after_one_hop(&back), Interface::Tenant(B))]
    );
}

#[test]
fn a_spoofed_source_is_dropped_and_counted() {
    let mut net = Network::new();
    // 10.1.0.6 is not a workload of tenant A on gw1 (10.1.0.5 is).
    let spoofed = ipv4_packet("10.1.0.6", "10.2.0.7", 100, 0);
    net.send(GW1, A, &[spoofed]);
    net.run();
    assert!(net.take_delivered(GW2).is_empty());
    assert_eq!(net.drops(GW1, DropReason::SpoofedSource), 1);
    assert!(net.nodes[EDGE1].inbox.is_empty());
}

#[test]
fn a_spoofed_packet_counts_in_its_tenant_and_the_node_total_not_in_the_other_tenant() {
    let mut net = Network::new();
    // 10.1.0.6 is not a workload of tenant A on gw1; tenant B has the same
    // addresses (overlap), and sends nothing wrong.
    let spoofed = ipv4_packet("10.1.0.6", "10.2.0.7", 100, 0);
    net.send(GW1, A, &[spoofed.clone(), spoofed]);
    net.send(GW1, B, &[ipv4_packet("10.1.0.5", "10.2.0.7", 100, 0)]);
    net.send(GW1, B, &[ipv4_packet("10.1.0.5", "192.168.0.1", 100, 0)]);
    net.run();
    let gw1 = &net.nodes[GW1].pipeline;
    let (a, b) = (
        gw1.tenant_drops(A).expect("tenant A"),
        gw1.tenant_drops(B).expect("tenant B"),
    );
    assert_eq!(a.get(DropReason::SpoofedSource), 2);
    assert_eq!(b.get(DropReason::SpoofedSource), 0);
    assert_eq!(gw1.drops().get(DropReason::SpoofedSource), 2);
    // B's own drop is B's, not A's.
    assert_eq!(
        (a.get(DropReason::NoRoute), b.get(DropReason::NoRoute)),
        (0, 1)
    );
    assert_eq!(gw1.drops().get(DropReason::NoRoute), 1);
    assert_eq!((a.total(), b.total(), gw1.drops().total()), (2, 1, 3));
    // B's good packet went through.
    assert_eq!(net.take_delivered(GW2).len(), 1);
}

#[test]
fn a_drop_after_the_label_counts_for_the_receiving_tenant_a_bad_label_only_for_the_node() {
    let mut net = Network::new();
    let vrfs = net.nodes[GW2].pipeline.vrfs_mut();
    vrfs.get_mut(B)
        .expect("tenant B")
        .insert(prefix("10.2.0.128/25"), NextHop::Discard);
    vrfs.commit_changed();
    net.send(GW1, B, &[ipv4_packet("10.1.0.5", "10.2.0.200", 100, 0)]);
    // A label gw2 never bound: no tenant to blame.
    net.send(GW1, A, &[ipv4_packet("10.1.0.5", "10.9.0.1", 100, 0)]);
    net.run();
    assert!(net.take_delivered(GW2).is_empty());
    let gw2 = &net.nodes[GW2].pipeline;
    let (a, b) = (
        gw2.tenant_drops(A).expect("tenant A"),
        gw2.tenant_drops(B).expect("tenant B"),
    );
    assert_eq!(b.get(DropReason::DiscardRoute), 1);
    assert_eq!((a.total(), b.total()), (0, 1));
    assert_eq!(gw2.drops().get(DropReason::DiscardRoute), 1);
    assert_eq!(gw2.drops().get(DropReason::BadLabel), 1);
    assert_eq!(gw2.drops().total(), 2);
    assert_eq!(gw2.tenant_drops(TenantId(9)), None, "no such tenant");
}

#[test]
fn an_unknown_label_is_dropped_and_counted_at_the_receiver() {
    let mut net = Network::new();
    net.send(GW1, A, &[ipv4_packet("10.1.0.5", "10.9.0.1", 100, 0)]);
    net.send(GW1, B, &[ipv4_packet("10.1.0.5", "10.9.0.1", 100, 0)]);
    net.run();
    assert!(net.take_delivered(GW2).is_empty());
    assert_eq!(net.drops(GW2, DropReason::BadLabel), 2);
}

#[test]
fn a_local_route_hands_the_packet_back_to_the_tenant_tun() {
    let mut net = Network::new();
    let p = ipv4_packet("10.1.0.5", "10.1.0.9", 100, 0);
    net.send(GW1, A, std::slice::from_ref(&p));
    assert_eq!(net.take_delivered(GW1), [(p, Interface::Tenant(A))]);
}

#[test]
fn an_expired_ttl_and_a_missing_route_are_dropped_with_their_reasons() {
    let mut net = Network::new();
    let mut p = ipv4_packet("10.1.0.5", "10.2.0.7", 100, 0);
    p[8] = 1;
    net.send(GW1, A, &[p]);
    net.send(GW1, A, &[ipv4_packet("10.1.0.5", "192.168.0.1", 100, 0)]);
    net.send(GW1, A, &[vec![0x45, 0, 0]]);
    assert_eq!(net.drops(GW1, DropReason::TtlExpired), 1);
    assert_eq!(net.drops(GW1, DropReason::NoRoute), 1);
    assert_eq!(net.drops(GW1, DropReason::Malformed), 1);
}

#[test]
fn an_expiring_ttl_is_answered_with_time_exceeded_from_the_gateway() {
    let mut net = Network::new();
    let mut p = ipv4_packet("10.1.0.5", "10.2.0.7", 100, 0);
    p[8] = 1;
    p[10..12].copy_from_slice(&[0, 0]);
    let sum = Sum::new().add_bytes(&p[..20]).checksum();
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut q = ipv6_packet("fd00:1::5", "fd00:2::7", 100, 0);
    q[7] = 1;
    net.send(GW1, A, &[p.clone(), q.clone()]);
    let got = net.take_delivered(GW1);
    assert_eq!(got.len(), 2);

    let icmp = &got[0].0;
    assert!(Sum::new().add_bytes(&icmp[..20]).verifies());
    assert_eq!(
        (&icmp[12..16], &icmp[16..20]),
        (&[169, 254, 1, 1][..], &p[12..16])
    );
    let body = &icmp[20..];
    assert_eq!((body[0], body[1]), (11, 0), "time exceeded in transit");
    assert!(Sum::new().add_bytes(body).verifies(), "ICMP checksum");
    assert_eq!(&body[8..], &p[..], "quotes the packet as it arrived");

    let icmp6 = &got[1].0;
    let body = &icmp6[40..];
    assert_eq!((body[0], body[1]), (3, 0));
    let (IpAddr::V6(s), IpAddr::V6(d)) = (
        IpAddr::from(<[u8; 16]>::try_from(&icmp6[8..24]).unwrap()),
        IpAddr::from(<[u8; 16]>::try_from(&icmp6[24..40]).unwrap()),
    ) else {
        unreachable!()
    };
    assert_eq!(s, ip("fe80::1"));
    assert_eq!(IpAddr::V6(d), ip("fd00:1::5"));
    let sum = checksum::pseudo_header_v6(s, d, 58, body.len() as u32).add_bytes(body);
    assert!(sum.verifies(), "ICMPv6 checksum");
    assert_eq!(&body[8..], &q[..]);
    assert_eq!(net.drops(GW1, DropReason::TtlExpired), 2);
}

/// Checks an ICMP "too big" answer and returns its reported MTU.
fn check_too_big(icmp: &[u8], original: &[u8]) -> u32 {
    if icmp[0] >> 4 == 4 {
        assert!(
            Sum::new().add_bytes(&icmp[..20]).verifies(),
            "IPv4 header checksum"
        );
        assert_eq!(&icmp[12..16], &[169, 254, 1, 1]);
        assert_eq!(&icmp[16..20], &original[12..16], "back to the sender");
        assert_eq!(icmp[9], 1);
        let body = &icmp[20..];
        assert_eq!((body[0], body[1]), (3, 4), "fragmentation needed");
        assert!(Sum::new().add_bytes(body).verifies(), "ICMP checksum");
        assert_eq!(&body[8..28], &original[..20], "quotes the header");
        u32::from(u16::from_be_bytes([body[6], body[7]]))
    } else {
        assert_eq!(icmp[6], 58);
        assert_eq!(&icmp[24..40], &original[8..24]);
        let body = &icmp[40..];
        assert_eq!(body[0], 2, "packet too big");
        let (IpAddr::V6(s), IpAddr::V6(d)) = (
            IpAddr::from(<[u8; 16]>::try_from(&icmp[8..24]).unwrap()),
            IpAddr::from(<[u8; 16]>::try_from(&icmp[24..40]).unwrap()),
        ) else {
            unreachable!()
        };
        let sum = checksum::pseudo_header_v6(s, d, 58, body.len() as u32).add_bytes(body);
        assert!(sum.verifies(), "ICMPv6 checksum");
        u32::from_be_bytes(body[4..8].try_into().unwrap())
    }
}

#[test]
fn an_oversized_df_packet_is_answered_with_the_tenant_mtu() {
    let mut net = Network::new();
    let big = ipv4_packet("10.1.0.5", "10.2.0.7", TENANT_MTU + 1, 0);
    net.send(GW1, A, std::slice::from_ref(&big));
    let big6 = ipv6_packet("fd00:1::5", "fd00:2::7", 1440, 0);
    net.send(GW1, A, std::slice::from_ref(&big6));
    let got = net.take_delivered(GW1);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1, Interface::Tenant(A));
    assert_eq!(
        check_too_big(&got[0].0, &after_one_hop(&big)),
        TENANT_MTU as u32
    );
    assert_eq!(
        check_too_big(&got[1].0, &after_one_hop(&big6)),
        TENANT_MTU as u32
    );
    assert_eq!(net.drops(GW1, DropReason::TooBig), 2);
    // A packet of exactly the MTU goes through.
    let fits = ipv4_packet("10.1.0.5", "10.2.0.7", TENANT_MTU, 0);
    net.send(GW1, A, std::slice::from_ref(&fits));
    net.run();
    assert_eq!(
        net.take_delivered(GW2),
        [(after_one_hop(&fits), Interface::Tenant(A))]
    );
}

#[test]
fn traffic_fails_over_to_the_backup_edge_when_the_preferred_stops_answering() {
    let mut net = Network::new();
    let p = ipv4_packet("10.1.0.5", "10.2.0.7", 500, 7);
    net.send(GW1, A, std::slice::from_ref(&p));
    net.run();
    assert_eq!(net.take_delivered(GW2).len(), 1);
    let edge1_at_gw1 = net.nodes[GW1].peers[&EDGE1];

    // Edge 1 dies. Its session is forgotten (as REJECT_AFTER_TIME would,
    // on boringtun's own clock): the next packet starts a handshake that
    // nobody answers.
    net.nodes[EDGE1].alive = false;
    net.nodes[GW1]
        .pipeline
        .wireguard_mut()
        .expire_sessions(edge1_at_gw1)
        .unwrap();
    net.send(GW1, A, std::slice::from_ref(&p));
    net.run();
    assert!(net.take_delivered(GW2).is_empty());

    net.now += Duration::from_secs(11);
    net.tick(GW1);
    net.run();
    let health = net.nodes[GW1]
        .pipeline
        .wireguard()
        .peer_status(edge1_at_gw1)
        .unwrap()
        .health;
    assert_eq!(health, PeerHealth::Down);

    let q = ipv4_packet("10.1.0.5", "10.2.0.7", 600, 8);
    net.send(GW1, A, std::slice::from_ref(&q));
    net.run();
    assert_eq!(
        net.take_delivered(GW2),
        [(after_one_hop(&q), Interface::Tenant(A))]
    );
    let edge2_metrics = net.nodes[EDGE2]
        .pipeline
        .wireguard()
        .peers()
        .map(|p| p.metrics.rx_packets)
        .sum::<u64>();
    assert!(edge2_metrics >= 1);
}

#[test]
fn the_fabric_tun_reaches_another_nodes_kernel_without_mpls() {
    let mut net = Network::new();
    // A BGP segment from gw1's kernel to the edge's tunnel address.
    let bgp = ipv4_packet("100.64.0.1", "100.64.0.254", 80, 3);
    let mut batch = PacketBatch::new(1, 1500, 0);
    assert!(batch.push(&bgp));
    let now = net.now;
    net.nodes[GW1]
        .pipeline
        .egress_fabric_batch(&batch, now, &mut net.output);
    net.route_output(GW1);
    net.run();
    assert_eq!(net.take_delivered(EDGE1), [(bgp, Interface::Fabric)]);
    assert_eq!(net.nodes[GW1].pipeline.fabric_counters().tx_packets, 1);
    assert_eq!(net.nodes[EDGE1].pipeline.fabric_counters().rx_packets, 1);
}

#[test]
fn a_gateway_refuses_to_relay_for_another_node() {
    let mut net = Network::new();
    let mut out = ForwardOutput::new(4, &net.nodes[GW1].pipeline.config().mtu);
    let mut stray = ipv4_packet("100.64.0.2", "100.64.0.9", 80, 0);
    let now = net.now;
    net.nodes[GW1]
        .pipeline
        .deliver_decrypted(&mut stray, now, &mut out);
    assert!(out.underlay.is_empty() && out.local.is_empty());
    assert_eq!(net.drops(GW1, DropReason::NotForThisNode), 1);
}

#[test]
fn garbage_datagrams_are_dropped_without_panic() {
    let mut net = Network::new();
    let from = underlay_address(EDGE1);
    for d in [&[][..], &[4, 0, 0, 0], &[1; 148], &[4; 200], &[0xff; 32]] {
        net.nodes[GW1].inbox.push_back((d.to_vec(), from));
    }
    net.run();
    assert!(net.take_delivered(GW1).is_empty());
    let refused = net.drops(GW1, DropReason::DecryptFailed) + net.drops(GW1, DropReason::Malformed);
    assert_eq!(refused, 5);
}

#[test]
fn a_service_attached_on_the_edge_is_reached_by_label_without_relay() {
    let mut net = Network::new();
    // The "datacenter service": tenant A on edge 1, 10.250.0.0/24, label 77.
    {
        let edge = &mut net.nodes[EDGE1].pipeline;
        let vrf = edge.vrfs_mut().create(A, label(77)).unwrap();
        vrf.insert(prefix("10.250.0.0/24"), NextHop::Local(InterfaceId(9)));
        edge.vrfs_mut().commit_changed();
        let gw = &mut net.nodes[GW1].pipeline;
        let vrf = gw.vrfs_mut().get_mut(A).unwrap();
        vrf.insert(
            prefix("10.250.0.0/24"),
            NextHop::Tunnel {
                endpoint: tunnel_address(EDGE1),
                label: label(77),
                encap: Encapsulation::MplsOverUdp,
            },
        );
        gw.vrfs_mut().commit_changed();
    }
    let p = ipv4_packet("10.1.0.5", "10.250.0.10", 400, 5);
    net.send(GW1, A, std::slice::from_ref(&p));
    // Tenant B has no such route: nothing leaves gw1 for it.
    net.send(GW1, B, &[ipv4_packet("10.1.0.5", "10.250.0.10", 400, 6)]);
    net.run();
    assert_eq!(
        net.take_delivered(EDGE1),
        [(after_one_hop(&p), Interface::Tenant(A))]
    );
    assert!(net.take_delivered(GW2).is_empty());
    assert_eq!(net.drops(GW1, DropReason::NoRoute), 1);
}

#[test]
fn a_full_output_batch_drops_with_queue_full_instead_of_blocking() {
    let mut net = Network::new();
    let p = ipv4_packet("10.1.0.5", "10.1.0.9", 100, 0);
    let mut out = ForwardOutput::new(2, &net.nodes[GW1].pipeline.config().mtu);
    let mut batch = net.nodes[GW1].pipeline.egress_input(3);
    for _ in 0..3 {
        assert!(batch.push(&p));
    }
    let now = net.now;
    net.nodes[GW1]
        .pipeline
        .egress_batch(A, &mut batch, now, &mut out);
    assert_eq!(out.local.len(), 2);
    assert_eq!(net.drops(GW1, DropReason::QueueFull), 1);
}

#[test]
fn the_edge_drops_a_relayed_packet_whose_outer_ttl_runs_out() {
    let mut net = Network::new();
    let mut out = ForwardOutput::new(4, &net.nodes[EDGE1].pipeline.config().mtu);
    let mut looping = ipv4_packet("100.64.0.1", "100.64.0.2", 80, 0);
    looping[8] = 1;
    let now = net.now;
    net.nodes[EDGE1]
        .pipeline
        .deliver_decrypted(&mut looping, now, &mut out);
    assert!(out.underlay.is_empty());
    assert_eq!(net.drops(EDGE1, DropReason::TtlExpired), 1);
}

/// Catches what a WireGuard interface decrypts.
struct Plaintext {
    buf: Vec<u8>,
    packet: Option<Vec<u8>>,
}

impl WgOutput for Plaintext {
    fn datagram_buffer(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    fn send_datagram(&mut self, _len: usize, _endpoint: SocketAddr) {}
    fn tunnel_buffer(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    fn deliver_to_tunnel(&mut self, len: usize, _peer: PeerId) {
        self.packet = Some(self.buf[..len].to_vec());
    }
}

/// Sends `packet` from tenant `tenant` on gw1 once the session is up and
/// returns the tunnel packet the edge decrypts.
fn tunnel_packet_on_the_wire(tenant: TenantId, packet: &[u8]) -> Vec<u8> {
    let mut net = Network::new();
    net.send(GW1, tenant, &[packet.to_vec()]);
    net.run();
    net.take_delivered(GW2);
    net.send(GW1, tenant, &[packet.to_vec()]);
    let (datagram, from) = net.nodes[EDGE1]
        .inbox
        .pop_front()
        .expect("a datagram to the edge");
    let mut sink = Plaintext {
        buf: vec![0; 2048],
        packet: None,
    };
    let now = net.now;
    net.nodes[EDGE1]
        .pipeline
        .wireguard_mut()
        .receive(&datagram, from, now, &mut sink)
        .expect("authentic");
    sink.packet.expect("a tunnel packet")
}

#[test]
fn the_tunnel_packet_is_mpls_over_udp_between_tunnel_addresses_with_entropy() {
    let inner = ipv4_packet("10.1.0.5", "10.2.0.7", 120, 0x11);
    let outer = tunnel_packet_on_the_wire(A, &inner);
    assert_eq!(outer.len(), 20 + 8 + 4 + 120);
    assert!(Sum::new().add_bytes(&outer[..20]).verifies());
    assert_eq!(outer[9], 17, "UDP");
    assert_eq!(
        &outer[12..16],
        &[100, 64, 0, 1],
        "this node's tunnel address"
    );
    assert_eq!(&outer[16..20], &[100, 64, 0, 2], "the next hop's");
    let source_port = u16::from_be_bytes([outer[20], outer[21]]);
    assert!(
        source_port >= 49152,
        "entropy in the ephemeral range (RFC 7510 §3)"
    );
    assert_eq!(u16::from_be_bytes([outer[22], outer[23]]), 6635);
    let entry = u32::from_be_bytes(outer[28..32].try_into().unwrap());
    assert_eq!(entry >> 12, 2001, "gw2's label for tenant A");
    assert_eq!(entry & 0x100, 0x100, "bottom of stack");
    assert_eq!(&outer[32..], &after_one_hop(&inner)[..]);
}

#[test]
fn a_gre_next_hop_gets_mpls_over_gre() {
    let inner = ipv4_packet("10.1.0.5", "10.2.0.7", 120, 0x22);
    let outer = tunnel_packet_on_the_wire(B, &inner);
    assert_eq!(outer[9], 47, "GRE");
    assert_eq!(&outer[20..24], &[0, 0, 0x88, 0x47], "MPLS unicast in GRE");
    let entry = u32::from_be_bytes(outer[24..28].try_into().unwrap());
    assert_eq!(entry >> 12, 2002, "gw2's label for tenant B");
    assert_eq!(&outer[28..], &after_one_hop(&inner)[..]);
}

/// The drops of `reason` in `tenant` on `node`.
fn tenant_drops(net: &Network, node: usize, tenant: TenantId, reason: DropReason) -> u64 {
    net.nodes[node]
        .pipeline
        .tenant_drops(tenant)
        .expect("tenant")
        .get(reason)
}

#[test]
fn the_kernels_ipv6_chatter_on_a_tenant_tun_is_link_scoped_not_spoofed() {
    let mut net = Network::new();
    let chatter = [
        ipv6_packet("::", "ff02::1:ff00:5", 64, 0), // DAD neighbour solicitation
        ipv6_packet("::", "ff02::16", 64, 0),       // MLDv2 report before an address
        ipv6_packet("fe80::1234", "ff02::16", 64, 0), // MLDv2 report
        ipv6_packet("fe80::1234", "ff02::2", 64, 0), // router solicitation
        ipv6_packet("fe80::1234", "fd00:2::7", 64, 0), // link-local source
        ipv6_packet("fd00:1::5", "fe80::1", 64, 0), // link-local destination
        ipv6_packet("fd00:1::5", "ff05::1:3", 64, 0), // multicast of wider scope
    ];
    net.send(GW1, A, &chatter);
    net.run();
    assert!(net.take_delivered(GW2).is_empty());
    assert!(net.take_delivered(GW1).is_empty());
    let n = chatter.len() as u64;
    assert_eq!(tenant_drops(&net, GW1, A, DropReason::LinkScoped), n);
    assert_eq!(tenant_drops(&net, GW1, A, DropReason::SpoofedSource), 0);
    assert_eq!(tenant_drops(&net, GW1, B, DropReason::LinkScoped), 0);
    assert_eq!(net.drops(GW1, DropReason::LinkScoped), n);
    assert_eq!(net.drops(GW1, DropReason::SpoofedSource), 0);
    assert!(net.nodes[EDGE1].inbox.is_empty());
}

#[test]
fn ipv4_link_scoped_destinations_are_link_scoped_and_forged_link_local_sources_spoofed() {
    let mut net = Network::new();
    let chatter = [
        ipv4_packet("0.0.0.0", "255.255.255.255", 100, 0), // DHCP discover
        ipv4_packet("10.1.0.5", "224.0.0.22", 40, 0),      // IGMPv3 report
        ipv4_packet("10.1.0.5", "239.1.2.3", 40, 0),       // multicast of wider scope
        ipv4_packet("10.1.0.5", "169.254.1.1", 40, 0),     // link-local destination
    ];
    net.send(GW1, A, &chatter);
    // A workload forging a link-local source (its own gateway's address
    // among them) towards a routable destination lies about its address.
    let forged = [
        ipv4_packet("169.254.3.3", "10.2.0.7", 40, 0),
        ipv4_packet("169.254.1.1", "10.2.0.7", 40, 0),
    ];
    net.send(GW1, A, &forged);
    net.run();
    assert!(net.take_delivered(GW2).is_empty());
    assert!(net.take_delivered(GW1).is_empty());
    assert_eq!(tenant_drops(&net, GW1, A, DropReason::LinkScoped), 4);
    assert_eq!(tenant_drops(&net, GW1, A, DropReason::SpoofedSource), 2);
    assert_eq!(net.drops(GW1, DropReason::LinkScoped), 4);
}

#[test]
fn multicast_from_a_workload_never_takes_a_default_route_into_a_tunnel() {
    let mut net = Network::new();
    let gw1 = &mut net.nodes[GW1].pipeline;
    let vrf = gw1.vrfs_mut().get_mut(A).expect("vrf");
    let to_gw2 = NextHop::Tunnel {
        endpoint: tunnel_address(GW2),
        label: label(2001),
        encap: Encapsulation::MplsOverUdp,
    };
    vrf.insert(prefix("0.0.0.0/0"), to_gw2);
    vrf.insert(prefix("::/0"), to_gw2);
    gw1.vrfs_mut().commit_changed();
    net.send(
        GW1,
        A,
        &[
            ipv4_packet("10.1.0.5", "239.1.2.3", 40, 0),
            ipv6_packet("fd00:1::5", "ff0e::1", 64, 0),
        ],
    );
    net.run();
    assert!(net.take_delivered(GW2).is_empty());
    assert!(net.nodes[EDGE1].inbox.is_empty());
    assert_eq!(tenant_drops(&net, GW1, A, DropReason::LinkScoped), 2);
}

#[test]
fn a_spoofed_routable_source_is_still_spoofed_in_both_families() {
    let mut net = Network::new();
    net.send(
        GW1,
        A,
        &[
            ipv4_packet("10.1.0.6", "10.2.0.7", 40, 0),
            ipv6_packet("fd00:1::6", "fd00:2::7", 64, 0),
        ],
    );
    net.run();
    assert_eq!(tenant_drops(&net, GW1, A, DropReason::SpoofedSource), 2);
    assert_eq!(tenant_drops(&net, GW1, A, DropReason::LinkScoped), 0);
}

#[test]
fn the_kernels_chatter_on_the_fabric_tun_is_link_scoped_not_a_missing_peer() {
    let mut net = Network::new();
    let mut batch = PacketBatch::new(4, 1500, 0);
    for p in [
        ipv6_packet("fe80::1234", "ff02::16", 64, 0),
        ipv6_packet("::", "ff02::16", 64, 0),
        ipv4_packet("100.64.0.1", "224.0.0.22", 40, 0),
        // A real routing hole on the tunnel network stays `no-peer`.
        ipv4_packet("100.64.0.1", "192.0.2.99", 40, 0),
    ] {
        assert!(batch.push(&p));
    }
    let now = net.now;
    net.nodes[GW1]
        .pipeline
        .egress_fabric_batch(&batch, now, &mut net.output);
    net.route_output(GW1);
    assert!(net.nodes[EDGE1].inbox.is_empty());
    assert_eq!(net.drops(GW1, DropReason::LinkScoped), 3);
    assert_eq!(net.drops(GW1, DropReason::NoPeer), 1);
}

#[test]
fn a_tunnelled_link_scoped_packet_never_reaches_the_receivers_kernel() {
    // Inner header offsets in an MPLSoUDP packet over IPv4: outer IP 20,
    // UDP 8, one label 4.
    const INNER: usize = 32;
    let cases: [(Vec<u8>, std::ops::Range<usize>, IpAddr); 4] = [
        (
            ipv4_packet("10.1.0.5", "10.2.0.7", 60, 0),
            INNER + 16..INNER + 20,
            ip("224.0.0.1"),
        ),
        (
            ipv4_packet("10.1.0.5", "10.2.0.7", 60, 0),
            INNER + 12..INNER + 16,
            ip("169.254.9.9"),
        ),
        (
            ipv6_packet("fd00:1::5", "fd00:2::7", 64, 0),
            INNER + 24..INNER + 40,
            ip("ff02::1"),
        ),
        (
            ipv6_packet("fd00:1::5", "fd00:2::7", 64, 0),
            INNER + 8..INNER + 24,
            ip("fe80::99"),
        ),
    ];
    for (inner, field, forged) in cases {
        let mut outer = tunnel_packet_on_the_wire(A, &inner);
        let bytes = match forged {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        outer[field].copy_from_slice(&bytes);
        let mut net = Network::new();
        let mut out = ForwardOutput::new(4, &net.nodes[GW2].pipeline.config().mtu);
        let now = net.now;
        net.nodes[GW2]
            .pipeline
            .deliver_decrypted(&mut outer, now, &mut out);
        assert!(out.local.is_empty() && out.underlay.is_empty(), "{forged}");
        assert_eq!(
            tenant_drops(&net, GW2, A, DropReason::LinkScoped),
            1,
            "{forged}"
        );
        assert_eq!(net.drops(GW2, DropReason::LinkScoped), 1, "{forged}");
    }
}
