//! Why a packet could not be parsed, built or answered.

use crate::drop::DropReason;
use crate::packet::mpls::LabelError;
use std::fmt;
use thiserror::Error;

/// The header a [`Error`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// The outer (tunnel) IPv4 header.
    Ipv4,
    /// The outer (tunnel) IPv6 header.
    Ipv6,
    /// The outer UDP header of MPLS-over-UDP.
    Udp,
    /// The GRE header of MPLS-over-GRE.
    Gre,
    /// An MPLS label stack entry.
    Mpls,
    /// The tenant's own (inner) IP packet.
    InnerIp,
    /// An ICMP or ICMPv6 message.
    Icmp,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Udp => "UDP",
            Layer::Gre => "GRE",
            Layer::Mpls => "MPLS",
            Layer::InnerIp => "inner IP",
            Layer::Icmp => "ICMP",
        })
    }
}

/// An error from parsing, building or answering a packet.
///
/// Every variant maps onto the [`DropReason`] a forwarder counts it under
/// ([`Error::drop_reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than the header (or the length it announces) needs.
    #[error("{layer} truncated: needs {needed} bytes, {available} present")]
    Truncated {
        /// The header being read.
        layer: Layer,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// A field holds a value the protocol forbids.
    #[error("{layer} header malformed: {reason}")]
    Malformed {
        /// The header being read.
        layer: Layer,
        /// What is wrong, for the log.
        reason: &'static str,
    },
    /// The outer IPv4 header checksum does not verify (RFC 791).
    #[error("IPv4 header checksum does not verify")]
    BadIpv4Checksum,
    /// The UDP or GRE checksum does not verify, or an IPv6 UDP checksum is
    /// zero (RFC 7510 §5 requires one unless zero checksums are configured).
    #[error("{0} checksum does not verify")]
    BadChecksum(Layer),
    /// The outer packet is a fragment; the overlay does not reassemble.
    #[error("outer packet is a fragment (the overlay does not reassemble)")]
    Fragmented,
    /// The outer IP header carries another protocol than the decapsulator's.
    #[error("outer IP protocol {found} is not {expected}")]
    WrongProtocol {
        /// The protocol number found.
        found: u8,
        /// The protocol number expected (17 for UDP, 47 for GRE).
        expected: u8,
    },
    /// UDP towards another port than MPLS-in-UDP's 6635 (RFC 7510 §3).
    #[error("UDP destination port {0} is not MPLS-in-UDP (6635)")]
    NotMplsPort(u16),
    /// GRE carrying another protocol than MPLS unicast 0x8847 (RFC 4023 §4).
    #[error("GRE protocol type {0:#06x} is not MPLS unicast (0x8847)")]
    NotMplsGre(u16),
    /// The label stack has more than the one (VRF) entry the overlay uses.
    #[error("MPLS label stack deeper than one entry")]
    LabelStackTooDeep,
    /// A label value is out of range or reserved where a VRF label is needed.
    #[error(transparent)]
    Label(#[from] LabelError),
    /// The caller's buffer lacks room in front of the payload for the headers.
    #[error("no headroom: {needed} bytes needed in front of the payload, {available} reserved")]
    NoHeadroom {
        /// Bytes the headers need.
        needed: usize,
        /// Bytes the caller reserved.
        available: usize,
    },
    /// The output buffer is too small for the message.
    #[error("buffer too small: {needed} bytes needed, {available} available")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The payload does not fit in the outer header's length fields.
    #[error("payload of {0} bytes does not fit in one outer packet")]
    PayloadTooLong(usize),
    /// Outer source and destination are of different address families.
    #[error("outer source and destination are of different address families")]
    MixedFamilies,
    /// The inner TTL or hop limit ran out (RFC 1812 §5.3.1, RFC 8200 §3).
    #[error("inner TTL expired")]
    TtlExpired,
    /// An ICMP error must not be sent about this packet (RFC 1122 §3.2.2,
    /// RFC 4443 §2.4(e)).
    #[error("no ICMP error may be sent for this packet: {0}")]
    IcmpSuppressed(&'static str),
}

impl Error {
    /// The reason a forwarder counts this error under.
    pub fn drop_reason(&self) -> DropReason {
        match self {
            Error::Truncated { .. }
            | Error::Malformed { .. }
            | Error::WrongProtocol { .. }
            | Error::NotMplsPort(_)
            | Error::NotMplsGre(_)
            | Error::MixedFamilies => DropReason::Malformed,
            Error::BadIpv4Checksum | Error::BadChecksum(_) => DropReason::BadChecksum,
            Error::Fragmented => DropReason::Fragmented,
            Error::LabelStackTooDeep | Error::Label(_) => DropReason::BadLabel,
            Error::NoHeadroom { .. } | Error::BufferTooSmall { .. } | Error::PayloadTooLong(_) => {
                DropReason::TooBig
            }
            Error::TtlExpired => DropReason::TtlExpired,
            Error::IcmpSuppressed(_) => DropReason::TooBig,
        }
    }
}

/// Shorthand for a [`Error::Truncated`] check: `Ok` when `available >= needed`.
pub(crate) fn need(layer: Layer, needed: usize, available: usize) -> Result<(), Error> {
    if available < needed {
        Err(Error::Truncated {
            layer,
            needed,
            available,
        })
    } else {
        Ok(())
    }
}
