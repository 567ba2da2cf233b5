//! Four-octet AS numbers across a 2-octet speaker (RFC 6793 §4.2): the
//! path arrives as AS_PATH with AS_TRANS in place of every large AS, plus
//! AS4_PATH with the real numbers; the two are merged back into one path.

use super::packet::AsSegment;
use super::packet::attribute::{AS_SEQUENCE, AS_SET};
use super::packet::iana::attr_type;

/// The number of ASes a path counts for (RFC 4271 §9.1.2.2 a): a set
/// counts once, confederation segments not at all.
fn count(path: &[AsSegment]) -> usize {
    path.iter()
        .map(|s| match s.kind {
            AS_SEQUENCE => s.asns.len(),
            AS_SET => 1,
            _ => 0,
        })
        .sum()
}

/// Decodes an AS4_PATH value (segments of 4-octet ASNs); `None` when
/// malformed, which makes the attribute discarded (RFC 6793 §6).
pub fn parse_as4_path(mut value: &[u8]) -> Option<Vec<AsSegment>> {
    let mut segments = Vec::new();
    while !value.is_empty() {
        let [kind, n, rest @ ..] = value else {
            return None;
        };
        let len = usize::from(*n) * 4;
        if !matches!(*kind, 1..=4) || *n == 0 || rest.len() < len {
            return None;
        }
        let asns = rest[..len]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        segments.push(AsSegment { kind: *kind, asns });
        value = &rest[len..];
    }
    Some(segments)
}

/// RFC 6793 §4.2.3: the path from an AS_PATH and an AS4_PATH. An AS4_PATH
/// longer than the AS_PATH is ignored; otherwise the leading ASes of the
/// AS_PATH that the AS4_PATH lacks (added by 2-octet speakers after the
/// last 4-octet one) are prepended to it.
pub fn merge(as_path: &[AsSegment], as4_path: &[AsSegment]) -> Vec<AsSegment> {
    let (n, n4) = (count(as_path), count(as4_path));
    if n < n4 {
        return as_path.to_vec();
    }
    let mut lead = n - n4;
    let mut merged: Vec<AsSegment> = Vec::new();
    for seg in as_path {
        if lead == 0 {
            break;
        }
        match seg.kind {
            AS_SEQUENCE => {
                let take = seg.asns.len().min(lead);
                merged.push(AsSegment {
                    kind: AS_SEQUENCE,
                    asns: seg.asns[..take].to_vec(),
                });
                lead -= take;
            }
            AS_SET => {
                merged.push(seg.clone());
                lead -= 1;
            }
            _ => merged.push(seg.clone()),
        }
    }
    merged.extend(as4_path.iter().cloned());
    merged
}

/// Applies a received AS4_PATH to the path of an UPDATE from a 2-octet
/// speaker and drops the attribute (it is re-created for 2-octet peers when
/// sent on). From a 4-octet speaker an AS4_PATH is meaningless and dropped
/// too (RFC 6793 §4.1).
pub fn apply(attrs: &mut super::packet::PathAttributes, peer_four_octet: bool) {
    let Some(i) = attrs
        .other
        .iter()
        .position(|a| a.type_code == attr_type::AS4_PATH)
    else {
        return;
    };
    let raw = attrs.other.remove(i);
    if peer_four_octet {
        return;
    }
    if let Some(as4) = parse_as4_path(&raw.value) {
        attrs.as_path = merge(&attrs.as_path, &as4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(asns: &[u32]) -> AsSegment {
        AsSegment {
            kind: AS_SEQUENCE,
            asns: asns.to_vec(),
        }
    }

    #[test]
    fn as_trans_is_replaced_by_the_real_numbers() {
        // 65001 (2-octet) prepended after 4200000001 and 4200000002.
        let path = [seq(&[65001, 23456, 23456])];
        let as4 = [seq(&[4_200_000_001, 4_200_000_002])];
        assert_eq!(
            merge(&path, &as4),
            [seq(&[65001]), seq(&[4_200_000_001, 4_200_000_002])]
        );
        // As long as the AS_PATH: the AS4_PATH is the path.
        assert_eq!(
            merge(&[seq(&[23456])], &[seq(&[4_200_000_001])]),
            [seq(&[4_200_000_001])]
        );
        // Longer than the AS_PATH: ignored.
        assert_eq!(merge(&[seq(&[1])], &[seq(&[2, 3])]), [seq(&[1])]);
    }

    #[test]
    fn as4_path_decodes_and_malformed_is_none() {
        let mut v = vec![2, 2];
        v.extend(4_200_000_001u32.to_be_bytes());
        v.extend(7u32.to_be_bytes());
        assert_eq!(parse_as4_path(&v), Some(vec![seq(&[4_200_000_001, 7])]));
        assert_eq!(parse_as4_path(&v[..7]), None, "truncated");
        assert_eq!(parse_as4_path(&[9, 1, 0, 0, 0, 1]), None, "segment type");
        assert_eq!(parse_as4_path(&[2, 0]), None, "empty segment");
    }

    #[test]
    fn apply_merges_from_a_two_octet_speaker_and_drops_the_attribute() {
        use super::super::packet::PathAttributes;
        use super::super::packet::attribute::RawAttribute;
        let mut v = vec![2, 1];
        v.extend(4_200_000_001u32.to_be_bytes());
        let mut attrs = PathAttributes {
            as_path: vec![seq(&[65001, 23456])],
            other: vec![RawAttribute {
                flags: 0xc0,
                type_code: attr_type::AS4_PATH,
                value: v,
            }],
            ..PathAttributes::default()
        };
        let mut from_new = attrs.clone();
        apply(&mut attrs, false);
        assert_eq!(attrs.as_path, [seq(&[65001]), seq(&[4_200_000_001])]);
        assert!(attrs.other.is_empty());
        apply(&mut from_new, true);
        assert_eq!(
            from_new.as_path,
            [seq(&[65001, 23456])],
            "ignored from a 4-octet speaker"
        );
        assert!(from_new.other.is_empty());
    }

    #[test]
    fn a_large_as_travels_to_a_two_octet_peer_in_as4_path() {
        use super::super::packet::{PathAttributes, SessionContext};
        let attrs = PathAttributes {
            as_path: vec![seq(&[4_200_000_001, 65001])],
            ..PathAttributes::default()
        };
        let old = SessionContext {
            four_octet_as: false,
            external: true,
        };
        let mut out = Vec::new();
        attrs.emit(&old, &mut out);
        let mut as4 = vec![0xc0, attr_type::AS4_PATH, 10, AS_SEQUENCE, 2];
        as4.extend(4_200_000_001u32.to_be_bytes());
        as4.extend(65001u32.to_be_bytes());
        assert!(out.windows(as4.len()).any(|w| w == as4), "{out:02x?}");
        // AS_PATH itself holds AS_TRANS in its place.
        assert!(
            out.windows(6)
                .any(|w| w == [AS_SEQUENCE, 2, 0x5b, 0xa0, 0xfd, 0xe9]),
            "{out:02x?}"
        );
        let mut new = Vec::new();
        attrs.emit(
            &SessionContext {
                four_octet_as: true,
                external: true,
            },
            &mut new,
        );
        assert!(
            !new.windows(2).any(|w| w == [0xc0, attr_type::AS4_PATH]),
            "not to a 4-octet peer"
        );
    }
}
