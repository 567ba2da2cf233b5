//! The community attributes as lists of fixed-size values: COMMUNITIES
//! (RFC 1997, 4 octets), EXTENDED COMMUNITIES (RFC 4360, 8), IPv6 Address
//! Specific Extended Community (RFC 5701, 20) and LARGE_COMMUNITY (RFC 8092,
//! 12). Each is malformed unless its length is a non-zero multiple of its
//! value size (RFC 7606 §7.8, §7.14, §7.15; RFC 8092 §6); the parsers
//! return None then, and the caller applies the attribute's rule.

/// One LARGE_COMMUNITY value (RFC 8092 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// The AS that defined the community.
    pub global_admin: u32,
    /// Operator-defined.
    pub local_data_1: u32,
    /// Operator-defined.
    pub local_data_2: u32,
}

/// Octets of one value of each attribute.
const COMMUNITY_LEN: usize = 4;
const EXT_COMMUNITY_LEN: usize = 8;
/// RFC 5701 §2: an IPv6 address, a 2-octet local administrator and a type.
pub const IPV6_EXT_COMMUNITY_LEN: usize = 20;
const LARGE_COMMUNITY_LEN: usize = 12;

/// Splits `value` into `size`-octet chunks, or None when its length is not
/// a non-zero multiple of `size`.
fn chunks(value: &[u8], size: usize) -> Option<std::slice::ChunksExact<'_, u8>> {
    (!value.is_empty() && value.len() % size == 0).then(|| value.chunks_exact(size))
}

fn be32(c: &[u8]) -> u32 {
    u32::from_be_bytes([c[0], c[1], c[2], c[3]])
}

/// COMMUNITIES values.
pub fn parse_communities(value: &[u8]) -> Option<Vec<u32>> {
    Some(chunks(value, COMMUNITY_LEN)?.map(be32).collect())
}

/// EXTENDED COMMUNITIES values. Any type and sub-type is accepted: an
/// unknown one is no error (RFC 7606 §7.14; RFC 7153 §2 keeps the space open).
pub fn parse_ext_communities(value: &[u8]) -> Option<Vec<[u8; 8]>> {
    Some(
        chunks(value, EXT_COMMUNITY_LEN)?
            .map(|c| {
                let mut b = [0u8; EXT_COMMUNITY_LEN];
                b.copy_from_slice(c);
                b
            })
            .collect(),
    )
}

/// True when an IPv6 Address Specific Extended Community value is well
/// formed (RFC 7606 §7.15); we pass it on without reading it.
pub fn ipv6_ext_communities_are_well_formed(value: &[u8]) -> bool {
    chunks(value, IPV6_EXT_COMMUNITY_LEN).is_some()
}

/// LARGE_COMMUNITY values, duplicates removed (RFC 8092 §5: a receiver
/// SHOULD silently remove redundant values), first occurrence order kept.
pub fn parse_large_communities(value: &[u8]) -> Option<Vec<LargeCommunity>> {
    let mut out: Vec<LargeCommunity> = Vec::with_capacity(value.len() / LARGE_COMMUNITY_LEN);
    for c in chunks(value, LARGE_COMMUNITY_LEN)? {
        let lc = LargeCommunity {
            global_admin: be32(&c[0..4]),
            local_data_1: be32(&c[4..8]),
            local_data_2: be32(&c[8..12]),
        };
        if !out.contains(&lc) {
            out.push(lc);
        }
    }
    Some(out)
}

/// The value of a LARGE_COMMUNITY attribute.
pub fn emit_large_communities(values: &[LargeCommunity]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|c| {
            [c.global_admin, c.local_data_1, c.local_data_2]
                .into_iter()
                .flat_map(u32::to_be_bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_communities_round_trip_and_lose_repeats() {
        let value = [
            0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2, // 65000:1:2
            0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2, // again
        ];
        let parsed = parse_large_communities(&value).expect("well formed");
        assert_eq!(
            parsed,
            [LargeCommunity {
                global_admin: 65000,
                local_data_1: 1,
                local_data_2: 2
            }]
        );
        assert_eq!(emit_large_communities(&parsed), value[..12]);
    }

    #[test]
    fn lengths_must_be_non_zero_multiples() {
        assert_eq!(parse_large_communities(&[0; 13]), None);
        assert_eq!(parse_large_communities(&[]), None);
        assert_eq!(parse_communities(&[0; 5]), None);
        assert_eq!(parse_communities(&[]), None);
        assert_eq!(parse_ext_communities(&[0; 12]), None);
        assert_eq!(parse_ext_communities(&[]), None);
        assert!(!ipv6_ext_communities_are_well_formed(&[0; 21]));
        assert!(!ipv6_ext_communities_are_well_formed(&[]));
        assert!(ipv6_ext_communities_are_well_formed(&[0; 40]));
    }
}
