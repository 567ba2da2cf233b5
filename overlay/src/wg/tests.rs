//! Two (or three) interfaces against each other in memory: handshakes, data
//! both ways, replay, unknown keys, roaming, source checks, cookies and
//! failover, with no socket and no sleep.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::*;

/// Collects what an interface produces.
#[derive(Default)]
struct Wire {
    scratch: Vec<u8>,
    datagrams: Vec<(Vec<u8>, SocketAddr)>,
    delivered: Vec<(Vec<u8>, PeerId)>,
}

impl WgOutput for Wire {
    fn datagram_buffer(&mut self) -> &mut [u8] {
        self.scratch.resize(2048, 0);
        &mut self.scratch
    }
    fn send_datagram(&mut self, len: usize, endpoint: SocketAddr) {
        self.datagrams
            .push((self.scratch[..len].to_vec(), endpoint));
    }
    fn tunnel_buffer(&mut self) -> &mut [u8] {
        self.scratch.resize(2048, 0);
        &mut self.scratch
    }
    fn deliver_to_tunnel(&mut self, len: usize, peer: PeerId) {
        self.delivered.push((self.scratch[..len].to_vec(), peer));
    }
}

impl Wire {
    fn take_datagrams(&mut self) -> Vec<(Vec<u8>, SocketAddr)> {
        std::mem::take(&mut self.datagrams)
    }
}

fn secret(seed: u8) -> StaticSecret {
    StaticSecret::from([seed; 32])
}

fn public(seed: u8) -> PublicKey {
    PublicKey::from(&secret(seed))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// A minimal IPv4/UDP packet from `src` to `dst` carrying `payload`.
fn ipv4_packet(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[28..].copy_from_slice(payload);
    p
}

const A_UNDERLAY: &str = "192.0.2.1:51820";
const B_UNDERLAY: &str = "192.0.2.2:51820";
const A_TUNNEL: [u8; 4] = [10, 9, 0, 1];
const B_TUNNEL: [u8; 4] = [10, 9, 0, 2];

/// A knows B's endpoint; B learns A's when A speaks (B is the edge).
struct Pair {
    a: WgInterface,
    b: WgInterface,
    b_at_a: PeerId,
    a_at_b: PeerId,
    wire_a: Wire,
    wire_b: Wire,
    now: Instant,
}

impl Pair {
    fn new() -> Pair {
        let mut a = WgInterface::new(secret(1), WgSettings::default());
        let mut b = WgInterface::new(secret(2), WgSettings::default());
        let b_at_a = a
            .add_peer(PeerConfig {
                public_key: public(2),
                preshared_key: Some([7; 32]),
                endpoint: Some(addr(B_UNDERLAY)),
                persistent_keepalive: None,
            })
            .unwrap();
        let a_at_b = b
            .add_peer(PeerConfig {
                public_key: public(1),
                preshared_key: Some([7; 32]),
                endpoint: None,
                persistent_keepalive: None,
            })
            .unwrap();
        a.add_route("10.9.0.2/32".parse().unwrap(), b_at_a, None)
            .unwrap();
        b.add_route("10.9.0.1/32".parse().unwrap(), a_at_b, None)
            .unwrap();
        Pair {
            a,
            b,
            b_at_a,
            a_at_b,
            wire_a: Wire::default(),
            wire_b: Wire::default(),
            now: Instant::now(),
        }
    }

    /// Carries datagrams back and forth until both sides are quiet; A's
    /// datagrams arrive at B from `a_from`.
    fn exchange(&mut self, a_from: SocketAddr) {
        for _ in 0..10 {
            let to_b = self.wire_a.take_datagrams();
            let to_a = self.wire_b.take_datagrams();
            if to_b.is_empty() && to_a.is_empty() {
                return;
            }
            for (d, _) in to_b {
                let _ = self.b.receive(&d, a_from, self.now, &mut self.wire_b);
            }
            for (d, _) in to_a {
                let _ = self
                    .a
                    .receive(&d, addr(B_UNDERLAY), self.now, &mut self.wire_a);
            }
        }
        panic!("the two interfaces never went quiet");
    }

    /// Establishes a session by sending one packet A -> B.
    fn connect(&mut self) {
        let p = ipv4_packet(A_TUNNEL, B_TUNNEL, b"hello");
        self.a.send(&p, self.now, &mut self.wire_a).unwrap();
        self.exchange(addr(A_UNDERLAY));
    }
}

#[test]
fn first_packet_waits_for_the_handshake_and_then_arrives() {
    let mut t = Pair::new();
    let p = ipv4_packet(A_TUNNEL, B_TUNNEL, b"hello");
    assert_eq!(t.a.send(&p, t.now, &mut t.wire_a), Ok(t.b_at_a));
    assert_eq!(t.wire_a.datagrams.len(), 1);
    assert_eq!(t.wire_a.datagrams[0].0[0], 1, "a handshake initiation");
    assert_eq!(t.wire_a.datagrams[0].1, addr(B_UNDERLAY));
    t.exchange(addr(A_UNDERLAY));
    assert_eq!(t.wire_b.delivered, vec![(p, t.a_at_b)]);
    let b_status = t.b.peer_status(t.a_at_b).unwrap();
    assert_eq!(b_status.endpoint, Some(addr(A_UNDERLAY)));
    assert_eq!(b_status.metrics.rx_packets, 1);
    assert_eq!(b_status.metrics.handshakes, 1);
    assert_eq!(t.a.peer_status(t.b_at_a).unwrap().metrics.tx_packets, 1);
}

#[test]
fn data_flows_both_ways_once_the_session_is_up() {
    let mut t = Pair::new();
    t.connect();
    let back = ipv4_packet(B_TUNNEL, A_TUNNEL, b"and back");
    assert_eq!(t.b.send(&back, t.now, &mut t.wire_b), Ok(t.a_at_b));
    let sent = t.wire_b.take_datagrams();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, addr(A_UNDERLAY), "B answers where A spoke from");
    assert_eq!(
        t.a.receive(&sent[0].0, addr(B_UNDERLAY), t.now, &mut t.wire_a),
        Ok(t.b_at_a)
    );
    assert_eq!(t.wire_a.delivered, vec![(back, t.b_at_a)]);
}

#[test]
fn a_replayed_data_packet_is_dropped() {
    let mut t = Pair::new();
    t.connect();
    let p = ipv4_packet(A_TUNNEL, B_TUNNEL, b"once only");
    t.a.send(&p, t.now, &mut t.wire_a).unwrap();
    let (datagram, _) = t.wire_a.take_datagrams().remove(0);
    let from = addr(A_UNDERLAY);
    assert_eq!(
        t.b.receive(&datagram, from, t.now, &mut t.wire_b),
        Ok(t.a_at_b)
    );
    assert_eq!(
        t.b.receive(&datagram, from, t.now, &mut t.wire_b),
        Err(WgDropReason::Replay)
    );
    let delivered: Vec<_> = t.wire_b.delivered.iter().filter(|(d, _)| *d == p).collect();
    assert_eq!(delivered.len(), 1);
    let status = t.b.peer_status(t.a_at_b).unwrap();
    assert_eq!(status.metrics.drops.get(WgDropReason::Replay), 1);
}

#[test]
fn an_initiation_from_an_unknown_key_is_dropped_silently_and_counted() {
    let mut t = Pair::new();
    // C knows B's public key, but B does not know C.
    let mut c = WgInterface::new(secret(3), WgSettings::default());
    let b_at_c = c
        .add_peer(PeerConfig {
            public_key: public(2),
            preshared_key: None,
            endpoint: Some(addr(B_UNDERLAY)),
            persistent_keepalive: None,
        })
        .unwrap();
    c.add_route("0.0.0.0/0".parse().unwrap(), b_at_c, None)
        .unwrap();
    let mut wire_c = Wire::default();
    c.send(
        &ipv4_packet([10, 9, 0, 3], B_TUNNEL, b"let me in"),
        t.now,
        &mut wire_c,
    )
    .unwrap();
    let (init, _) = wire_c.take_datagrams().remove(0);
    assert_eq!(
        t.b.receive(&init, addr("192.0.2.3:1"), t.now, &mut t.wire_b),
        Err(WgDropReason::UnknownPeer)
    );
    assert!(t.wire_b.datagrams.is_empty(), "no answer to a stranger");
    assert!(t.wire_b.delivered.is_empty());
    assert_eq!(t.b.drops().get(WgDropReason::UnknownPeer), 1);
}

#[test]
fn a_peer_with_the_wrong_key_gets_nothing_through() {
    // A believes B has key 9: its initiation's MAC1 is for the wrong key.
    let mut a = WgInterface::new(secret(1), WgSettings::default());
    let mut b = WgInterface::new(secret(2), WgSettings::default());
    let wrong = a
        .add_peer(PeerConfig {
            public_key: public(9),
            preshared_key: None,
            endpoint: Some(addr(B_UNDERLAY)),
            persistent_keepalive: None,
        })
        .unwrap();
    a.add_route("10.9.0.2/32".parse().unwrap(), wrong, None)
        .unwrap();
    b.add_peer(PeerConfig {
        public_key: public(1),
        preshared_key: None,
        endpoint: None,
        persistent_keepalive: None,
    })
    .unwrap();
    let now = Instant::now();
    let mut wire_a = Wire::default();
    let mut wire_b = Wire::default();
    a.send(&ipv4_packet(A_TUNNEL, B_TUNNEL, b"x"), now, &mut wire_a)
        .unwrap();
    let (init, _) = wire_a.take_datagrams().remove(0);
    assert_eq!(
        b.receive(&init, addr(A_UNDERLAY), now, &mut wire_b),
        Err(WgDropReason::BadMac)
    );
    assert!(wire_b.datagrams.is_empty() && wire_b.delivered.is_empty());
}

#[test]
fn a_roaming_peer_is_answered_at_its_new_address() {
    let mut t = Pair::new();
    t.connect();
    let moved = addr("198.51.100.7:40000");
    t.a.send(
        &ipv4_packet(A_TUNNEL, B_TUNNEL, b"from LTE"),
        t.now,
        &mut t.wire_a,
    )
    .unwrap();
    t.exchange(moved);
    let status = t.b.peer_status(t.a_at_b).unwrap();
    assert_eq!(status.endpoint, Some(moved));
    assert_eq!(status.metrics.endpoint_changes, 1);
    t.b.send(
        &ipv4_packet(B_TUNNEL, A_TUNNEL, b"found you"),
        t.now,
        &mut t.wire_b,
    )
    .unwrap();
    assert_eq!(t.wire_b.datagrams[0].1, moved);
}

#[test]
fn a_forged_or_garbled_datagram_does_not_move_the_endpoint() {
    let mut t = Pair::new();
    t.connect();
    t.a.send(&ipv4_packet(A_TUNNEL, B_TUNNEL, b"x"), t.now, &mut t.wire_a)
        .unwrap();
    let (mut datagram, _) = t.wire_a.take_datagrams().remove(0);
    let last = datagram.len() - 1;
    datagram[last] ^= 1;
    let attacker = addr("203.0.113.66:1");
    assert_eq!(
        t.b.receive(&datagram, attacker, t.now, &mut t.wire_b),
        Err(WgDropReason::DecryptFailed)
    );
    let status = t.b.peer_status(t.a_at_b).unwrap();
    assert_eq!(status.endpoint, Some(addr(A_UNDERLAY)));
}

#[test]
fn a_source_outside_the_peers_routes_is_dropped() {
    let mut t = Pair::new();
    t.connect();
    let spoofed = ipv4_packet([10, 9, 0, 77], B_TUNNEL, b"not mine");
    t.a.send(&spoofed, t.now, &mut t.wire_a).unwrap();
    let (datagram, _) = t.wire_a.take_datagrams().remove(0);
    assert_eq!(
        t.b.receive(&datagram, addr(A_UNDERLAY), t.now, &mut t.wire_b),
        Err(WgDropReason::SourceNotAllowed)
    );
    assert!(!t.wire_b.delivered.iter().any(|(d, _)| *d == spoofed));
}

#[test]
fn expiring_the_sessions_forces_a_new_handshake_and_traffic_resumes() {
    let mut t = Pair::new();
    t.connect();
    t.a.expire_sessions(t.b_at_a).unwrap();
    let p = ipv4_packet(A_TUNNEL, B_TUNNEL, b"after rekey");
    t.a.send(&p, t.now, &mut t.wire_a).unwrap();
    assert_eq!(t.wire_a.datagrams[0].0[0], 1, "a new initiation");
    t.exchange(addr(A_UNDERLAY));
    assert!(t.wire_b.delivered.iter().any(|(d, _)| *d == p));
    assert_eq!(t.b.peer_status(t.a_at_b).unwrap().metrics.handshakes, 2);
}

#[test]
fn under_load_an_initiation_gets_a_cookie_reply() {
    let mut t = Pair::new();
    t.b = WgInterface::new(
        secret(2),
        WgSettings {
            handshake_rate_limit: 0,
            ..WgSettings::default()
        },
    );
    t.b.add_peer(PeerConfig {
        public_key: public(1),
        preshared_key: Some([7; 32]),
        endpoint: None,
        persistent_keepalive: None,
    })
    .unwrap();
    t.a.send(&ipv4_packet(A_TUNNEL, B_TUNNEL, b"x"), t.now, &mut t.wire_a)
        .unwrap();
    let (init, _) = t.wire_a.take_datagrams().remove(0);
    assert_eq!(
        t.b.receive(&init, addr(A_UNDERLAY), t.now, &mut t.wire_b),
        Err(WgDropReason::UnderLoad)
    );
    let (cookie, to) = t.wire_b.take_datagrams().remove(0);
    assert_eq!((cookie[0], cookie.len(), to), (3, 64, addr(A_UNDERLAY)));
    // A accepts the cookie (it will put MAC2 on its next initiation).
    assert_eq!(
        t.a.receive(&cookie, addr(B_UNDERLAY), t.now, &mut t.wire_a),
        Ok(t.b_at_a)
    );
    assert_eq!(t.b.drops().get(WgDropReason::UnderLoad), 1);
}

#[test]
fn garbage_is_dropped_as_malformed_or_unknown() {
    let mut t = Pair::new();
    let from = addr(A_UNDERLAY);
    for len in [0usize, 1, 3, 4, 31, 32, 64, 92, 147, 148, 149, 1500] {
        for fill in [0u8, 1, 2, 3, 4, 0xff] {
            let mut d = vec![fill; len];
            if len >= 4 {
                d[1..4].fill(0);
            }
            assert!(t.b.receive(&d, from, t.now, &mut t.wire_b).is_err());
        }
    }
    assert!(t.wire_b.delivered.is_empty());
}

#[test]
fn traffic_fails_over_to_the_backup_edge_and_back() {
    let now = Instant::now();
    let edge1 = addr("192.0.2.11:51820");
    let edge2 = addr("192.0.2.12:51820");
    let mut gw = WgInterface::new(secret(1), WgSettings::default());
    let mut e1 = WgInterface::new(secret(11), WgSettings::default());
    let mut e2 = WgInterface::new(secret(12), WgSettings::default());
    let peer_to = |key: u8, endpoint| PeerConfig {
        public_key: public(key),
        preshared_key: None,
        endpoint,
        persistent_keepalive: None,
    };
    let p1 = gw.add_peer(peer_to(11, Some(edge1))).unwrap();
    let p2 = gw.add_peer(peer_to(12, Some(edge2))).unwrap();
    gw.add_route("10.0.0.0/8".parse().unwrap(), p1, Some(p2))
        .unwrap();
    for e in [&mut e1, &mut e2] {
        let g = e.add_peer(peer_to(1, None)).unwrap();
        e.add_route("10.9.0.1/32".parse().unwrap(), g, None)
            .unwrap();
    }
    let mut wire = Wire::default();
    let p = ipv4_packet(A_TUNNEL, [10, 1, 2, 3], b"to the datacenter");

    // Edge 1 is dead: its initiation goes unanswered.
    gw.send(&p, now, &mut wire).unwrap();
    assert_eq!(wire.take_datagrams()[0].1, edge1);
    gw.update_timers(now + Duration::from_secs(5), &mut wire);
    assert_eq!(gw.route_to("10.1.2.3".parse().unwrap()), Some(p1));
    let later = now + Duration::from_secs(11);
    gw.update_timers(later, &mut wire);
    wire.take_datagrams();
    assert_eq!(gw.peer_status(p1).unwrap().health, PeerHealth::Down);
    assert_eq!(gw.route_to("10.1.2.3".parse().unwrap()), Some(p2));

    // Traffic now goes to edge 2, which answers.
    gw.send(&p, later, &mut wire).unwrap();
    let mut wire_e2 = Wire::default();
    let gw_addr = addr(A_UNDERLAY);
    for _ in 0..4 {
        for (d, to) in wire.take_datagrams() {
            if to == edge2 {
                let _ = e2.receive(&d, gw_addr, later, &mut wire_e2);
            }
        }
        for (d, _) in wire_e2.take_datagrams() {
            let _ = gw.receive(&d, edge2, later, &mut wire);
        }
    }
    assert!(wire_e2.delivered.iter().any(|(d, _)| *d == p));

    // Edge 1 comes back and answers the next probe: traffic returns to it.
    let probe_time = later + Duration::from_secs(6);
    gw.update_timers(probe_time, &mut wire);
    let mut wire_e1 = Wire::default();
    let probes: Vec<_> = wire
        .take_datagrams()
        .into_iter()
        .filter(|(d, to)| *to == edge1 && d[0] == 1)
        .collect();
    assert!(!probes.is_empty(), "a down peer is probed");
    for (d, _) in probes {
        let _ = e1.receive(&d, gw_addr, probe_time, &mut wire_e1);
    }
    for (d, _) in wire_e1.take_datagrams() {
        let _ = gw.receive(&d, edge1, probe_time, &mut wire);
    }
    assert_eq!(gw.peer_status(p1).unwrap().health, PeerHealth::Up);
    assert_eq!(gw.route_to("10.1.2.3".parse().unwrap()), Some(p1));
}

#[test]
fn peer_table_rejects_duplicates_and_own_key_and_removal_drops_routes() {
    let mut a = WgInterface::new(secret(1), WgSettings::default());
    let cfg = |key| PeerConfig {
        public_key: public(key),
        preshared_key: None,
        endpoint: None,
        persistent_keepalive: Some(25),
    };
    let p = a.add_peer(cfg(2)).unwrap();
    assert_eq!(a.add_peer(cfg(2)), Err(WgError::DuplicatePeer(p)));
    assert_eq!(a.add_peer(cfg(1)), Err(WgError::OwnKey));
    a.add_route("10.0.0.0/8".parse().unwrap(), p, None).unwrap();
    assert_eq!(
        a.add_route("10.0.0.0/8".parse().unwrap(), PeerId(42), None),
        Err(WgError::UnknownPeer(PeerId(42)))
    );
    a.remove_peer(p).unwrap();
    assert_eq!(a.route_to(Ipv4Addr::new(10, 1, 1, 1).into()), None);
    assert_eq!(a.peer_by_key(&public(2)), None);
    // The slot is reused.
    assert_eq!(a.add_peer(cfg(3)), Ok(p));
}

#[test]
fn a_packet_to_a_peer_without_endpoint_is_dropped_with_a_reason() {
    let mut t = Pair::new();
    let p = ipv4_packet(B_TUNNEL, A_TUNNEL, b"who are you");
    assert_eq!(
        t.b.send(&p, t.now, &mut t.wire_b),
        Err(WgDropReason::NoEndpoint)
    );
    assert_eq!(
        t.b.send(
            &ipv4_packet(B_TUNNEL, [1, 1, 1, 1], b""),
            t.now,
            &mut t.wire_b
        ),
        Err(WgDropReason::NoRoute)
    );
    assert_eq!(
        t.b.send(&[0x45, 0], t.now, &mut t.wire_b),
        Err(WgDropReason::BadTunnelPacket)
    );
}

#[test]
fn the_interface_can_move_to_the_forwarding_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<WgInterface>();
}

#[test]
fn a_restarted_side_that_initiates_brings_the_session_back_at_once() {
    let mut t = Pair::new();
    t.connect();
    // B restarts: its sessions are gone, but it kept A's last endpoint.
    t.b = WgInterface::new(secret(2), WgSettings::default());
    t.a_at_b =
        t.b.add_peer(PeerConfig {
            public_key: public(1),
            preshared_key: Some([7; 32]),
            endpoint: Some(addr(A_UNDERLAY)),
            persistent_keepalive: None,
        })
        .unwrap();
    t.b.add_route("10.9.0.1/32".parse().unwrap(), t.a_at_b, None)
        .unwrap();
    assert_eq!(t.b.initiate_handshakes(t.now, &mut t.wire_b), 1);
    assert_eq!(t.wire_b.datagrams[0].1, addr(A_UNDERLAY));
    t.exchange(addr(A_UNDERLAY));
    // A's next packet uses the new session: B decrypts it, no rekey wait.
    t.a.send(
        &ipv4_packet(A_TUNNEL, B_TUNNEL, b"after"),
        t.now,
        &mut t.wire_a,
    )
    .unwrap();
    t.exchange(addr(A_UNDERLAY));
    assert!(
        t.wire_b
            .delivered
            .iter()
            .any(|(p, _)| p.ends_with(b"after")),
        "delivered: {:?}",
        t.wire_b.delivered.len()
    );
    assert!(t.b.peer_status(t.a_at_b).unwrap().metrics.handshakes >= 1);
}
