//! The forwarding pipeline allocates nothing per packet once sessions are
//! up: a batch of 32 through egress (anti-spoofing, VRF, TTL, MTU, encap,
//! WireGuard) and ingress (WireGuard, decap, label, VRF, delivery), counted
//! by a global allocator that tallies this thread's allocations.

#[path = "../benches/support/forward_pair.rs"]
mod forward_pair;

use forward_pair::Pair;
use pisek_overlay::packet::Encapsulation;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations_during;

#[test]
fn a_batch_through_egress_and_ingress_does_not_allocate() {
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 16]))) > 0);
    for encap in [Encapsulation::MplsOverUdp, Encapsulation::MplsOverGre] {
        let mut pair = Pair::new(encap);
        let mut batch = pair.egress_batch_of(1, 32, 1400);
        let mut to_gw2 = pair.gw2.ingress_input(32);
        pair.out.clear();

        let egress = allocations_during(|| pair.egress(1, &mut batch));
        assert_eq!(pair.out.underlay.len(), 32, "{encap}");
        assert_eq!(egress, 0, "egress allocated ({encap})");

        for (d, _) in pair.out.underlay.datagrams() {
            assert!(to_gw2.push_datagram(d, "192.0.2.1:51820".parse().unwrap()));
        }
        pair.out.clear();
        let now = pair.now;
        let ingress = allocations_during(|| pair.gw2.ingress_batch(&to_gw2, now, &mut pair.out));
        assert_eq!(pair.out.local.len(), 32, "{encap}");
        assert_eq!(ingress, 0, "ingress allocated ({encap})");
    }
}
