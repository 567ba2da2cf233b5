//! MPLS-in-UDP (RFC 7510): build and parse
//! `IP(v4|v6) / UDP(entropy -> 6635) / MPLS(VRF label, S=1) / inner IP`.
//!
//! ```text
//! +------------------------+  outer IPv4 (20) or IPv6 (40): tunnel endpoints
//! | IP header              |  IPv6 flow label = flow hash (RFC 6438)
//! +------------------------+
//! | UDP header (8)         |  src = 49152 + (flow hash mod 16384)  RFC 7510 §3
//! |                        |  dst = 6635, checksum per RFC 7510 §5
//! +------------------------+
//! | MPLS entry (4)         |  VRF label, TC, S=1, TTL 255
//! +------------------------+
//! | tenant IP packet       |  untouched: written by the caller, never copied
//! +------------------------+
//! ```
//! The outer IP and UDP headers are written and read with `etherparse`
//! (through [`crate::packet::ip`]); the MPLS entry with [`crate::packet::mpls`],
//! which etherparse does not model.

use crate::packet::checksum::Sum;
use crate::packet::error::{Error, Layer, need};
use crate::packet::flow::flow_hash;
use crate::packet::ip;
use crate::packet::mpls;
use crate::packet::tunnel::{
    Decapsulated, Encap, RxChecksum, TxChecksum, decapsulate_mpls, headers_start,
};
use etherparse::{UdpHeader, UdpHeaderSlice};
use std::net::IpAddr;
use std::ops::Range;

/// UDP destination port of MPLS-in-UDP (RFC 7510 §3, IANA "mpls-in-udp").
pub const UDP_PORT: u16 = 6635;
/// First source port of the dynamic range that carries entropy (RFC 7510 §3,
/// RFC 6335 §6: 49152-65535).
pub const ENTROPY_PORT_MIN: u16 = 49152;
/// Length of the UDP header.
pub const UDP_HEADER_LEN: usize = UdpHeader::LEN;

/// The entropy source port for a flow hash: always in 49152..=65535, as
/// RFC 7510 §3 asks ("SHOULD be within the ephemeral port range").
pub const fn entropy_port(flow_hash: u32) -> u16 {
    // 49152..=65535 holds exactly 2^14 ports: keep 14 bits of the hash.
    ENTROPY_PORT_MIN | (flow_hash as u16 & 0x3fff)
}

/// MPLS-in-UDP encapsulation and decapsulation.
#[derive(Debug, Clone, Copy)]
pub struct MplsOverUdp;

impl MplsOverUdp {
    /// Headroom in front of the payload with an IPv4 outer header: 32 bytes.
    pub const HEADROOM_V4: usize = ip::IPV4_HEADER_LEN + UDP_HEADER_LEN + mpls::HEADER_LEN;
    /// Headroom in front of the payload with an IPv6 outer header: 52 bytes.
    pub const HEADROOM_V6: usize = ip::IPV6_HEADER_LEN + UDP_HEADER_LEN + mpls::HEADER_LEN;

    /// Encapsulates the inner packet at `buf[payload]` in place: the outer
    /// headers are written into the bytes just in front of it, which the
    /// caller reserved (at least `HEADROOM_V4`/`HEADROOM_V6`). Returns where
    /// the finished packet lies in `buf`. The entropy is the inner flow's
    /// [`flow_hash`].
    pub fn encapsulate(
        encap: &Encap,
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> Result<Range<usize>, Error> {
        let hash = buf.get(payload.clone()).map(flow_hash).unwrap_or(0);
        Self::encapsulate_with_entropy(encap, hash, buf, payload)
    }

    /// [`MplsOverUdp::encapsulate`] with the flow hash given, for a caller
    /// that already computed one (or a test that wants fixed bytes).
    pub fn encapsulate_with_entropy(
        encap: &Encap,
        flow_hash: u32,
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> Result<Range<usize>, Error> {
        let ip_len = ip::header_len(&encap.source);
        let start = headers_start(
            buf.len(),
            &payload,
            ip_len + UDP_HEADER_LEN + mpls::HEADER_LEN,
        )?;
        let udp_len = UDP_HEADER_LEN + mpls::HEADER_LEN + payload.len();
        let udp_len_field =
            u16::try_from(udp_len).map_err(|_| Error::PayloadTooLong(payload.len()))?;

        let packet = &mut buf[start..payload.end];
        let (ip_header, udp) = packet.split_at_mut(ip_len);
        ip::emit(
            ip_header,
            encap.source,
            encap.destination,
            ip::PROTOCOL_UDP,
            udp_len,
            encap.hop_limit,
            flow_hash,
        )?;
        let mut header = UdpHeader {
            source_port: entropy_port(flow_hash),
            destination_port: UDP_PORT,
            length: udp_len_field,
            checksum: 0,
        };
        let entry = encap.stack_entry();
        entry.emit(&mut mpls::Packet::new_unchecked(&mut udp[UDP_HEADER_LEN..]));

        let pseudo = || match (encap.source, encap.destination) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                crate::packet::checksum::pseudo_header_v4(s, d, ip::PROTOCOL_UDP, udp_len_field)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                crate::packet::checksum::pseudo_header_v6(s, d, ip::PROTOCOL_UDP, udp_len as u32)
            }
            _ => Sum::new(),
        };
        header.checksum = match (encap.checksum, encap.source) {
            (TxChecksum::Minimal, IpAddr::V4(_)) => 0,
            (TxChecksum::Offload, _) => pseudo().folded(),
            (TxChecksum::Minimal | TxChecksum::Full, _) => {
                udp[..UDP_HEADER_LEN].copy_from_slice(&header.to_bytes());
                pseudo().add_bytes(udp).udp_checksum()
            }
        };
        udp[..UDP_HEADER_LEN].copy_from_slice(&header.to_bytes());
        Ok(start..payload.end)
    }

    /// Parses a received MPLS-in-UDP packet (starting at the outer IP
    /// header) and returns the label stack entry and the inner packet,
    /// borrowed. Refuses fragments, IPv6 extension headers, ports other
    /// than 6635, label stacks deeper than one entry and a payload that is
    /// not IP. The caller maps the label to a VRF.
    pub fn decapsulate(packet: &[u8], checksum: RxChecksum) -> Result<Decapsulated<'_>, Error> {
        let outer = ip::parse(packet, ip::PROTOCOL_UDP)?;
        let ip_payload = &packet[outer.payload.clone()];
        let udp = UdpHeaderSlice::from_slice(ip_payload).map_err(|_| Error::Truncated {
            layer: Layer::Udp,
            needed: UDP_HEADER_LEN,
            available: ip_payload.len(),
        })?;
        if udp.destination_port() != UDP_PORT {
            return Err(Error::NotMplsPort(udp.destination_port()));
        }
        let udp_len = usize::from(udp.length());
        if udp_len < UDP_HEADER_LEN {
            return Err(Error::Malformed {
                layer: Layer::Udp,
                reason: "length shorter than the header",
            });
        }
        need(Layer::Udp, udp_len, ip_payload.len())?;
        let datagram = &ip_payload[..udp_len];
        if checksum == RxChecksum::Verify {
            match (udp.checksum(), outer.source) {
                // RFC 7510 §5 / RFC 768: zero means "not computed", allowed over IPv4.
                (0, IpAddr::V4(_)) => {}
                // RFC 7510 §5: over IPv6 a zero checksum is refused unless the
                // operator configured zero-checksum tunnels (RFC 6936 §5).
                (0, IpAddr::V6(_)) => return Err(Error::BadChecksum(Layer::Udp)),
                _ => {
                    if !outer
                        .pseudo_header(ip::PROTOCOL_UDP, udp_len)
                        .add_bytes(datagram)
                        .verifies()
                    {
                        return Err(Error::BadChecksum(Layer::Udp));
                    }
                }
            }
        }

        let mpls_start = outer.payload.start + UDP_HEADER_LEN;
        let datagram_end = outer.payload.start + udp_len;
        decapsulate_mpls(packet, &outer, mpls_start..datagram_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::fixtures::*;
    use crate::packet::mpls::{Label, LabelStackEntry};
    use std::net::Ipv6Addr;

    /// A buffer with `headroom` free bytes, then `inner`.
    fn with_headroom(headroom: usize, inner: &[u8]) -> (Vec<u8>, Range<usize>) {
        let mut buf = vec![0xee; headroom + inner.len()];
        buf[headroom..].copy_from_slice(inner);
        (buf, headroom..headroom + inner.len())
    }

    #[test]
    fn entropy_port_stays_in_dynamic_range() {
        for hash in [0, 1, 0x3fff, 0x4000, 0xffff, u32::MAX, FLOW_HASH] {
            assert!((49152..=65535).contains(&entropy_port(hash)), "{hash:#x}");
        }
        assert_eq!(entropy_port(FLOW_HASH), 0xd678);
    }

    #[test]
    fn emit_ipv4_gives_rfc7510_layout() {
        let (mut buf, payload) = with_headroom(MplsOverUdp::HEADROOM_V4 + 7, &INNER_V4);
        let range = MplsOverUdp::encapsulate_with_entropy(
            &encap(V4_SRC, V4_DST),
            FLOW_HASH,
            &mut buf,
            payload,
        )
        .unwrap();
        assert_eq!(range, 7..7 + MPLS_UDP_V4.len());
        assert_eq!(buf[range], MPLS_UDP_V4);
        assert!(
            buf[..7].iter().all(|b| *b == 0xee),
            "wrote in front of the headroom"
        );
    }

    #[test]
    fn emit_ipv6_computes_udp_checksum() {
        let (mut buf, payload) = with_headroom(MplsOverUdp::HEADROOM_V6, &INNER_V4);
        let range = MplsOverUdp::encapsulate_with_entropy(
            &encap(V6_SRC, V6_DST),
            FLOW_HASH,
            &mut buf,
            payload,
        )
        .unwrap();
        assert_eq!(buf[range], MPLS_UDP_V6);
    }

    #[test]
    fn full_checksum_over_ipv4_verifies_on_receive() {
        let (mut buf, payload) = with_headroom(MplsOverUdp::HEADROOM_V4, &INNER_V4);
        let mut e = encap(V4_SRC, V4_DST);
        e.checksum = TxChecksum::Full;
        let range = MplsOverUdp::encapsulate(&e, &mut buf, payload).unwrap();
        assert_ne!(buf[26..28], [0, 0]);
        let d = MplsOverUdp::decapsulate(&buf[range], RxChecksum::Verify).unwrap();
        assert_eq!(d.inner, INNER_V4);
    }

    #[test]
    fn offload_writes_the_pseudo_header_sum_only() {
        let (mut buf, payload) = with_headroom(MplsOverUdp::HEADROOM_V6, &INNER_V4);
        let mut e = encap(V6_SRC, V6_DST);
        e.checksum = TxChecksum::Offload;
        let range =
            MplsOverUdp::encapsulate_with_entropy(&e, FLOW_HASH, &mut buf, payload).unwrap();
        let (src, dst) = (
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        );
        let expected = crate::packet::checksum::pseudo_header_v6(src, dst, 17, 45).folded();
        assert_eq!(buf[range][46..48], expected.to_be_bytes());
    }

    #[test]
    fn parse_ipv4_gives_label_and_borrowed_inner() {
        let d = MplsOverUdp::decapsulate(&MPLS_UDP_V4, RxChecksum::Verify).unwrap();
        assert_eq!(d.source, V4_SRC);
        assert_eq!(d.destination, V4_DST);
        assert_eq!(
            d.entry,
            LabelStackEntry::vrf(Label::for_vrf(LABEL).unwrap())
        );
        assert_eq!(d.inner, INNER_V4);
        assert_eq!(d.inner_range, 32..65);
        assert!(std::ptr::eq(d.inner.as_ptr(), MPLS_UDP_V4[32..].as_ptr()));
    }

    #[test]
    fn parse_ipv6_verifies_checksum() {
        let d = MplsOverUdp::decapsulate(&MPLS_UDP_V6, RxChecksum::Verify).unwrap();
        assert_eq!(d.source, V6_SRC);
        assert_eq!(d.inner, INNER_V4);
    }

    #[test]
    fn round_trips_for_every_outer_and_inner_family() {
        let mut inner_v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        inner_v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8].repeat(8));
        inner_v6.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]);
        for inner in [&INNER_V4[..], &inner_v6[..]] {
            for (src, dst) in [(V4_SRC, V4_DST), (V6_SRC, V6_DST)] {
                for checksum in [TxChecksum::Minimal, TxChecksum::Full] {
                    let (mut buf, payload) = with_headroom(MplsOverUdp::HEADROOM_V6, inner);
                    let mut e = encap(src, dst);
                    e.checksum = checksum;
                    let range = MplsOverUdp::encapsulate(&e, &mut buf, payload).unwrap();
                    let d = MplsOverUdp::decapsulate(&buf[range], RxChecksum::Verify).unwrap();
                    assert_eq!((d.source, d.destination, d.inner), (src, dst, inner));
                    assert_eq!(d.entry.label.value(), LABEL);
                }
            }
        }
    }

    #[test]
    fn missing_headroom_is_refused() {
        let (mut buf, payload) = with_headroom(MplsOverUdp::HEADROOM_V4 - 1, &INNER_V4);
        assert_eq!(
            MplsOverUdp::encapsulate(&encap(V4_SRC, V4_DST), &mut buf, payload),
            Err(Error::NoHeadroom {
                needed: 32,
                available: 31
            })
        );
        let (mut buf, payload) = with_headroom(64, &INNER_V4);
        assert_eq!(
            MplsOverUdp::encapsulate(&encap(V4_SRC, V6_DST), &mut buf, payload),
            Err(Error::MixedFamilies)
        );
    }

    #[test]
    fn corrupted_packets_give_errors() {
        let mut p = MPLS_UDP_V4;
        p[10] ^= 1;
        assert_eq!(
            MplsOverUdp::decapsulate(&p, RxChecksum::Verify),
            Err(Error::BadIpv4Checksum)
        );

        let mut p = MPLS_UDP_V6;
        p[80] ^= 1;
        assert_eq!(
            MplsOverUdp::decapsulate(&p, RxChecksum::Verify),
            Err(Error::BadChecksum(Layer::Udp))
        );
        assert!(MplsOverUdp::decapsulate(&p, RxChecksum::Trust).is_ok());

        let mut p = MPLS_UDP_V6;
        p[46..48].fill(0);
        assert_eq!(
            MplsOverUdp::decapsulate(&p, RxChecksum::Verify),
            Err(Error::BadChecksum(Layer::Udp))
        );

        let mut p = MPLS_UDP_V4;
        p[30] &= !0x01; // clear S
        assert_eq!(
            MplsOverUdp::decapsulate(&p, RxChecksum::Verify),
            Err(Error::LabelStackTooDeep)
        );

        let mut p = MPLS_UDP_V4;
        p[23] = 0xec; // port 6636
        assert_eq!(
            MplsOverUdp::decapsulate(&p, RxChecksum::Verify),
            Err(Error::NotMplsPort(6636))
        );

        let mut p = MPLS_UDP_V4;
        p[32] = 0x15; // inner is not IP
        assert!(matches!(
            MplsOverUdp::decapsulate(&p, RxChecksum::Verify),
            Err(Error::Malformed {
                layer: Layer::InnerIp,
                ..
            })
        ));
    }

    #[test]
    fn fragments_and_short_packets_give_errors() {
        let mut p = MPLS_UDP_V4;
        p[6] = 0x20; // MF, checksum now stale: fix it
        p[10..12].fill(0);
        let c = crate::packet::checksum::Sum::new()
            .add_bytes(&p[..20])
            .checksum();
        p[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            MplsOverUdp::decapsulate(&p, RxChecksum::Verify),
            Err(Error::Fragmented)
        );

        for len in 0..MPLS_UDP_V4.len() {
            assert!(
                MplsOverUdp::decapsulate(&MPLS_UDP_V4[..len], RxChecksum::Verify).is_err(),
                "len {len}"
            );
        }
        for len in 0..MPLS_UDP_V6.len() {
            assert!(
                MplsOverUdp::decapsulate(&MPLS_UDP_V6[..len], RxChecksum::Verify).is_err(),
                "len {len}"
            );
        }
    }
}
