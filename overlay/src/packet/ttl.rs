//! The forwarder's hop over the overlay: decrement the tenant packet's
//! IPv4 TTL or IPv6 hop limit, and drop it when it runs out.
//!
//! The overlay counts as one router hop (short-pipe model, RFC 3443 §3.3),
//! so the inner TTL is decremented once, by the ingress forwarder, before
//! encapsulation. The IPv4 header checksum is updated incrementally
//! (RFC 1624) instead of recomputed.

use crate::packet::checksum;
use crate::packet::error::{Error, Layer, need};

mod field {
    pub const V4_TTL: usize = 8;
    pub const V4_TTL_PROTOCOL_WORD: usize = 8;
    pub const V4_CHECKSUM: usize = 10;
    pub const V4_MIN_HEADER: usize = 20;
    pub const V6_HOP_LIMIT: usize = 7;
    pub const V6_HEADER: usize = 40;
}

/// Decrements the TTL (IPv4) or hop limit (IPv6) of `packet` in place and
/// returns the new value. A packet whose TTL would reach 0 is not changed
/// and yields [`Error::TtlExpired`]: a router must not forward a packet
/// with TTL 0 or 1 on arrival (RFC 1812 §5.3.1, RFC 8200 §3).
pub fn decrement(packet: &mut [u8]) -> Result<u8, Error> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => {
            need(Layer::InnerIp, field::V4_MIN_HEADER, packet.len())?;
            let ttl = packet[field::V4_TTL];
            if ttl <= 1 {
                return Err(Error::TtlExpired);
            }
            let word = |p: &[u8], at: usize| u16::from_be_bytes([p[at], p[at + 1]]);
            let old_word = word(packet, field::V4_TTL_PROTOCOL_WORD);
            let old_checksum = word(packet, field::V4_CHECKSUM);
            packet[field::V4_TTL] = ttl - 1;
            let new_word = word(packet, field::V4_TTL_PROTOCOL_WORD);
            let new_checksum = checksum::update(old_checksum, old_word, new_word);
            packet[field::V4_CHECKSUM..field::V4_CHECKSUM + 2]
                .copy_from_slice(&new_checksum.to_be_bytes());
            Ok(ttl - 1)
        }
        Some(6) => {
            need(Layer::InnerIp, field::V6_HEADER, packet.len())?;
            let hop_limit = packet[field::V6_HOP_LIMIT];
            if hop_limit <= 1 {
                return Err(Error::TtlExpired);
            }
            packet[field::V6_HOP_LIMIT] = hop_limit - 1;
            Ok(hop_limit - 1)
        }
        None => Err(Error::Truncated {
            layer: Layer::InnerIp,
            needed: 1,
            available: 0,
        }),
        Some(_) => Err(Error::Malformed {
            layer: Layer::InnerIp,
            reason: "neither IPv4 nor IPv6",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::checksum::Sum;

    /// 192.168.0.1 -> 192.168.0.199, ICMP, TTL 64, valid header checksum 0xb861.
    fn ipv4_header(ttl: u8) -> [u8; 20] {
        let mut h = [
            0x45, 0x00, 0x00, 0x54, 0x1c, 0x46, 0x40, 0x00, ttl, 0x01, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = Sum::new().add_bytes(&h).checksum();
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn ipv4_ttl_decrements_and_checksum_stays_valid() {
        let mut h = ipv4_header(64);
        assert_eq!(decrement(&mut h), Ok(63));
        assert_eq!(h, ipv4_header(63));
        assert!(Sum::new().add_bytes(&h).verifies());
    }

    #[test]
    fn ipv4_ttl_one_expires_and_packet_is_untouched() {
        let mut h = ipv4_header(1);
        assert_eq!(decrement(&mut h), Err(Error::TtlExpired));
        assert_eq!(h, ipv4_header(1));
        let mut h = ipv4_header(0);
        assert_eq!(decrement(&mut h), Err(Error::TtlExpired));
    }

    #[test]
    fn ipv6_hop_limit_decrements() {
        let mut h = [0u8; 40];
        h[0] = 0x60;
        h[7] = 2;
        assert_eq!(decrement(&mut h), Ok(1));
        assert_eq!(h[7], 1);
        assert_eq!(decrement(&mut h), Err(Error::TtlExpired));
    }

    #[test]
    fn short_or_non_ip_is_an_error() {
        assert!(matches!(
            decrement(&mut [0x45; 10]),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            decrement(&mut [0x00; 40]),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(decrement(&mut []), Err(Error::Truncated { .. })));
    }
}
