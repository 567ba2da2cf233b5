//! The attributes that carry AS numbers: AS_PATH and AGGREGATOR (RFC 4271
//! §4.3, two or four octets per AS as the session agreed, RFC 6793 §4.1) and
//! their four-octet companions AS4_PATH and AS4_AGGREGATOR (RFC 6793 §3),
//! which only an OLD (two-octet) speaker may send.

use std::net::Ipv4Addr;

use super::attribute::{AS_SEQUENCE, AS_SET, AsSegment};
use super::iana::AS_TRANS;

/// Octets of one AS number.
fn as_len(four_octet: bool) -> usize {
    if four_octet { 4 } else { 2 }
}

/// Parses AS_PATH segments; None if they do not fill the value exactly, a
/// segment is empty or of an unknown type (RFC 7606 §7.2).
pub fn parse_as_path(mut value: &[u8], four_octet: bool) -> Option<Vec<AsSegment>> {
    let as_len = as_len(four_octet);
    let mut path = Vec::new();
    while !value.is_empty() {
        // One octet left is the §7.2 underrun: no room for a segment header.
        let (&kind, rest) = value.split_first()?;
        let (&count, rest) = rest.split_first()?;
        if !(1..=4).contains(&kind) || count == 0 {
            return None;
        }
        let bytes = rest.get(..usize::from(count) * as_len)?;
        let asns = bytes
            .chunks_exact(as_len)
            .map(|c| match c {
                [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
                [a, b] => u32::from(u16::from_be_bytes([*a, *b])),
                _ => 0,
            })
            .collect();
        path.push(AsSegment { kind, asns });
        value = &rest[bytes.len()..];
    }
    Some(path)
}

/// Appends AS_PATH segments; those of more than 255 ASes are split (the
/// count is one octet), and on a two-octet session an AS that does not fit
/// becomes AS_TRANS (RFC 6793 §4.2.2).
pub fn emit_as_path(path: &[AsSegment], four_octet: bool, out: &mut Vec<u8>) {
    for seg in path {
        for chunk in seg.asns.chunks(255) {
            out.push(seg.kind);
            out.push(chunk.len() as u8);
            for asn in chunk {
                if four_octet {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let two = u16::try_from(*asn).unwrap_or(AS_TRANS);
                    out.extend_from_slice(&two.to_be_bytes());
                }
            }
        }
    }
}

/// AGGREGATOR's (AS, address), or None when its length is wrong for the
/// session's AS size (RFC 7606 §7.7: the attribute is then dropped).
pub fn parse_aggregator(value: &[u8], four_octet: bool) -> Option<(u32, Ipv4Addr)> {
    let as_len = as_len(four_octet);
    if value.len() != as_len + 4 {
        return None;
    }
    let asn = if four_octet {
        u32::from_be_bytes([value[0], value[1], value[2], value[3]])
    } else {
        u32::from(u16::from_be_bytes([value[0], value[1]]))
    };
    let ip = Ipv4Addr::new(
        value[as_len],
        value[as_len + 1],
        value[as_len + 2],
        value[as_len + 3],
    );
    Some((asn, ip))
}

/// The AGGREGATOR value for the session's AS size.
pub fn emit_aggregator(asn: u32, ip: Ipv4Addr, four_octet: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(8);
    if four_octet {
        v.extend_from_slice(&asn.to_be_bytes());
    } else {
        v.extend_from_slice(&u16::try_from(asn).unwrap_or(AS_TRANS).to_be_bytes());
    }
    v.extend_from_slice(&ip.octets());
    v
}

/// An AS4_PATH from an OLD speaker, re-encoded without its confederation
/// segments (RFC 6793 §6: they MUST be discarded and the rest kept); None
/// when it is malformed by AS_PATH's rules or empty (RFC 7606 §4: only
/// AS_PATH and ATOMIC_AGGREGATE may be), and §6 discards the attribute.
pub fn clean_as4_path(value: &[u8]) -> Option<Vec<u8>> {
    if value.is_empty() {
        return None;
    }
    let mut path = parse_as_path(value, true)?;
    path.retain(|s| matches!(s.kind, AS_SET | AS_SEQUENCE));
    let mut out = Vec::with_capacity(value.len());
    emit_as_path(&path, true, &mut out);
    Some(out)
}

/// AS4_AGGREGATOR is one four-octet AS and an address (RFC 6793 §3); any
/// other length is malformed (§6: discarded).
pub const AS4_AGGREGATOR_LEN: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as4_path_loses_its_confederation_segments() {
        // AS_CONFED_SEQUENCE (3) of one AS, then AS_SEQUENCE of one.
        let v = [3, 1, 0, 0, 0, 9, 2, 1, 0, 0xfd, 0xe9, 0];
        assert_eq!(clean_as4_path(&v), Some(vec![2, 1, 0, 0xfd, 0xe9, 0]));
    }

    #[test]
    fn malformed_as4_paths_are_none() {
        assert_eq!(clean_as4_path(&[2, 0]), None, "empty segment");
        assert_eq!(clean_as4_path(&[2, 2, 0, 0, 0, 1]), None, "overrun");
        assert_eq!(clean_as4_path(&[2, 1, 0, 0, 0, 1, 2]), None, "underrun");
        assert_eq!(clean_as4_path(&[9, 1, 0, 0, 0, 1]), None, "segment type");
        assert_eq!(clean_as4_path(&[]), None, "empty");
    }

    #[test]
    fn aggregator_length_follows_the_session() {
        let four = [0, 0, 0xfd, 0xe8, 10, 0, 0, 1];
        assert_eq!(
            parse_aggregator(&four, true),
            Some((65000, Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert_eq!(parse_aggregator(&four, false), None);
        assert_eq!(
            emit_aggregator(65000, Ipv4Addr::new(10, 0, 0, 1), true),
            four
        );
    }
}
