//! ICMP "fragmentation needed" (RFC 792, RFC 1191) and ICMPv6 "packet too
//! big" (RFC 4443 §3.2) for tenant packets that do not fit the overlay's
//! path MTU, so that path MTU discovery works through the tunnel.
//!
//! The forwarder calls [`packet_too_big`] when an inner packet exceeds the
//! tenant MTU (and, for IPv4, has DF set; a packet without DF may be
//! fragmented instead). The message is written into a caller buffer; the
//! caller sends it back into the tenant's interface.

use crate::packet::checksum::{self, Sum};
use crate::packet::error::{Error, Layer};
use crate::packet::ip;
use etherparse::{IpNumber, Ipv4HeaderSlice, Ipv6Header, Ipv6HeaderSlice};
use std::net::IpAddr;

/// ICMP type "destination unreachable" (RFC 792).
pub const ICMP_DEST_UNREACHABLE: u8 = 3;
/// ICMP code "fragmentation needed and DF set" (RFC 792).
pub const ICMP_CODE_FRAG_NEEDED: u8 = 4;
/// ICMPv6 type "packet too big" (RFC 4443 §3.2).
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;

/// ICMP types that are error messages, about which no error is sent
/// (RFC 1122 §3.2.2): unreachable, source quench, redirect, time exceeded,
/// parameter problem.
const ICMP_ERROR_TYPES: [u8; 5] = [3, 4, 5, 11, 12];
/// ICMPv6 error messages have types 0-127 (RFC 4443 §2.1).
const ICMPV6_FIRST_INFORMATIONAL: u8 = 128;

/// The smallest MTU an IPv4 router may report (RFC 791: every host must
/// accept 68-byte datagrams).
pub const IPV4_MIN_MTU: u32 = 68;
/// The IPv6 minimum link MTU (RFC 8200 §5).
pub const IPV6_MIN_MTU: u32 = 1280;
/// An ICMP error quotes the original packet up to 576 bytes in all
/// (RFC 1812 §4.3.2.3).
const IPV4_ERROR_MAX: usize = 576;
/// An ICMPv6 error quotes as much as fits in the minimum MTU (RFC 4443 §2.4(c)).
const IPV6_ERROR_MAX: usize = IPV6_MIN_MTU as usize;

/// ICMP/ICMPv6 header of these messages: type, code, checksum, 4 bytes of
/// MTU field.
const ICMP_HEADER_LEN: usize = 8;
/// Hop limit of the messages the overlay originates.
const HOP_LIMIT: u8 = 64;

mod field {
    use std::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// RFC 1191 §4: unused (16 bits), then the next-hop MTU (16 bits).
    pub const V4_NEXT_HOP_MTU: Range<usize> = 6..8;
    /// RFC 4443 §3.2: the MTU, 32 bits.
    pub const V6_MTU: Range<usize> = 4..8;
}

/// Writes a "too big" error about `original` (the tenant's IP packet,
/// starting at its IP header) into `out`, from `source` (the address the
/// overlay answers from, such as the tenant gateway's), reporting `mtu`.
/// Returns the length of the message, an IP packet ready to deliver.
///
/// Refuses ([`Error::IcmpSuppressed`]) where the RFCs forbid an error:
/// about an ICMP error message, a non-initial fragment, or a packet from an
/// unspecified, multicast or broadcast source (RFC 1122 §3.2.2, RFC 1812
/// §4.3.2.7, RFC 4443 §2.4(e)).
pub fn packet_too_big(
    original: &[u8],
    mtu: u32,
    source: IpAddr,
    out: &mut [u8],
) -> Result<usize, Error> {
    match (original.first().map(|b| b >> 4), source) {
        (Some(4), IpAddr::V4(_)) => too_big_v4(original, mtu, source, out),
        (Some(6), IpAddr::V6(_)) => too_big_v6(original, mtu, source, out),
        (Some(4 | 6), _) => Err(Error::MixedFamilies),
        (None, _) => Err(Error::Truncated {
            layer: Layer::InnerIp,
            needed: 1,
            available: 0,
        }),
        _ => Err(Error::Malformed {
            layer: Layer::InnerIp,
            reason: "neither IPv4 nor IPv6",
        }),
    }
}

fn too_big_v4(original: &[u8], mtu: u32, source: IpAddr, out: &mut [u8]) -> Result<usize, Error> {
    let header = Ipv4HeaderSlice::from_slice(original).map_err(|_| Error::Malformed {
        layer: Layer::InnerIp,
        reason: "bad IPv4 header",
    })?;
    let to = header.source_addr();
    if to.is_unspecified() || to.is_multicast() || to.is_broadcast() {
        return Err(Error::IcmpSuppressed(
            "source address is not a unicast host",
        ));
    }
    let destination = header.destination_addr();
    if destination.is_multicast() || destination.is_broadcast() {
        // RFC 1812 §4.3.2.7: no ICMP error about a multicast or broadcast
        // datagram (IPv6 differs: RFC 4443 §2.4(e.3) allows "too big").
        return Err(Error::IcmpSuppressed(
            "destination is multicast or broadcast",
        ));
    }
    if header.fragments_offset().value() != 0 {
        return Err(Error::IcmpSuppressed("non-initial fragment"));
    }
    let header_len = header.slice().len();
    if header.protocol() == IpNumber::ICMP {
        // An ICMP error is never sent about an ICMP error; a message whose
        // type cannot be read is treated as one.
        match original.get(header_len) {
            Some(t) if !ICMP_ERROR_TYPES.contains(t) => {}
            _ => return Err(Error::IcmpSuppressed("packet is an ICMP error")),
        }
    }
    let announced = usize::from(header.total_len()).clamp(header_len, original.len());
    let quoted = announced.min(IPV4_ERROR_MAX - ip::IPV4_HEADER_LEN - ICMP_HEADER_LEN);
    let icmp_len = ICMP_HEADER_LEN + quoted;
    let total = ip::IPV4_HEADER_LEN + icmp_len;
    need_out(total, out.len())?;

    let (ip_header, icmp) = out[..total].split_at_mut(ip::IPV4_HEADER_LEN);
    ip::emit(
        ip_header,
        source,
        to.into(),
        ip::PROTOCOL_ICMP,
        icmp_len,
        HOP_LIMIT,
        0,
    )?;
    icmp[..ICMP_HEADER_LEN].fill(0);
    icmp[field::TYPE] = ICMP_DEST_UNREACHABLE;
    icmp[field::CODE] = ICMP_CODE_FRAG_NEEDED;
    let mtu = mtu.clamp(IPV4_MIN_MTU, u32::from(u16::MAX)) as u16;
    icmp[field::V4_NEXT_HOP_MTU].copy_from_slice(&mtu.to_be_bytes());
    icmp[ICMP_HEADER_LEN..].copy_from_slice(&original[..quoted]);
    let sum = Sum::new().add_bytes(icmp).checksum();
    icmp[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    Ok(total)
}

fn too_big_v6(original: &[u8], mtu: u32, source: IpAddr, out: &mut [u8]) -> Result<usize, Error> {
    let header = Ipv6HeaderSlice::from_slice(original).map_err(|_| Error::Truncated {
        layer: Layer::InnerIp,
        needed: ip::IPV6_HEADER_LEN,
        available: original.len(),
    })?;
    let to = header.source_addr();
    if to.is_unspecified() || to.is_multicast() {
        return Err(Error::IcmpSuppressed(
            "source address is not a unicast host",
        ));
    }
    // Walk the extension headers to see whether the packet is an ICMPv6
    // error (RFC 4443 §2.4(e.1)); a chain that cannot be walked counts as one.
    let (next, rest) = Ipv6Header::skip_all_header_extensions_in_slice(
        &original[ip::IPV6_HEADER_LEN..],
        header.next_header(),
    )
    .map_err(|_| Error::IcmpSuppressed("extension headers cannot be read"))?;
    if next.0 == ip::PROTOCOL_ICMPV6 {
        match rest.first() {
            Some(t) if *t >= ICMPV6_FIRST_INFORMATIONAL => {}
            _ => return Err(Error::IcmpSuppressed("packet is an ICMPv6 error")),
        }
    }
    let announced =
        (ip::IPV6_HEADER_LEN + usize::from(header.payload_length())).min(original.len());
    let quoted = announced.min(IPV6_ERROR_MAX - ip::IPV6_HEADER_LEN - ICMP_HEADER_LEN);
    let icmp_len = ICMP_HEADER_LEN + quoted;
    let total = ip::IPV6_HEADER_LEN + icmp_len;
    need_out(total, out.len())?;

    let (ip_header, icmp) = out[..total].split_at_mut(ip::IPV6_HEADER_LEN);
    ip::emit(
        ip_header,
        source,
        to.into(),
        ip::PROTOCOL_ICMPV6,
        icmp_len,
        HOP_LIMIT,
        0,
    )?;
    icmp[..ICMP_HEADER_LEN].fill(0);
    icmp[field::TYPE] = ICMPV6_PACKET_TOO_BIG;
    icmp[field::V6_MTU].copy_from_slice(&mtu.max(IPV6_MIN_MTU).to_be_bytes());
    icmp[ICMP_HEADER_LEN..].copy_from_slice(&original[..quoted]);
    let IpAddr::V6(from) = source else {
        return Err(Error::MixedFamilies);
    };
    let sum = checksum::pseudo_header_v6(from, to, ip::PROTOCOL_ICMPV6, icmp_len as u32)
        .add_bytes(icmp)
        .checksum();
    icmp[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    Ok(total)
}

fn need_out(needed: usize, available: usize) -> Result<(), Error> {
    if available < needed {
        Err(Error::BufferTooSmall { needed, available })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::fixtures::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const GATEWAY_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));

    #[test]
    fn fragmentation_needed_has_rfc1191_layout() {
        let mut out = [0u8; 600];
        let n = packet_too_big(&INNER_V4, 1400, GATEWAY_V4, &mut out).unwrap();
        assert_eq!(out[..n], TOO_BIG_V4);
    }

    #[test]
    fn quote_is_cut_at_576_bytes() {
        let mut big = vec![0u8; 1500];
        big[..20].copy_from_slice(&INNER_V4[..20]);
        big[2..4].copy_from_slice(&1500u16.to_be_bytes());
        big[9] = 6; // TCP
        let mut out = [0u8; 1500];
        let n = packet_too_big(&big, 1400, GATEWAY_V4, &mut out).unwrap();
        assert_eq!(n, 576);
        assert!(Sum::new().add_bytes(&out[20..n]).verifies());
    }

    #[test]
    fn packet_too_big_v6_has_rfc4443_layout() {
        let mut original = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
        original[4..6].copy_from_slice(&1432u16.to_be_bytes());
        let src = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 10);
        let dst = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 20);
        original.extend_from_slice(&src.octets());
        original.extend_from_slice(&dst.octets());
        original.resize(1472, 0xab);
        let gateway = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let mut out = [0u8; 1500];
        let n = packet_too_big(&original, 1400, gateway.into(), &mut out).unwrap();
        assert_eq!(n, 1280, "quotes as much as fits the minimum MTU");
        assert_eq!(out[0] >> 4, 6);
        assert_eq!(out[6], 58);
        assert_eq!(out[24..40], src.octets());
        assert_eq!((out[40], out[41]), (ICMPV6_PACKET_TOO_BIG, 0));
        assert_eq!(out[44..48], 1400u32.to_be_bytes());
        assert_eq!(out[48..n], original[..1232]);
        let sum =
            checksum::pseudo_header_v6(gateway, src, 58, (n - 40) as u32).add_bytes(&out[40..n]);
        assert!(sum.verifies());
    }

    #[test]
    fn no_error_about_icmp_errors_fragments_or_broadcast() {
        let mut out = [0u8; 600];
        let mut icmp_error = TOO_BIG_V4;
        icmp_error[12..16].copy_from_slice(&[192, 168, 1, 10]);
        assert!(matches!(
            packet_too_big(&icmp_error, 1400, GATEWAY_V4, &mut out),
            Err(Error::IcmpSuppressed(_))
        ));

        let mut fragment = INNER_V4;
        fragment[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
        assert!(matches!(
            packet_too_big(&fragment, 1400, GATEWAY_V4, &mut out),
            Err(Error::IcmpSuppressed(_))
        ));

        let mut multicast = INNER_V4;
        multicast[16..20].copy_from_slice(&[224, 0, 0, 9]);
        assert!(matches!(
            packet_too_big(&multicast, 1400, GATEWAY_V4, &mut out),
            Err(Error::IcmpSuppressed(_))
        ));

        let mut broadcast = INNER_V4;
        broadcast[12..16].copy_from_slice(&[255; 4]);
        assert!(matches!(
            packet_too_big(&broadcast, 1400, GATEWAY_V4, &mut out),
            Err(Error::IcmpSuppressed(_))
        ));

        let mut icmpv6_error = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
        icmpv6_error.extend_from_slice(&[0xfd; 32]);
        icmpv6_error.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        let gw6: IpAddr = Ipv6Addr::LOCALHOST.into();
        assert!(matches!(
            packet_too_big(&icmpv6_error, 1400, gw6, &mut out),
            Err(Error::IcmpSuppressed(_))
        ));
        icmpv6_error[40] = 128; // echo request: answered
        assert!(packet_too_big(&icmpv6_error, 1400, gw6, &mut out).is_ok());
    }

    #[test]
    fn small_buffer_and_family_mismatch_are_errors() {
        let mut out = [0u8; 40];
        assert_eq!(
            packet_too_big(&INNER_V4, 1400, GATEWAY_V4, &mut out),
            Err(Error::BufferTooSmall {
                needed: 61,
                available: 40
            })
        );
        assert_eq!(
            packet_too_big(&INNER_V4, 1400, Ipv6Addr::LOCALHOST.into(), &mut out),
            Err(Error::MixedFamilies)
        );
    }
}
