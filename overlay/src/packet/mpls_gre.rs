//! MPLS-in-GRE (RFC 4023): build and parse
//! `IP(v4|v6) / GRE(0x8847) / MPLS(VRF label, S=1) / inner IP`.
//!
//! ```text
//! +------------------------+  outer IPv4 (20) or IPv6 (40), protocol 47
//! | IP header              |
//! +------------------------+
//! | GRE header (4)         |  no checksum, key or sequence (RFC 4023 §4)
//! +------------------------+
//! | MPLS entry (4)         |  VRF label, TC, S=1, TTL 255
//! +------------------------+
//! | tenant IP packet       |  untouched
//! +------------------------+
//! ```

use crate::packet::error::Error;
use crate::packet::flow::flow_hash;
use crate::packet::gre::{self, GreRepr};
use crate::packet::ip;
use crate::packet::mpls;
use crate::packet::tunnel::{
    Decapsulated, Encap, RxChecksum, TxChecksum, decapsulate_mpls, headers_start,
};
use std::ops::Range;

/// MPLS-in-GRE encapsulation and decapsulation.
#[derive(Debug, Clone, Copy)]
pub struct MplsOverGre;

impl MplsOverGre {
    /// Headroom in front of the payload with an IPv4 outer header: 28 bytes
    /// (32 with [`TxChecksum::Full`], which adds the GRE checksum word).
    pub const HEADROOM_V4: usize = ip::IPV4_HEADER_LEN + gre::HEADER_LEN + mpls::HEADER_LEN;
    /// Headroom in front of the payload with an IPv6 outer header: 48 bytes
    /// (52 with [`TxChecksum::Full`]).
    pub const HEADROOM_V6: usize = ip::IPV6_HEADER_LEN + gre::HEADER_LEN + mpls::HEADER_LEN;

    /// Encapsulates the inner packet at `buf[payload]` in place, writing the
    /// outer headers in front of it; returns where the packet lies in `buf`.
    /// [`TxChecksum::Full`] adds a GRE checksum (RFC 2784 §2.5) and so 4
    /// more bytes of headroom; the other settings send none.
    pub fn encapsulate(
        encap: &Encap,
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> Result<Range<usize>, Error> {
        let gre = GreRepr {
            protocol_type: gre::PROTOCOL_MPLS_UNICAST,
            checksum: encap.checksum == TxChecksum::Full,
            key: None,
            sequence: None,
        };
        let ip_len = ip::header_len(&encap.source);
        let start = headers_start(
            buf.len(),
            &payload,
            ip_len + gre.buffer_len() + mpls::HEADER_LEN,
        )?;
        let hash = flow_hash(&buf[payload.clone()]);
        let packet = &mut buf[start..payload.end];
        let (ip_header, gre_packet) = packet.split_at_mut(ip_len);
        ip::emit(
            ip_header,
            encap.source,
            encap.destination,
            ip::PROTOCOL_GRE,
            gre_packet.len(),
            encap.hop_limit,
            hash,
        )?;
        // The MPLS entry first: a GRE checksum covers it.
        encap.stack_entry().emit(&mut mpls::Packet::new_unchecked(
            &mut gre_packet[gre.buffer_len()..],
        ));
        gre.emit(&mut gre::Packet::new_unchecked(gre_packet));
        Ok(start..payload.end)
    }

    /// Parses a received MPLS-in-GRE packet (starting at the outer IP
    /// header). Accepts and ignores a GRE key and sequence number; verifies
    /// a GRE checksum when present and `checksum` asks for it.
    pub fn decapsulate(packet: &[u8], checksum: RxChecksum) -> Result<Decapsulated<'_>, Error> {
        let outer = ip::parse(packet, ip::PROTOCOL_GRE)?;
        let gre_packet = gre::Packet::new_checked(&packet[outer.payload.clone()])?;
        let gre = GreRepr::parse(&gre_packet, checksum == RxChecksum::Verify)?;
        if gre.protocol_type != gre::PROTOCOL_MPLS_UNICAST {
            return Err(Error::NotMplsGre(gre.protocol_type));
        }
        let mpls_start = outer.payload.start + gre_packet.header_len();
        decapsulate_mpls(packet, &outer, mpls_start..outer.payload.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::error::Layer;
    use crate::packet::fixtures::*;

    #[test]
    fn emit_ipv4_gives_rfc4023_layout() {
        let mut buf = vec![0u8; MplsOverGre::HEADROOM_V4 + INNER_V4.len()];
        buf[MplsOverGre::HEADROOM_V4..].copy_from_slice(&INNER_V4);
        let payload = MplsOverGre::HEADROOM_V4..buf.len();
        let range = MplsOverGre::encapsulate(&encap(V4_SRC, V4_DST), &mut buf, payload).unwrap();
        assert_eq!(buf[range], MPLS_GRE_V4);
    }

    #[test]
    fn parse_ipv4_gives_label_and_inner() {
        let d = MplsOverGre::decapsulate(&MPLS_GRE_V4, RxChecksum::Verify).unwrap();
        assert_eq!((d.source, d.destination), (V4_SRC, V4_DST));
        assert_eq!(d.entry.label.value(), LABEL);
        assert_eq!(d.inner, INNER_V4);
        assert_eq!(d.inner_range, 28..61);
    }

    #[test]
    fn round_trips_over_both_families_with_and_without_checksum() {
        for (src, dst) in [(V4_SRC, V4_DST), (V6_SRC, V6_DST)] {
            for checksum in [TxChecksum::Minimal, TxChecksum::Full] {
                let headroom = 52;
                let mut buf = vec![0u8; headroom + INNER_V4.len()];
                buf[headroom..].copy_from_slice(&INNER_V4);
                let mut e = encap(src, dst);
                e.checksum = checksum;
                let range =
                    MplsOverGre::encapsulate(&e, &mut buf, headroom..headroom + INNER_V4.len())
                        .unwrap();
                let d = MplsOverGre::decapsulate(&buf[range.clone()], RxChecksum::Verify).unwrap();
                assert_eq!(
                    (d.source, d.destination, d.inner),
                    (src, dst, &INNER_V4[..])
                );
                if checksum == TxChecksum::Full {
                    let mut bad = buf[range].to_vec();
                    let last = bad.len() - 1;
                    bad[last] ^= 0x40;
                    assert_eq!(
                        MplsOverGre::decapsulate(&bad, RxChecksum::Verify),
                        Err(Error::BadChecksum(Layer::Gre))
                    );
                }
            }
        }
    }

    #[test]
    fn other_gre_payloads_and_protocols_are_refused() {
        let mut p = MPLS_GRE_V4;
        p[22..24].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(
            MplsOverGre::decapsulate(&p, RxChecksum::Verify),
            Err(Error::NotMplsGre(0x0800))
        );
        assert_eq!(
            MplsOverGre::decapsulate(&MPLS_UDP_V4, RxChecksum::Verify),
            Err(Error::WrongProtocol {
                found: 17,
                expected: 47
            })
        );
        for len in 0..MPLS_GRE_V4.len() {
            assert!(
                MplsOverGre::decapsulate(&MPLS_GRE_V4[..len], RxChecksum::Verify).is_err(),
                "len {len}"
            );
        }
    }
}
