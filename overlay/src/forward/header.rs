//! The few IP header fields the pipeline reads before it decides where a
//! packet goes: addresses, the DF bit, and whether a packet for this node
//! is MPLS-in-UDP or MPLS-in-GRE. Every read is bounds-checked; a packet
//! too short for its header is `None`, never a panic.

use crate::packet::ip::{PROTOCOL_GRE, PROTOCOL_UDP};
use crate::packet::mpls_udp::UDP_PORT;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod field {
    use std::ops::Range;

    pub const V4_MIN_HEADER: usize = 20;
    pub const V4_FLAGS_FRAGMENT: Range<usize> = 6..8;
    pub const V4_PROTOCOL: usize = 9;
    pub const V4_SOURCE: Range<usize> = 12..16;
    pub const V4_DESTINATION: Range<usize> = 16..20;
    /// RFC 791: flags are the top 3 bits of the word, DF the middle one.
    pub const V4_DONT_FRAGMENT: u16 = 0x4000;
    pub const V4_FRAGMENT_OFFSET: u16 = 0x1fff;
    pub const V6_HEADER: usize = 40;
    pub const V6_NEXT_HEADER: usize = 6;
    pub const V6_SOURCE: Range<usize> = 8..24;
    pub const V6_DESTINATION: Range<usize> = 24..40;
    /// UDP destination port, relative to the UDP header.
    pub const UDP_DESTINATION: Range<usize> = 2..4;
}

/// What the pipeline needs to know of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpHeader {
    pub source: IpAddr,
    pub destination: IpAddr,
    /// IPv4 with DF set, or any IPv6 packet (routers never fragment IPv6,
    /// RFC 8200 §5).
    pub dont_fragment: bool,
    /// Upper-layer protocol (IPv6: the first next header).
    pub protocol: u8,
    /// Where the upper-layer header starts.
    pub payload_start: usize,
    /// A non-initial IPv4 fragment: no upper-layer header to read.
    pub later_fragment: bool,
}

impl IpHeader {
    /// Reads the header of `packet`; `None` when it is not a complete IPv4
    /// or IPv6 header.
    pub fn parse(packet: &[u8]) -> Option<IpHeader> {
        match packet.first()? >> 4 {
            4 => {
                let ihl = usize::from(packet[0] & 0x0f) * 4;
                if ihl < field::V4_MIN_HEADER || packet.len() < ihl {
                    return None;
                }
                let word = u16::from_be_bytes(packet[field::V4_FLAGS_FRAGMENT].try_into().ok()?);
                let four = |r: std::ops::Range<usize>| -> Option<[u8; 4]> {
                    packet.get(r)?.try_into().ok()
                };
                Some(IpHeader {
                    source: IpAddr::V4(Ipv4Addr::from(four(field::V4_SOURCE)?)),
                    destination: IpAddr::V4(Ipv4Addr::from(four(field::V4_DESTINATION)?)),
                    dont_fragment: word & field::V4_DONT_FRAGMENT != 0,
                    protocol: packet[field::V4_PROTOCOL],
                    payload_start: ihl,
                    later_fragment: word & field::V4_FRAGMENT_OFFSET != 0,
                })
            }
            6 => {
                if packet.len() < field::V6_HEADER {
                    return None;
                }
                let sixteen = |r: std::ops::Range<usize>| -> Option<[u8; 16]> {
                    packet.get(r)?.try_into().ok()
                };
                Some(IpHeader {
                    source: IpAddr::V6(Ipv6Addr::from(sixteen(field::V6_SOURCE)?)),
                    destination: IpAddr::V6(Ipv6Addr::from(sixteen(field::V6_DESTINATION)?)),
                    dont_fragment: true,
                    protocol: packet[field::V6_NEXT_HEADER],
                    payload_start: field::V6_HEADER,
                    later_fragment: false,
                })
            }
            _ => None,
        }
    }

    /// Whether the packet's addresses keep it on the link it was sent on,
    /// so the overlay (one routed hop) must never carry it: see
    /// [`crate::drop::DropReason::LinkScoped`]. A handful of comparisons on
    /// the address bytes, no lookup.
    pub fn is_link_scoped(&self) -> bool {
        link_scoped_source(self.source) || link_scoped_destination(self.destination)
    }

    /// Whether the destination keeps the packet on its link (multicast,
    /// broadcast, link-local, unspecified): never routed, whoever sent it.
    pub fn has_link_scoped_destination(&self) -> bool {
        link_scoped_destination(self.destination)
    }

    /// Whether the source is one the kernel itself uses on an interface
    /// without a routable address: IPv6 unspecified (DAD, early MLD) or
    /// `fe80::/10` (MLD, router solicitations). A workload's IPv4 packet
    /// from 169.254/16 or 0.0.0.0 to a routable destination is not such
    /// chatter: it is a workload lying about its source.
    pub fn has_kernel_chatter_source(&self) -> bool {
        match self.source {
            IpAddr::V4(_) => false,
            IpAddr::V6(a) => a.is_unspecified() || a.is_unicast_link_local(),
        }
    }

    /// The encapsulation of a packet addressed to this node, judged by its
    /// outer header: MPLS-in-UDP (UDP to port 6635, RFC 7510 §3),
    /// MPLS-in-GRE (IP protocol 47, RFC 4023), or anything else (for the
    /// kernel). IPv6 extension headers are not walked: a tunnel packet
    /// never has them, so such a packet goes to the kernel.
    pub fn tunnel_kind(&self, packet: &[u8]) -> TunnelKind {
        if self.later_fragment {
            return TunnelKind::None;
        }
        match self.protocol {
            PROTOCOL_GRE => TunnelKind::MplsOverGre,
            PROTOCOL_UDP => {
                let port = packet
                    .get(self.payload_start..)
                    .and_then(|udp| udp.get(field::UDP_DESTINATION))
                    .map(|p| u16::from_be_bytes([p[0], p[1]]));
                if port == Some(UDP_PORT) {
                    TunnelKind::MplsOverUdp
                } else {
                    TunnelKind::None
                }
            }
            _ => TunnelKind::None,
        }
    }
}

/// A source no router forwards from: unspecified (RFC 1122 §3.2.1.3,
/// RFC 4291 §2.5.2: only for a node that has no address yet, as DAD and
/// early MLD reports) or link-local (RFC 3927 §7, RFC 4291 §2.5.6).
fn link_scoped_source(source: IpAddr) -> bool {
    match source {
        IpAddr::V4(a) => a.is_unspecified() || a.is_link_local(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_unicast_link_local(),
    }
}

/// A destination no router forwards to: link-local (RFC 3927 §7, RFC 4291
/// §2.5.6), the limited broadcast (RFC 1812 §5.3.5.1), unspecified, or
/// multicast, which the overlay does not route at any scope.
fn link_scoped_destination(destination: IpAddr) -> bool {
    match destination {
        IpAddr::V4(a) => {
            a.is_multicast() || a.is_link_local() || a.is_broadcast() || a.is_unspecified()
        }
        IpAddr::V6(a) => a.is_multicast() || a.is_unicast_link_local() || a.is_unspecified(),
    }
}

/// How a packet addressed to this node is encapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TunnelKind {
    MplsOverUdp,
    MplsOverGre,
    /// Not an MPLS tunnel packet: the kernel's.
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_foreign_headers_are_refused_without_panic() {
        assert_eq!(IpHeader::parse(&[]), None);
        assert_eq!(IpHeader::parse(&[0x45; 19]), None);
        assert_eq!(IpHeader::parse(&[0x4f; 40]), None, "IHL 60 > length");
        assert_eq!(IpHeader::parse(&[0x60; 39]), None);
        assert_eq!(IpHeader::parse(&[0x20; 60]), None);
    }

    fn header(source: &str, destination: &str) -> IpHeader {
        IpHeader {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
            dont_fragment: false,
            protocol: 0,
            payload_start: 0,
            later_fragment: false,
        }
    }

    #[test]
    fn link_scoped_sources_and_destinations_are_recognised_in_both_families() {
        for (source, destination) in [
            // The kernel's IPv6 chatter on a new interface.
            ("::", "ff02::1:ff12:3456"),   // DAD neighbour solicitation
            ("::", "ff02::16"),            // MLDv2 report, no address yet
            ("fe80::1234", "ff02::16"),    // MLDv2 report
            ("fe80::1234", "ff02::2"),     // router solicitation
            ("fd00:10:1:1::2", "ff05::2"), // multicast of wider scope
            ("fd00:10:1:1::2", "fe80::1"), // link-local destination
            ("fe80::1234", "fd00:10:1:2::2"), // link-local source
            ("fd00:10:1:1::2", "::"),      // unspecified destination
            // IPv4.
            ("0.0.0.0", "255.255.255.255"),  // DHCP discover
            ("10.1.1.2", "224.0.0.22"),      // IGMPv3 report
            ("10.1.1.2", "239.1.2.3"),       // multicast of wider scope
            ("169.254.7.7", "10.1.2.2"),     // link-local source
            ("10.1.1.2", "169.254.1.1"),     // link-local destination
            ("10.1.1.2", "255.255.255.255"), // limited broadcast
        ] {
            assert!(
                header(source, destination).is_link_scoped(),
                "{source} -> {destination}"
            );
        }
    }

    #[test]
    fn unicast_between_routable_addresses_is_not_link_scoped() {
        for (source, destination) in [
            ("10.1.1.2", "10.1.2.2"),
            ("10.1.1.2", "8.8.8.8"),
            ("fd00:10:1:1::2", "fd00:10:1:2::2"),
            ("2001:db8::1", "2001:db8:1::1"),
            // A spoofed but routable source is the anti-spoofing check's.
            ("10.9.9.9", "10.1.2.2"),
            ("fd00:9::9", "fd00:10:1:2::2"),
        ] {
            assert!(
                !header(source, destination).is_link_scoped(),
                "{source} -> {destination}"
            );
        }
    }

    #[test]
    fn mpls_udp_is_recognised_by_port_6635() {
        let mut p = [0u8; 32];
        p[0] = 0x45;
        p[9] = PROTOCOL_UDP;
        p[22..24].copy_from_slice(&UDP_PORT.to_be_bytes());
        let h = IpHeader::parse(&p).unwrap();
        assert_eq!(h.tunnel_kind(&p), TunnelKind::MplsOverUdp);
        p[23] ^= 1;
        assert_eq!(h.tunnel_kind(&p), TunnelKind::None);
        p[6] = 0x00;
        p[7] = 0x10;
        let frag = IpHeader::parse(&p).unwrap();
        assert!(frag.later_fragment);
    }
}
