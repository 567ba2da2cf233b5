//! MTU arithmetic: what fits through the overlay, computed from the
//! underlay's MTU instead of guessed (DESIGN.md "MTU").
//!
//! ```text
//! underlay MTU                    e.g. 1500
//!  - underlay IP + UDP            20 + 8 (IPv4) or 40 + 8 (IPv6)
//!  - WireGuard data header + tag  16 + 16
//!  = fabric MTU (pisek0)          1440
//!  - tunnel IP + UDP + MPLS       20 + 8 + 4 (IPv4 tunnel) or 40 + 8 + 4
//!  = tenant MTU (pods, TUNs)      1408
//! ```
//! MPLS-over-GRE needs 4 bytes less than MPLS-over-UDP; the tenant MTU
//! leaves room for the larger, so a route may use either.

use crate::packet::MplsOverUdp;
use crate::packet::ip::{IPV4_HEADER_LEN, IPV6_HEADER_LEN};
use crate::packet::mpls_udp::UDP_HEADER_LEN;
use crate::wg::DATA_OVERHEAD;

/// The MTUs of the overlay's interfaces, derived from the underlay's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mtu {
    /// The underlay interface's MTU.
    pub underlay: usize,
    /// The largest packet WireGuard carries: the fabric TUN's MTU, and the
    /// largest encapsulated tenant packet.
    pub fabric: usize,
    /// The largest tenant packet: the MTU of pods and tenant TUNs, and the
    /// MTU reported in ICMP "too big".
    pub tenant: usize,
}

impl Mtu {
    /// The MTUs for an underlay of `underlay` bytes, with an IPv6 (or IPv4)
    /// underlay and an IPv6 (or IPv4) tunnel network. Saturates at 0 for
    /// absurdly small underlays.
    pub const fn new(underlay: usize, underlay_v6: bool, tunnel_v6: bool) -> Mtu {
        let underlay_headers = if underlay_v6 {
            IPV6_HEADER_LEN
        } else {
            IPV4_HEADER_LEN
        } + UDP_HEADER_LEN
            + DATA_OVERHEAD;
        let tunnel_headers = if tunnel_v6 {
            MplsOverUdp::HEADROOM_V6
        } else {
            MplsOverUdp::HEADROOM_V4
        };
        let fabric = underlay.saturating_sub(underlay_headers);
        Mtu {
            underlay,
            fabric,
            tenant: fabric.saturating_sub(tunnel_headers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1500_byte_ipv4_underlay_gives_pods_1408() {
        let m = Mtu::new(1500, false, false);
        assert_eq!((m.fabric, m.tenant), (1440, 1408));
        let m6 = Mtu::new(1500, true, true);
        assert_eq!((m6.fabric, m6.tenant), (1420, 1368));
    }
}
