//! The flow hash of an inner packet: the entropy that MPLS-over-UDP puts in
//! its source port (RFC 7510 §3) and the outer IPv6 flow label (RFC 6438).
//!
//! All packets of one flow must hash alike so that ECMP paths between the
//! tunnel endpoints do not reorder them; packets of different flows should
//! spread. The key is the 5-tuple where there is one (TCP, UDP, UDP-Lite,
//! SCTP, DCCP), else the 3-tuple; non-first fragments carry no ports, so
//! every fragmented packet hashes on its 3-tuple to keep fragments together.

/// IP protocols whose first four payload bytes are source and destination port.
const fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 33 | 132 | 136)
}

/// Offsets in the inner headers, for the fields the hash reads.
mod field {
    use std::ops::Range;

    pub const V4_IHL: usize = 0;
    pub const V4_FRAGMENT: Range<usize> = 6..8;
    pub const V4_PROTOCOL: usize = 9;
    pub const V4_ADDRESSES: Range<usize> = 12..20;
    pub const V6_NEXT_HEADER: usize = 6;
    pub const V6_ADDRESSES: Range<usize> = 8..40;
    pub const V6_HEADER_LEN: usize = 40;
    pub const PORTS: Range<usize> = 0..4;
}

/// More-fragments flag and fragment offset of the IPv4 flags/offset word.
const V4_FRAGMENT_MASK: u16 = 0x3fff;

/// Hashes the flow of an inner IP packet. Malformed or short packets hash
/// to whatever bytes are there; this never fails and never panics.
pub fn flow_hash(inner: &[u8]) -> u32 {
    let mut h = Hasher::new();
    match inner.first().map(|b| b >> 4) {
        Some(4) if inner.len() >= field::V4_ADDRESSES.end => {
            let protocol = inner[field::V4_PROTOCOL];
            h.write(&inner[field::V4_ADDRESSES]);
            h.write_u32(u32::from(protocol));
            let fragment = u16::from_be_bytes([
                inner[field::V4_FRAGMENT.start],
                inner[field::V4_FRAGMENT.start + 1],
            ]);
            let header_len = usize::from(inner[field::V4_IHL] & 0x0f) * 4;
            if has_ports(protocol) && fragment & V4_FRAGMENT_MASK == 0 {
                if let Some(ports) = inner.get(header_len..).and_then(|t| t.get(field::PORTS)) {
                    h.write(ports);
                }
            }
        }
        Some(6) if inner.len() >= field::V6_HEADER_LEN => {
            let next = inner[field::V6_NEXT_HEADER];
            h.write(&inner[field::V6_ADDRESSES]);
            h.write_u32(u32::from(next));
            // Only a transport header right after the fixed header is read;
            // with extension headers in between the 3-tuple has to do.
            if has_ports(next) {
                if let Some(ports) = inner
                    .get(field::V6_HEADER_LEN..)
                    .and_then(|t| t.get(field::PORTS))
                {
                    h.write(ports);
                }
            }
        }
        _ => h.write(inner.get(..20).unwrap_or(inner)),
    }
    h.finish()
}

/// A small multiplicative hash (FxHash's step with MurmurHash3's finaliser):
/// no keys, no allocation, a few nanoseconds for a 5-tuple. It is not
/// collision resistant; the entropy only spreads flows over paths.
struct Hasher(u64);

impl Hasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn new() -> Hasher {
        Hasher(0)
    }

    fn write_u32(&mut self, word: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(word)).wrapping_mul(Self::SEED);
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(4);
        for c in &mut chunks {
            self.write_u32(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
        }
        for &b in chunks.remainder() {
            self.write_u32(u32::from(b));
        }
    }

    fn finish(&self) -> u32 {
        let mut x = self.0 ^ (self.0 >> 33);
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^= x >> 33;
        x as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_v4(src_port: u16) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&src_port.to_be_bytes());
        p.extend_from_slice(&[0x00, 0x35, 0, 8, 0, 0]);
        p
    }

    #[test]
    fn same_flow_hashes_alike_and_ttl_does_not_matter() {
        let a = udp_v4(40000);
        let mut b = udp_v4(40000);
        b[8] = 3;
        assert_eq!(flow_hash(&a), flow_hash(&b));
    }

    #[test]
    fn different_ports_spread() {
        let hashes: std::collections::HashSet<u32> = (40000..40064)
            .map(|p| flow_hash(&udp_v4(p)) & 0x3fff)
            .collect();
        assert!(hashes.len() > 56, "only {} distinct of 64", hashes.len());
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..64 {
            let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) | 0x40).collect();
            let _ = flow_hash(&data);
        }
    }
}
