//! The per-packet operations allocate nothing: encapsulation, decapsulation,
//! the TTL hop, ICMP "too big", VRF lookup (routing trie and compiled
//! forwarding table) and the label table, counted by
//! a global allocator that tallies every allocation of this thread.

use ipnet::IpNet;
use pisek_overlay::drop::{DropCounters, DropReason};
use pisek_overlay::packet::{Encap, Encapsulation, Label, RxChecksum, packet_too_big, ttl};
use pisek_overlay::vrf::{InterfaceId, NextHop, TenantId, Vrfs};
use std::net::IpAddr;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations_during;

#[test]
fn packet_path_operations_do_not_allocate() {
    // The harness sees allocations at all.
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 16]))) > 0);

    let label = Label::for_vrf(1000).unwrap();
    let tenant = TenantId(7);
    let endpoint: IpAddr = "100.64.0.2".parse().unwrap();
    let mut vrfs = Vrfs::new();
    let vrf = vrfs.create(tenant, label).unwrap();
    for i in 0..1000u32 {
        let net: IpNet = format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap();
        vrf.insert(
            net,
            NextHop::Tunnel {
                endpoint,
                label,
                encap: Encapsulation::MplsOverUdp,
            },
        );
    }
    vrf.insert("fd00::/16".parse().unwrap(), NextHop::Local(InterfaceId(3)));
    let uncommitted = vrfs.clone();
    vrfs.commit_changed();

    let mut inner = vec![0u8; 1400];
    inner[..20].copy_from_slice(&[
        0x45, 0, 0x05, 0x78, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 5, 10, 2, 0, 9,
    ]);
    let headroom = Encapsulation::MAX_HEADROOM;
    let mut buf = vec![0u8; headroom + inner.len()];
    buf[headroom..].copy_from_slice(&inner);
    let mut icmp_out = vec![0u8; 1500];
    let mut drops = DropCounters::new();
    let encap = Encap::new("100.64.0.1".parse().unwrap(), endpoint, label);

    let n = allocations_during(|| {
        for encapsulation in [Encapsulation::MplsOverUdp, Encapsulation::MplsOverGre] {
            for table in [&vrfs, &uncommitted] {
                let vrf = table.get(tenant).unwrap();
                assert!(vrf.lookup("10.2.0.9".parse().unwrap()).is_some());
                assert!(vrf.lookup("fd00::1".parse().unwrap()).is_some());
            }
            let payload = headroom..headroom + inner.len();
            ttl::decrement(&mut buf[payload.clone()]).unwrap();
            let range = encapsulation
                .encapsulate(&encap, &mut buf, payload)
                .unwrap();
            let d = encapsulation
                .decapsulate(&buf[range], RxChecksum::Verify)
                .unwrap();
            assert_eq!(
                vrfs.by_label(d.entry.label).map(|v| v.tenant()),
                Some(tenant)
            );
            packet_too_big(&inner, 1300, "10.1.0.1".parse().unwrap(), &mut icmp_out).unwrap();
            drops.record(DropReason::TooBig);
        }
    });
    assert_eq!(n, 0, "the packet path allocated {n} times");
}
