//! The forwarding pipeline's ingress (and egress) with arbitrary bytes:
//! after a valid WireGuard session between a gateway and an edge, the
//! input is fed (by its first byte) to the stage after decryption on the
//! gateway or the edge, encrypted by the edge and received by the gateway
//! (so it reaches decap, the label table and the VRFs), received raw by
//! the gateway, or sent from a tenant TUN. Every input must be forwarded
//! or dropped with a reason, never panic, and a tenant's drop counters
//! never exceed the node's.
#![no_main]

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use pisek_overlay::forward::{ForwardOutput, PacketBatch, Pipeline, PipelineConfig, Role};
use pisek_overlay::packet::{Encapsulation, Label};
use pisek_overlay::vrf::{InterfaceId, NextHop, TenantId, Vrfs};
use pisek_overlay::wg::{PeerConfig, PublicKey, StaticSecret, WgInterface, WgSettings};

const TENANT: TenantId = TenantId(1);

struct World {
    gateway: Pipeline,
    edge: Pipeline,
    out: ForwardOutput,
    now: Instant,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

const GATEWAY_UNDERLAY: &str = "192.0.2.1:51820";
const EDGE_UNDERLAY: &str = "192.0.2.11:51820";

fn world() -> World {
    let gw_secret = StaticSecret::from([1; 32]);
    let edge_secret = StaticSecret::from([2; 32]);
    let mut gw_wg = WgInterface::new(gw_secret.clone(), WgSettings::default());
    let mut edge_wg = WgInterface::new(edge_secret.clone(), WgSettings::default());
    let edge_peer = gw_wg
        .add_peer(PeerConfig {
            public_key: PublicKey::from(&edge_secret),
            preshared_key: None,
            endpoint: Some(addr(EDGE_UNDERLAY)),
            persistent_keepalive: None,
        })
        .expect("peer");
    gw_wg.add_route("0.0.0.0/0".parse().unwrap(), edge_peer, None).unwrap();
    gw_wg.add_route("::/0".parse().unwrap(), edge_peer, None).unwrap();
    let gw_peer = edge_wg
        .add_peer(PeerConfig {
            public_key: PublicKey::from(&gw_secret),
            preshared_key: None,
            endpoint: Some(addr(GATEWAY_UNDERLAY)),
            persistent_keepalive: None,
        })
        .expect("peer");
    edge_wg.add_route("0.0.0.0/0".parse().unwrap(), gw_peer, None).unwrap();
    edge_wg.add_route("::/0".parse().unwrap(), gw_peer, None).unwrap();

    let mut vrfs = Vrfs::new();
    let vrf = vrfs.create(TENANT, Label::for_vrf(100).unwrap()).unwrap();
    vrf.insert("10.1.0.0/24".parse().unwrap(), NextHop::Local(InterfaceId(1)));
    vrf.insert("fd00:1::/64".parse().unwrap(), NextHop::Local(InterfaceId(1)));
    vrf.insert("10.3.0.0/24".parse().unwrap(), NextHop::Discard);
    for (prefix, encap) in [("10.2.0.0/24", Encapsulation::MplsOverUdp), ("fd00:2::/64", Encapsulation::MplsOverGre)] {
        vrf.insert(
            prefix.parse().unwrap(),
            NextHop::Tunnel {
                endpoint: "100.64.0.254".parse().unwrap(),
                label: Label::for_vrf(200).unwrap(),
                encap,
            },
        );
    }
    vrfs.commit_changed();
    let gw_config = PipelineConfig::new(Role::Gateway, "100.64.0.1".parse().unwrap(), 1500);
    let mut gateway = Pipeline::new(gw_config, vrfs, gw_wg);
    for a in ["10.1.0.5", "fd00:1::5"] {
        gateway.add_workload(TENANT, a.parse::<IpAddr>().unwrap()).unwrap();
    }
    let edge_config = PipelineConfig::new(Role::Edge, "100.64.0.254".parse().unwrap(), 1500);
    let edge = Pipeline::new(edge_config, Vrfs::new(), edge_wg);
    let out = ForwardOutput::new(64, &gw_config.mtu);
    let mut w = World {
        gateway,
        edge,
        out,
        now: Instant::now(),
    };
    // A session: the edge's kernel pings the gateway's tunnel address.
    let mut ping = vec![0u8; 28];
    ping[..20].copy_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 100, 64, 0, 254, 100, 64, 0, 1]);
    let mut batch = PacketBatch::new(1, 1500, 0);
    batch.push(&ping);
    let now = w.now;
    w.edge.egress_fabric_batch(&batch, now, &mut w.out);
    for _ in 0..4 {
        pump(&mut w.out, &mut w.gateway, &mut w.edge, now);
    }
    assert_eq!(w.gateway.fabric_counters().rx_packets, 1, "session up");
    w
}

/// Carries the last output's datagrams to the other side, once.
fn pump(out: &mut ForwardOutput, gateway: &mut Pipeline, edge: &mut Pipeline, now: Instant) {
    let mut to_gw = PacketBatch::new(64, 2048, 0);
    let mut to_edge = PacketBatch::new(64, 2048, 0);
    for (d, to) in out.underlay.datagrams() {
        if to == addr(GATEWAY_UNDERLAY) {
            to_gw.push_datagram(d, addr(EDGE_UNDERLAY));
        } else {
            to_edge.push_datagram(d, addr(GATEWAY_UNDERLAY));
        }
    }
    out.clear();
    gateway.ingress_batch(&to_gw, now, out);
    let from_gw: Vec<_> = out.underlay.datagrams().map(|(d, _)| d.to_vec()).collect();
    out.clear();
    for d in from_gw {
        to_edge.push_datagram(&d, addr(GATEWAY_UNDERLAY));
    }
    edge.ingress_batch(&to_edge, now, out);
}

thread_local! {
    static WORLD: RefCell<World> = RefCell::new(world());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    WORLD.with(|w| {
        let w = &mut *w.borrow_mut();
        let now = w.now;
        w.out.clear();
        let mut packet = bytes.to_vec();
        match mode % 5 {
            0 => w.gateway.deliver_decrypted(&mut packet, now, &mut w.out),
            1 => w.edge.deliver_decrypted(&mut packet, now, &mut w.out),
            2 => {
                // Encrypted by the edge with the live session, so the
                // gateway decrypts it and forwards whatever it is.
                let mut batch = PacketBatch::new(1, 1500, 0);
                if batch.push(bytes) {
                    w.edge.egress_fabric_batch(&batch, now, &mut w.out);
                    let mut to_gw = PacketBatch::new(1, 2048, 0);
                    if let Some((d, _)) = w.out.underlay.datagrams().next() {
                        to_gw.push_datagram(d, addr(EDGE_UNDERLAY));
                    }
                    w.out.clear();
                    w.gateway.ingress_batch(&to_gw, now, &mut w.out);
                }
            }
            3 => {
                let mut batch = PacketBatch::new(1, 65535, 0);
                batch.push_datagram(bytes, addr(EDGE_UNDERLAY));
                w.gateway.ingress_batch(&batch, now, &mut w.out);
            }
            _ => {
                let mut batch = w.gateway.egress_input(1);
                if batch.push(bytes) {
                    w.gateway.egress_batch(TENANT, &mut batch, now, &mut w.out);
                }
            }
        }
        for (p, _) in w.out.local.deliveries() {
            assert!(p.len() <= 65535);
        }
        // A tenant's drops are a share of the node's, reason by reason.
        let node = w.gateway.drops();
        let tenant = w.gateway.tenant_drops(TENANT).expect("the tenant has counters");
        for (reason, packets) in tenant.iter() {
            assert!(packets <= node.get(reason), "{reason}: tenant {packets} > node {}", node.get(reason));
        }
    });
});
