//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! The sum adds 32-bit words in native byte order into a 64-bit
//! accumulator and folds at the end (RFC 1071 §2: the sum may be computed
//! in wider words and in either byte order). Adding 32-bit words to 64 bits
//! cannot carry out for any packet, so the loop has no carry chain and the
//! compiler vectorises it; that is what keeps the IPv6 UDP checksum of a
//! 1400-byte packet cheap. Also here: pseudo-header sums for UDP and ICMPv6,
//! and the RFC 1624 update used when the forwarder rewrites the inner TTL.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A running one's-complement sum, not yet folded or inverted.
///
/// Words are added in native byte order (RFC 1071 §2(B): the sum is
/// byte-order independent), so [`Sum::checksum`] converts back at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum(u64);

impl Sum {
    /// The empty sum.
    pub const fn new() -> Sum {
        Sum(0)
    }

    /// Adds `data`, padding an odd trailing byte with zero (RFC 1071 §4.1).
    /// Only the last slice added to a sum may have an odd length.
    #[inline]
    pub fn add_bytes(self, data: &[u8]) -> Sum {
        let mut words = data.chunks_exact(4);
        let mut acc: u64 = 0;
        for w in &mut words {
            acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        }
        let rest = words.remainder();
        let mut tail = [0u8; 4];
        tail[..rest.len()].copy_from_slice(rest);
        acc += u64::from(u32::from_ne_bytes(tail));
        self.add_native(acc)
    }

    /// Adds one big-endian 16-bit word.
    #[inline]
    pub fn add_u16(self, word: u16) -> Sum {
        self.add_native(u64::from(u16::from_ne_bytes(word.to_be_bytes())))
    }

    /// Adds one big-endian 32-bit word.
    #[inline]
    pub fn add_u32(self, word: u32) -> Sum {
        self.add_native(u64::from(u32::from_ne_bytes(word.to_be_bytes())))
    }

    #[inline]
    fn add_native(self, value: u64) -> Sum {
        // End-around carry (RFC 1071 §2(A)), should the sum ever overflow.
        let (sum, carry) = self.0.overflowing_add(value);
        Sum(sum + u64::from(carry))
    }

    /// The sum folded to 16 bits, in native byte order.
    #[inline]
    fn fold(self) -> u16 {
        let mut s = (self.0 & 0xffff_ffff) + (self.0 >> 32);
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        s as u16
    }

    /// The checksum to write into a header: the one's complement of the
    /// folded sum, as a big-endian value.
    #[inline]
    pub fn checksum(self) -> u16 {
        !u16::from_be(self.fold())
    }

    /// The UDP form of [`Sum::checksum`]: a computed zero is sent as 0xffff,
    /// because zero on the wire means "no checksum" (RFC 768).
    #[inline]
    pub fn udp_checksum(self) -> u16 {
        match self.checksum() {
            0 => 0xffff,
            c => c,
        }
    }

    /// The folded sum itself, not inverted: what a device that completes the
    /// checksum (partial checksum offload) expects in the checksum field.
    #[inline]
    pub fn folded(self) -> u16 {
        !self.checksum()
    }

    /// True when data that includes its own checksum field sums to all ones,
    /// i.e. the checksum verifies (RFC 1071 §1(4)).
    #[inline]
    pub fn verifies(self) -> bool {
        self.checksum() == 0
    }
}

/// The IPv4 pseudo-header sum for an upper-layer protocol (RFC 768, RFC 793 §3.1).
#[inline]
pub fn pseudo_header_v4(source: Ipv4Addr, destination: Ipv4Addr, protocol: u8, length: u16) -> Sum {
    Sum::new()
        .add_bytes(&source.octets())
        .add_bytes(&destination.octets())
        .add_u16(u16::from(protocol))
        .add_u16(length)
}

/// The IPv6 pseudo-header sum for an upper-layer protocol (RFC 8200 §8.1).
#[inline]
pub fn pseudo_header_v6(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    next_header: u8,
    length: u32,
) -> Sum {
    Sum::new()
        .add_bytes(&source.octets())
        .add_bytes(&destination.octets())
        .add_u32(length)
        .add_u32(u32::from(next_header))
}

/// The checksum after one 16-bit word of the covered data changed from
/// `old_word` to `new_word`, without summing the data again
/// (RFC 1624 §3, eqn. 3: HC' = ~(~HC + ~m + m')).
#[inline]
pub fn update(checksum: u16, old_word: u16, new_word: u16) -> u16 {
    let sum = u32::from(!checksum) + u32::from(!old_word) + u32::from(new_word);
    let folded = (sum & 0xffff) + (sum >> 16);
    !(((folded & 0xffff) + (folded >> 16)) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    #[test]
    fn sum_matches_rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Sum::new().add_bytes(&data).folded(), 0xddf2);
        assert_eq!(Sum::new().add_bytes(&data).checksum(), !0xddf2);
    }

    #[test]
    fn odd_length_is_padded_with_zero() {
        assert_eq!(
            Sum::new().add_bytes(&[0x12, 0x34, 0x56]).folded(),
            0x1234 + 0x5600
        );
    }

    #[test]
    fn incremental_update_equals_full_recompute() {
        // An IPv4 header (checksum zeroed), then its TTL/protocol word changed.
        let mut header = [
            0x45, 0x00, 0x00, 0x54, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let before = Sum::new().add_bytes(&header).checksum();
        header[8] = 0x3f;
        let after = Sum::new().add_bytes(&header).checksum();
        assert_eq!(update(before, 0x4001, 0x3f01), after);
    }

    #[test]
    fn data_with_its_checksum_verifies() {
        let mut header = [
            0x45, 0x00, 0x00, 0x54, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = Sum::new().add_bytes(&header).checksum();
        header[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(Sum::new().add_bytes(&header).verifies());
    }
}
