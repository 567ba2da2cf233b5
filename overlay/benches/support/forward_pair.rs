//! Two gateway pipelines peered directly (one WireGuard hop), with a
//! session up and tenant 1 on both: gw1 has 10.1.0.0/24, gw2 10.2.0.0/24.
//! Shared by the forwarding bench and the allocation test.

use pisek_overlay::forward::{ForwardOutput, PacketBatch, Pipeline, PipelineConfig, Role};
use pisek_overlay::packet::{Encapsulation, Label};
use pisek_overlay::vrf::{InterfaceId, NextHop, TenantId, Vrfs};
use pisek_overlay::wg::{PeerConfig, PublicKey, StaticSecret, WgInterface, WgSettings};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

pub const TENANT: TenantId = TenantId(1);

pub struct Pair {
    pub gw1: Pipeline,
    pub gw2: Pipeline,
    pub out: ForwardOutput,
    pub now: Instant,
}

fn underlay(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::from([192, 0, 2, n]), 51820)
}

fn gateway(n: u8, encap: Encapsulation) -> Pipeline {
    let other = 3 - n;
    let secret = StaticSecret::from([n; 32]);
    let mut wg = WgInterface::new(secret, WgSettings::default());
    let peer = wg
        .add_peer(PeerConfig {
            public_key: PublicKey::from(&StaticSecret::from([other; 32])),
            preshared_key: None,
            endpoint: Some(underlay(other)),
            persistent_keepalive: None,
        })
        .expect("peer");
    wg.add_route("100.64.0.0/24".parse().expect("prefix"), peer, None)
        .expect("route");
    let mut vrfs = Vrfs::new();
    let own = Label::for_vrf(1000 + u32::from(n)).expect("label");
    let remote = Label::for_vrf(1000 + u32::from(other)).expect("label");
    let vrf = vrfs.create(TENANT, own).expect("vrf");
    vrf.insert(
        format!("10.{n}.0.0/24").parse().expect("prefix"),
        NextHop::Local(InterfaceId(1)),
    );
    vrf.insert(
        format!("10.{other}.0.0/24").parse().expect("prefix"),
        NextHop::Tunnel {
            endpoint: IpAddr::from([100, 64, 0, other]),
            label: remote,
            encap,
        },
    );
    vrfs.commit_changed();
    let config = PipelineConfig::new(Role::Gateway, IpAddr::from([100, 64, 0, n]), 1500);
    let mut p = Pipeline::new(config, vrfs, wg);
    p.add_workload(TENANT, IpAddr::from([10, n, 0, 5]))
        .expect("workload");
    p
}

/// An IPv4/UDP packet of `len` bytes from gw`from`'s workload to the other's.
pub fn packet(from: u8, len: usize) -> Vec<u8> {
    let to = 3 - from;
    let mut p = vec![0x5a; len];
    p[..20].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, from, 0, 5, 10, to, 0, 7,
    ]);
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[20..24].copy_from_slice(&[0x9c, 0x40, 0x13, 0x89]);
    p
}

impl Pair {
    pub fn new(encap: Encapsulation) -> Pair {
        let gw1 = gateway(1, encap);
        let out = ForwardOutput::new(64, &gw1.config().mtu);
        let mut pair = Pair {
            gw1,
            gw2: gateway(2, encap),
            out,
            now: Instant::now(),
        };
        // Sessions up and every tenant's state made, both ways.
        for from in [1, 2] {
            let mut batch = pair.egress_batch_of(from, 1, 100);
            pair.egress(from, &mut batch);
            for _ in 0..4 {
                pair.carry();
            }
        }
        pair
    }

    /// An egress batch of `n` packets of `len` bytes from gw`from`.
    pub fn egress_batch_of(&self, from: u8, n: usize, len: usize) -> PacketBatch {
        let mut batch = self.gw1.egress_input(n);
        let p = packet(from, len);
        for _ in 0..n {
            assert!(batch.push(&p));
        }
        batch
    }

    pub fn egress(&mut self, from: u8, batch: &mut PacketBatch) {
        let gw = if from == 1 {
            &mut self.gw1
        } else {
            &mut self.gw2
        };
        gw.egress_batch(TENANT, batch, self.now, &mut self.out);
    }

    /// Moves the underlay output into an ingress batch for the other side
    /// (by endpoint) and runs it; returns how many tenant packets came out.
    pub fn carry(&mut self) -> usize {
        let mut to = [PacketBatch::new(64, 2048, 0), PacketBatch::new(64, 2048, 0)];
        for (d, endpoint) in self.out.underlay.datagrams() {
            let dst = if endpoint == underlay(1) { 0 } else { 1 };
            to[dst].push_datagram(d, underlay(2 - dst as u8));
        }
        self.out.clear();
        self.gw1.ingress_batch(&to[0], self.now, &mut self.out);
        self.gw2.ingress_batch(&to[1], self.now, &mut self.out);
        self.out.local.len()
    }
}
