//! What the two MPLS decapsulation targets check, whichever encapsulation
//! they fuzz: decapsulation of arbitrary bytes never panics, and what it
//! accepts re-encapsulates to a packet that decapsulates to the same inner
//! packet and label. The inner packet then goes through what the receiving
//! forwarder does with it (flow hash, TTL hop, ICMP "too big"), which must
//! not panic either.

use pisek_overlay::packet::{Encap, Encapsulation, RxChecksum, TxChecksum, flow_hash, packet_too_big, ttl};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub fn decapsulate_and_reencapsulate(encapsulation: Encapsulation, data: &[u8]) {
    for checksum in [RxChecksum::Verify, RxChecksum::Trust] {
        let Ok(d) = encapsulation.decapsulate(data, checksum) else {
            continue;
        };
        assert!(d.inner_range.end <= data.len());
        assert_eq!(&data[d.inner_range.clone()], d.inner);
        inner_packet_path(d.inner);

        let mut encap = Encap::new(d.source, d.destination, d.entry.label);
        encap.checksum = TxChecksum::Full;
        let headroom = Encapsulation::MAX_HEADROOM;
        let mut buf = vec![0u8; headroom + d.inner.len()];
        buf[headroom..].copy_from_slice(d.inner);
        let Ok(range) = encapsulation.encapsulate(&encap, &mut buf, headroom..headroom + d.inner.len()) else {
            continue;
        };
        let again = encapsulation.decapsulate(&buf[range], RxChecksum::Verify).expect("own packet parses");
        assert_eq!(again.inner, d.inner);
        assert_eq!(again.entry.label, d.entry.label);
    }
}

fn inner_packet_path(inner: &[u8]) {
    let _ = flow_hash(inner);
    let mut copy = inner.to_vec();
    if let Ok(ttl) = ttl::decrement(&mut copy) {
        assert!(ttl >= 1);
    }
    let mut out = [0u8; 1500];
    for gateway in [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V6(Ipv6Addr::LOCALHOST)] {
        if let Ok(n) = packet_too_big(inner, 1280, gateway, &mut out) {
            assert!(n <= 1280);
        }
    }
}
