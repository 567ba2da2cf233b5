//! ICMP errors the pipeline sends back to a workload, written into the
//! tenant's output batch: "fragmentation needed" / "packet too big"
//! (RFC 1191, RFC 8201) when a packet exceeds the tenant MTU, and "time
//! exceeded" (RFC 792, RFC 4443 §3.3) when its TTL runs out at the overlay
//! hop, so traceroute shows the overlay as one hop.
//!
//! Time exceeded is built from the too-big message of `crate::packet::icmp`,
//! which already applies every rule about when an error may be sent and
//! what it quotes (RFC 1122 §3.2.2, RFC 1812 §4.3.2, RFC 4443 §2.4): the
//! type and code are rewritten, the MTU field cleared (it is "unused" in
//! time exceeded) and the checksum computed again.

use crate::packet::checksum::{Sum, pseudo_header_v6};
use crate::packet::ip::{IPV4_HEADER_LEN, IPV6_HEADER_LEN, PROTOCOL_ICMPV6};
use crate::packet::packet_too_big;
use std::net::{IpAddr, Ipv6Addr};

mod field {
    use std::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// The MTU in "too big", unused in "time exceeded".
    pub const REST_OF_HEADER: Range<usize> = 4..8;
    pub const V6_SOURCE: Range<usize> = 8..24;
    pub const V6_DESTINATION: Range<usize> = 24..40;
}

/// ICMP "time exceeded" (RFC 792).
const ICMP_TIME_EXCEEDED: u8 = 11;
/// ICMPv6 "time exceeded" (RFC 4443 §3.3).
const ICMPV6_TIME_EXCEEDED: u8 = 3;
/// Code 0 of both: hop limit exceeded in transit.
const CODE_IN_TRANSIT: u8 = 0;

/// Writes a "packet too big" about `original` into `out`; the length, or
/// `None` where no error may be sent or `out` is too small.
pub(crate) fn too_big(
    original: &[u8],
    mtu: usize,
    source: IpAddr,
    out: &mut [u8],
) -> Option<usize> {
    packet_too_big(
        original,
        u32::try_from(mtu).unwrap_or(u32::MAX),
        source,
        out,
    )
    .ok()
}

/// Writes a "time exceeded in transit" about `original` into `out`.
pub(crate) fn time_exceeded(original: &[u8], source: IpAddr, out: &mut [u8]) -> Option<usize> {
    let len = packet_too_big(original, 0, source, out).ok()?;
    let message = out.get_mut(..len)?;
    match source {
        IpAddr::V4(_) => {
            let icmp = message.get_mut(IPV4_HEADER_LEN..)?;
            rewrite(icmp, ICMP_TIME_EXCEEDED);
            let sum = Sum::new().add_bytes(icmp).checksum();
            icmp[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        }
        IpAddr::V6(from) => {
            let to: [u8; 16] = message.get(field::V6_DESTINATION)?.try_into().ok()?;
            debug_assert_eq!(message.get(field::V6_SOURCE), Some(&from.octets()[..]));
            let icmp = message.get_mut(IPV6_HEADER_LEN..)?;
            rewrite(icmp, ICMPV6_TIME_EXCEEDED);
            let pseudo =
                pseudo_header_v6(from, Ipv6Addr::from(to), PROTOCOL_ICMPV6, icmp.len() as u32);
            let sum = pseudo.add_bytes(icmp).checksum();
            icmp[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        }
    }
    Some(len)
}

/// Turns a too-big header into a time-exceeded one, checksum zeroed.
fn rewrite(icmp: &mut [u8], kind: u8) {
    icmp[field::TYPE] = kind;
    icmp[field::CODE] = CODE_IN_TRANSIT;
    icmp[field::CHECKSUM].fill(0);
    icmp[field::REST_OF_HEADER].fill(0);
}
