//! What both MPLS encapsulations share: the choice between them, the outer
//! header parameters, checksum options, and the decapsulated result.
//!
//! Encapsulation works in place. The caller reads the tenant's packet into
//! a buffer at an offset of at least [`Encapsulation::MAX_HEADROOM`] bytes
//! and the encapsulator writes the outer headers into the space in front of
//! it: no allocation and no copy of the payload per packet. Decapsulation
//! only reads, and returns borrowed slices into the received buffer.

use crate::packet::error::Error;
use crate::packet::ip::Outer;
use crate::packet::mpls::{self, Label, LabelStackEntry};
use crate::packet::{MplsOverGre, MplsOverUdp};
use std::net::IpAddr;
use std::ops::Range;

/// How a next hop wants its packets encapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encapsulation {
    /// MPLS-in-UDP (RFC 7510), the default: UDP gives ECMP entropy and
    /// passes NAT and firewalls that drop unknown IP protocols.
    #[default]
    MplsOverUdp,
    /// MPLS-in-GRE (RFC 4023), for edge routers that only speak GRE.
    MplsOverGre,
}

impl Encapsulation {
    /// The largest headroom any encapsulation needs (MPLS-in-UDP over IPv6);
    /// a forwarder that reserves this much in front of every packet can use
    /// any next hop.
    pub const MAX_HEADROOM: usize = MplsOverUdp::HEADROOM_V6;

    /// Bytes of outer headers written in front of the payload for an outer
    /// header of `outer`'s address family (MPLS-in-GRE with
    /// [`TxChecksum::Full`] needs 4 more, still within [`Self::MAX_HEADROOM`]).
    pub const fn headroom(self, outer: &IpAddr) -> usize {
        match (self, outer) {
            (Encapsulation::MplsOverUdp, IpAddr::V4(_)) => MplsOverUdp::HEADROOM_V4,
            (Encapsulation::MplsOverUdp, IpAddr::V6(_)) => MplsOverUdp::HEADROOM_V6,
            (Encapsulation::MplsOverGre, IpAddr::V4(_)) => MplsOverGre::HEADROOM_V4,
            (Encapsulation::MplsOverGre, IpAddr::V6(_)) => MplsOverGre::HEADROOM_V6,
        }
    }

    /// Encapsulates `buf[payload]` in place; see [`MplsOverUdp::encapsulate`].
    pub fn encapsulate(
        self,
        encap: &Encap,
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> Result<Range<usize>, Error> {
        match self {
            Encapsulation::MplsOverUdp => MplsOverUdp::encapsulate(encap, buf, payload),
            Encapsulation::MplsOverGre => MplsOverGre::encapsulate(encap, buf, payload),
        }
    }

    /// Decapsulates a received packet; see [`MplsOverUdp::decapsulate`].
    pub fn decapsulate(
        self,
        packet: &[u8],
        checksum: RxChecksum,
    ) -> Result<Decapsulated<'_>, Error> {
        match self {
            Encapsulation::MplsOverUdp => MplsOverUdp::decapsulate(packet, checksum),
            Encapsulation::MplsOverGre => MplsOverGre::decapsulate(packet, checksum),
        }
    }

    /// A short lower-case name for logs and tables.
    pub const fn name(self) -> &'static str {
        match self {
            Encapsulation::MplsOverUdp => "mpls-udp",
            Encapsulation::MplsOverGre => "mpls-gre",
        }
    }
}

impl std::fmt::Display for Encapsulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How to fill an outgoing checksum (the UDP checksum of MPLS-in-UDP, the
/// optional GRE checksum of MPLS-in-GRE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxChecksum {
    /// The least the RFCs allow: a zero UDP checksum over IPv4 (RFC 7510 §5;
    /// the MPLS payload carries its own), a computed one over IPv6 (RFC 7510
    /// §5 forbids zero by default, RFC 6936); no GRE checksum (RFC 2784 §2.5).
    #[default]
    Minimal,
    /// Compute every checksum in software, IPv4 UDP included.
    Full,
    /// A device completes the UDP checksum (partial checksum offload, as
    /// Linux's CHECKSUM_PARTIAL or a virtio-net header's NEEDS_CSUM): only
    /// the pseudo-header sum is written, the payload is not read.
    Offload,
}

/// How to treat an incoming checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RxChecksum {
    /// Verify every checksum present. A zero UDP checksum is accepted over
    /// IPv4 and refused over IPv6 (RFC 7510 §5).
    #[default]
    Verify,
    /// Trust the packet: a device verified the checksums, or the packet
    /// came out of an authenticated tunnel (WireGuard's AEAD covers every
    /// byte of it, which a 16-bit sum can only add to).
    Trust,
}

/// The outer header of an encapsulated packet: tunnel endpoints, the VRF
/// label of the receiving side, and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encap {
    /// This node's tunnel address.
    pub source: IpAddr,
    /// The next hop's tunnel address (same address family as `source`).
    pub destination: IpAddr,
    /// The VRF label the next hop advertised for the destination.
    pub label: Label,
    /// Outer IPv4 TTL / IPv6 hop limit.
    pub hop_limit: u8,
    /// MPLS traffic class (RFC 5462), 0-7.
    pub traffic_class: u8,
    /// How to fill the outer checksum.
    pub checksum: TxChecksum,
}

impl Encap {
    /// The outer TTL the overlay uses unless told otherwise (RFC 1700's
    /// recommended default, as Linux's ip_default_ttl).
    pub const DEFAULT_HOP_LIMIT: u8 = 64;

    /// Parameters with the default hop limit, traffic class 0 and
    /// [`TxChecksum::Minimal`].
    pub const fn new(source: IpAddr, destination: IpAddr, label: Label) -> Encap {
        Encap {
            source,
            destination,
            label,
            hop_limit: Self::DEFAULT_HOP_LIMIT,
            traffic_class: 0,
            checksum: TxChecksum::Minimal,
        }
    }

    /// The label stack entry pushed: the VRF label, bottom of stack.
    pub(crate) const fn stack_entry(&self) -> LabelStackEntry {
        let mut entry = LabelStackEntry::vrf(self.label);
        entry.traffic_class = self.traffic_class;
        entry
    }
}

/// A decapsulated packet: borrowed from the received buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// The sending tunnel endpoint.
    pub source: IpAddr,
    /// The receiving tunnel endpoint (the caller checks it is its own).
    pub destination: IpAddr,
    /// The label stack entry; its label selects the VRF.
    pub entry: LabelStackEntry,
    /// The tenant's IP packet.
    pub inner: &'a [u8],
    /// Where `inner` sits in the received buffer, for a caller that then
    /// rewrites it in place (the TTL decrement).
    pub inner_range: Range<usize>,
}

/// Checks `payload` lies in `buf` with `headroom` bytes in front of it and
/// returns the offset where the headers start.
pub(crate) fn headers_start(
    buf_len: usize,
    payload: &Range<usize>,
    headroom: usize,
) -> Result<usize, Error> {
    if payload.start > payload.end || payload.end > buf_len {
        return Err(Error::BufferTooSmall {
            needed: payload.end.max(payload.start),
            available: buf_len,
        });
    }
    payload
        .start
        .checked_sub(headroom)
        .ok_or(Error::NoHeadroom {
            needed: headroom,
            available: payload.start,
        })
}

/// The part both decapsulations share, once the tunnel header is read:
/// the single label stack entry at the start of `mpls_and_inner` (this
/// overlay pushes exactly one, the VRF label) and the tenant's IP packet
/// that fills the rest of it.
pub(crate) fn decapsulate_mpls<'a>(
    packet: &'a [u8],
    outer: &Outer,
    mpls_and_inner: Range<usize>,
) -> Result<Decapsulated<'a>, Error> {
    let entry =
        LabelStackEntry::parse(&mpls::Packet::new_checked(&packet[mpls_and_inner.clone()])?)?;
    if !entry.bottom_of_stack {
        return Err(Error::LabelStackTooDeep);
    }
    let inner_range = mpls_and_inner.start + mpls::HEADER_LEN..mpls_and_inner.end;
    let inner = &packet[inner_range.clone()];
    check_inner(inner)?;
    Ok(Decapsulated {
        source: outer.source,
        destination: outer.destination,
        entry,
        inner,
        inner_range,
    })
}

/// Checks that the inner packet looks like IP, the only payload a VRF label
/// carries in this overlay (RFC 4364 §4.3.2 labels name an IP VRF).
fn check_inner(inner: &[u8]) -> Result<(), Error> {
    match inner.first().map(|b| b >> 4) {
        Some(4) | Some(6) => Ok(()),
        None => Err(Error::Truncated {
            layer: crate::packet::Layer::InnerIp,
            needed: 1,
            available: 0,
        }),
        Some(_) => Err(Error::Malformed {
            layer: crate::packet::Layer::InnerIp,
            reason: "payload is neither IPv4 nor IPv6",
        }),
    }
}
