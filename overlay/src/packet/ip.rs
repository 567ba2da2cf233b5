//! The outer (tunnel) IP header shared by MPLS-over-UDP and MPLS-over-GRE.
//!
//! IPv4 and IPv6 headers are read and written with `etherparse`, which
//! validates version, header length and the slice bounds; this module adds
//! what a tunnel endpoint needs on top: the header checksum check, refusal
//! of fragments and extension headers, and trimming the payload to the
//! length the header announces (link layers may pad).

use crate::packet::checksum::{self, Sum};
use crate::packet::error::{Error, Layer, need};
use etherparse::{
    IpNumber, Ipv4Header, Ipv4HeaderSlice, Ipv6FlowLabel, Ipv6Header, Ipv6HeaderSlice,
};
use std::net::IpAddr;
use std::ops::Range;

/// Length of an IPv4 header without options, as the overlay emits it.
pub const IPV4_HEADER_LEN: usize = Ipv4Header::MIN_LEN;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = Ipv6Header::LEN;

/// IP protocol number of UDP.
pub const PROTOCOL_UDP: u8 = 17;
/// IP protocol number of GRE (RFC 2784).
pub const PROTOCOL_GRE: u8 = 47;
/// IP protocol number of ICMP.
pub const PROTOCOL_ICMP: u8 = 1;
/// IPv6 next header number of ICMPv6.
pub const PROTOCOL_ICMPV6: u8 = 58;

/// The IPv6 flow label is 20 bits (RFC 8200 §6).
const FLOW_LABEL_MASK: u32 = 0xf_ffff;

/// The outer header length the overlay emits for this address family.
pub const fn header_len(address: &IpAddr) -> usize {
    match address {
        IpAddr::V4(_) => IPV4_HEADER_LEN,
        IpAddr::V6(_) => IPV6_HEADER_LEN,
    }
}

/// The outer header of a received tunnel packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outer {
    pub source: IpAddr,
    pub destination: IpAddr,
    /// Where the IP payload sits in the packet, trimmed to the header's length.
    pub payload: Range<usize>,
}

impl Outer {
    /// The pseudo-header sum for an upper-layer checksum over `len` bytes.
    pub fn pseudo_header(&self, protocol: u8, len: usize) -> Sum {
        match (self.source, self.destination) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                checksum::pseudo_header_v4(s, d, protocol, len as u16)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                checksum::pseudo_header_v6(s, d, protocol, len as u32)
            }
            // parse() only builds same-family pairs.
            _ => Sum::new(),
        }
    }
}

/// Parses the outer header of a tunnel packet carrying `protocol`.
pub(crate) fn parse(packet: &[u8], protocol: u8) -> Result<Outer, Error> {
    need(Layer::Ipv4, 1, packet.len())?;
    match packet[0] >> 4 {
        4 => parse_v4(packet, protocol),
        6 => parse_v6(packet, protocol),
        _ => Err(Error::Malformed {
            layer: Layer::Ipv4,
            reason: "IP version is neither 4 nor 6",
        }),
    }
}

fn parse_v4(packet: &[u8], protocol: u8) -> Result<Outer, Error> {
    use etherparse::err::ipv4::HeaderSliceError;
    let header = Ipv4HeaderSlice::from_slice(packet).map_err(|e| match e {
        HeaderSliceError::Len(l) => Error::Truncated {
            layer: Layer::Ipv4,
            needed: l.required_len,
            available: l.len,
        },
        HeaderSliceError::Content(_) => Error::Malformed {
            layer: Layer::Ipv4,
            reason: "header length below 20 bytes",
        },
    })?;
    let header_len = header.slice().len();
    let total_len = usize::from(header.total_len());
    if total_len < header_len {
        return Err(Error::Malformed {
            layer: Layer::Ipv4,
            reason: "total length shorter than the header",
        });
    }
    need(Layer::Ipv4, total_len, packet.len())?;
    if !Sum::new().add_bytes(header.slice()).verifies() {
        return Err(Error::BadIpv4Checksum);
    }
    if header.is_fragmenting_payload() {
        return Err(Error::Fragmented);
    }
    if header.protocol().0 != protocol {
        return Err(Error::WrongProtocol {
            found: header.protocol().0,
            expected: protocol,
        });
    }
    Ok(Outer {
        source: header.source_addr().into(),
        destination: header.destination_addr().into(),
        payload: header_len..total_len,
    })
}

fn parse_v6(packet: &[u8], protocol: u8) -> Result<Outer, Error> {
    let header = Ipv6HeaderSlice::from_slice(packet).map_err(|_| Error::Truncated {
        layer: Layer::Ipv6,
        needed: IPV6_HEADER_LEN,
        available: packet.len(),
    })?;
    let total_len = IPV6_HEADER_LEN + usize::from(header.payload_length());
    need(Layer::Ipv6, total_len, packet.len())?;
    // Extension headers (and with them fragments) are refused: a tunnel
    // endpoint of this overlay never sends them, and skipping them would
    // open the parser to long header chains for no use.
    if header.next_header().0 != protocol {
        return Err(Error::WrongProtocol {
            found: header.next_header().0,
            expected: protocol,
        });
    }
    Ok(Outer {
        source: header.source_addr().into(),
        destination: header.destination_addr().into(),
        payload: IPV6_HEADER_LEN..total_len,
    })
}

/// Writes an outer header for `payload_len` bytes of `protocol` into
/// `buf`, which must be exactly [`header_len`] long.
///
/// IPv4 gets DF set and identification 0: the overlay never fragments its
/// tunnel packets (oversized inner packets get ICMP "too big" instead), and
/// atomic datagrams may carry any identification (RFC 6864 §4.1). IPv6
/// gets the inner flow's hash as its flow label, so that routers between
/// the tunnel endpoints can balance on it (RFC 6438 §3).
pub(crate) fn emit(
    buf: &mut [u8],
    source: IpAddr,
    destination: IpAddr,
    protocol: u8,
    payload_len: usize,
    hop_limit: u8,
    flow_hash: u32,
) -> Result<(), Error> {
    match (source, destination) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len = u16::try_from(payload_len)
                .ok()
                .filter(|l| usize::from(*l) + IPV4_HEADER_LEN <= usize::from(u16::MAX))
                .ok_or(Error::PayloadTooLong(payload_len))?;
            let mut header =
                Ipv4Header::new(len, hop_limit, IpNumber(protocol), s.octets(), d.octets())
                    .map_err(|_| Error::PayloadTooLong(payload_len))?;
            header.header_checksum = header.calc_header_checksum();
            buf.copy_from_slice(&header.to_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u16::try_from(payload_len).map_err(|_| Error::PayloadTooLong(payload_len))?;
            let header = Ipv6Header {
                traffic_class: 0,
                flow_label: Ipv6FlowLabel::try_new(flow_hash & FLOW_LABEL_MASK)
                    .unwrap_or(Ipv6FlowLabel::ZERO),
                payload_length: len,
                next_header: IpNumber(protocol),
                hop_limit,
                source: s.octets(),
                destination: d.octets(),
            };
            buf.copy_from_slice(&header.to_bytes());
        }
        _ => return Err(Error::MixedFamilies),
    }
    Ok(())
}
