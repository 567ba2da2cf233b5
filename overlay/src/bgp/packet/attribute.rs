//! Path attributes (RFC 4271 §5, RFC 4456 §8, RFC 4360, RFC 4760) and their
//! error handling per RFC 7606: most malformed attributes make the UPDATE's
//! routes withdrawn instead of resetting the session.
//!
//! Attribute layout (RFC 4271 §4.3):
//! ```text
//! flags (1) | type (1) | length (1, or 2 with EXTENDED_LENGTH) | value
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::SessionContext;
use super::error::DecodeError;
use super::iana::{AS_TRANS, afi, attr_flag as flag, attr_type as ty, safi};
use super::nlri::{Family, VpnNlri};

/// ORIGIN values (RFC 4271 §5.1.1), in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Origin {
    /// Learned from an interior protocol (or configured).
    #[default]
    Igp = 0,
    /// Learned via EGP.
    Egp = 1,
    /// Learned some other way.
    Incomplete = 2,
}

/// An AS_PATH segment (RFC 4271 §4.3, RFC 5065 for confederations).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    /// Segment type: 1 AS_SET, 2 AS_SEQUENCE, 3 AS_CONFED_SEQUENCE, 4 AS_CONFED_SET.
    pub kind: u8,
    /// The AS numbers.
    pub asns: Vec<u32>,
}

/// AS_SET segment type.
pub const AS_SET: u8 = 1;
/// AS_SEQUENCE segment type.
pub const AS_SEQUENCE: u8 = 2;

/// An attribute kept as it arrived: optional transitive ones we do not
/// interpret are passed on with the Partial bit set (RFC 4271 §5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Flags as received (Partial added when we pass it on).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

/// The path attributes of a route, without its NLRI. Routes that share
/// attributes share one interned copy of this in the RIB.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Origin,
    /// AS_PATH (empty for routes originated inside the AS).
    pub as_path: Vec<AsSegment>,
    /// The next hop: from MP_REACH_NLRI (IPv4-mapped IPv6 next hops of
    /// VPNv6 routes are given as IPv4, RFC 4659 §3.2.1.2).
    pub next_hop: Option<IpAddr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR (AS, address).
    pub aggregator: Option<(u32, Ipv4Addr)>,
    /// COMMUNITIES (RFC 1997).
    pub communities: Vec<u32>,
    /// EXTENDED COMMUNITIES (RFC 4360), route targets among them.
    pub ext_communities: Vec<[u8; 8]>,
    /// ORIGINATOR_ID (RFC 4456 §8).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456 §8), most recent reflector first.
    pub cluster_list: Vec<Ipv4Addr>,
    /// Optional transitive attributes we pass on uninterpreted.
    pub other: Vec<RawAttribute>,
}

impl PathAttributes {
    /// AS_PATH length for best-path selection (RFC 4271 §9.1.2.2 a: an AS_SET
    /// counts as one, confederation segments not at all).
    pub fn as_path_len(&self) -> usize {
        self.as_path
            .iter()
            .map(|s| match s.kind {
                AS_SEQUENCE => s.asns.len(),
                AS_SET => 1,
                _ => 0,
            })
            .sum()
    }

    /// The neighbouring AS for MED comparison (RFC 4271 §9.1.2.2 c).
    pub fn neighbor_as(&self) -> Option<u32> {
        self.as_path
            .iter()
            .find(|s| s.kind == AS_SEQUENCE)
            .and_then(|s| s.asns.first().copied())
    }
}

/// What the attribute section of one UPDATE held.
#[derive(Debug, Default)]
pub struct ParsedAttributes {
    /// The path attributes.
    pub attributes: PathAttributes,
    /// Routes from MP_REACH_NLRI (only the VPN families).
    pub reach: Vec<VpnNlri>,
    /// Family of MP_REACH_NLRI, if present.
    pub reach_family: Option<Family>,
    /// Routes from MP_UNREACH_NLRI (only the VPN families).
    pub unreach: Vec<VpnNlri>,
    /// Family of MP_UNREACH_NLRI, if present.
    pub unreach_family: Option<Family>,
    /// Set when the UPDATE must be treated as a withdrawal of its routes
    /// (RFC 7606 §2), with the reason.
    pub treat_as_withdraw: Option<DecodeError>,
    /// Types present, to find missing mandatory ones and duplicates.
    seen: [u64; 4],
}

impl ParsedAttributes {
    fn mark_seen(&mut self, type_code: u8) -> bool {
        let (word, bit) = (usize::from(type_code / 64), type_code % 64);
        let first = self.seen[word] & (1 << bit) == 0;
        self.seen[word] |= 1 << bit;
        first
    }

    /// True when an attribute of this type was present.
    pub fn has(&self, type_code: u8) -> bool {
        self.seen[usize::from(type_code / 64)] & (1 << (type_code % 64)) != 0
    }

    fn withdraw(&mut self, e: DecodeError) {
        self.treat_as_withdraw.get_or_insert(e);
    }
}

/// Flags a known attribute must carry (optional, transitive bits; RFC 4271
/// §5 and the RFC that defines each one).
fn expected_flags(type_code: u8) -> Option<u8> {
    Some(match type_code {
        ty::ORIGIN | ty::AS_PATH | ty::NEXT_HOP | ty::LOCAL_PREF | ty::ATOMIC_AGGREGATE => {
            flag::TRANSITIVE
        }
        ty::MED
        | ty::ORIGINATOR_ID
        | ty::CLUSTER_LIST
        | ty::MP_REACH_NLRI
        | ty::MP_UNREACH_NLRI => flag::OPTIONAL,
        ty::AGGREGATOR
        | ty::COMMUNITIES
        | ty::EXTENDED_COMMUNITIES
        | ty::AS4_PATH
        | ty::AS4_AGGREGATOR => flag::OPTIONAL | flag::TRANSITIVE,
        _ => return None,
    })
}

/// Parses the path attribute section of an UPDATE.
///
/// Returns `Err` only for errors that must reset the session (RFC 7606 §3
/// and §5.3: the attribute list cannot be walked, a broken or repeated
/// MP_REACH/MP_UNREACH, an unknown well-known attribute); everything else
/// lands in [`ParsedAttributes::treat_as_withdraw`] or is discarded.
pub fn parse_attributes(
    mut buf: &[u8],
    ctx: &SessionContext,
) -> Result<ParsedAttributes, DecodeError> {
    let mut out = ParsedAttributes::default();
    while !buf.is_empty() {
        let Some((flags, type_code, header, whole)) = split_attribute(buf) else {
            // RFC 7606 §4: an attribute running past the list is
            // treat-as-withdraw, if we know which routes to withdraw: only
            // when the MP attributes came before the damage (§5.1 asks
            // senders to put them first); else they may be in it: reset.
            if out.reach_family.is_some() || out.unreach_family.is_some() {
                out.withdraw(DecodeError::MalformedAttributeList);
                return Ok(out);
            }
            return Err(DecodeError::MalformedAttributeList);
        };
        let len = whole.len() - header;
        let value = &whole[header..];
        buf = &buf[header + len..];

        let first = out.mark_seen(type_code);
        let is_mp = matches!(type_code, ty::MP_REACH_NLRI | ty::MP_UNREACH_NLRI);
        if !first {
            // RFC 7606 §3 g: a repeated MP attribute resets, others: keep the first.
            if is_mp {
                return Err(DecodeError::MalformedAttributeList);
            }
            continue;
        }
        let Some(expected) = expected_flags(type_code) else {
            if flags & flag::OPTIONAL == 0 {
                return Err(DecodeError::UnrecognizedWellKnownAttribute(type_code));
            }
            if flags & flag::TRANSITIVE != 0 {
                out.attributes.other.push(RawAttribute {
                    flags: (flags & !flag::EXTENDED_LENGTH) | flag::PARTIAL,
                    type_code,
                    value: value.to_vec(),
                });
            }
            continue;
        };
        if flags & (flag::OPTIONAL | flag::TRANSITIVE) != expected {
            let e = DecodeError::AttributeFlags {
                type_code,
                attribute: whole.to_vec(),
            };
            if is_mp {
                return Err(e);
            }
            apply_error_action(type_code, e, &mut out);
            continue;
        }
        parse_known_attribute(type_code, flags, whole, header, ctx, &mut out)?;
    }
    Ok(out)
}

/// Decodes one attribute of a type we know, whose flags are right, into
/// `out`: a malformed value makes the UPDATE treat-as-withdraw or is
/// dropped (RFC 7606 §7); `Err` only for damage that resets the session
/// (in MP_REACH_NLRI / MP_UNREACH_NLRI, §7.11).
fn parse_known_attribute(
    type_code: u8,
    flags: u8,
    whole: &[u8],
    header: usize,
    ctx: &SessionContext,
    out: &mut ParsedAttributes,
) -> Result<(), DecodeError> {
    let value = &whole[header..];
    let length_error = || DecodeError::AttributeLength {
        type_code,
        attribute: whole.to_vec(),
    };
    let a = &mut out.attributes;
    match type_code {
        ty::ORIGIN => match value {
            [0] => a.origin = Origin::Igp,
            [1] => a.origin = Origin::Egp,
            [2] => a.origin = Origin::Incomplete,
            [v] => out.withdraw(DecodeError::InvalidOrigin(*v)),
            _ => out.withdraw(length_error()),
        },
        ty::AS_PATH => match parse_as_path(value, ctx.four_octet_as) {
            Some(path) => a.as_path = path,
            None => out.withdraw(DecodeError::MalformedAsPath),
        },
        ty::NEXT_HOP => match <[u8; 4]>::try_from(value) {
            // The plain NEXT_HOP only serves IPv4 unicast NLRI, which we do
            // not use; VPN routes take theirs from MP_REACH_NLRI.
            Ok(_) => {}
            Err(_) => out.withdraw(length_error()),
        },
        ty::MED => match <[u8; 4]>::try_from(value) {
            Ok(v) => a.med = Some(u32::from_be_bytes(v)),
            Err(_) => out.withdraw(length_error()),
        },
        ty::LOCAL_PREF => match <[u8; 4]>::try_from(value) {
            Ok(v) => a.local_pref = Some(u32::from_be_bytes(v)),
            Err(_) => out.withdraw(length_error()),
        },
        // RFC 7606 §7.6, §7.7: a broken aggregate marker is just dropped.
        ty::ATOMIC_AGGREGATE => a.atomic_aggregate = value.is_empty(),
        ty::AGGREGATOR => {
            if let Some(aggregator) = parse_aggregator(value, ctx.four_octet_as) {
                a.aggregator = Some(aggregator);
            }
        }
        ty::COMMUNITIES => {
            if value.len() % 4 == 0 {
                a.communities = value
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
            } else {
                out.withdraw(length_error());
            }
        }
        ty::EXTENDED_COMMUNITIES => {
            if value.len() % 8 == 0 {
                a.ext_communities = value
                    .chunks_exact(8)
                    .map(|c| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(c);
                        b
                    })
                    .collect();
            } else {
                out.withdraw(length_error());
            }
        }
        ty::ORIGINATOR_ID => match <[u8; 4]>::try_from(value) {
            Ok(v) => a.originator_id = Some(Ipv4Addr::from(v)),
            Err(_) => out.withdraw(length_error()),
        },
        ty::CLUSTER_LIST => {
            if value.len() % 4 == 0 {
                a.cluster_list = value
                    .chunks_exact(4)
                    .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                    .collect();
            } else {
                out.withdraw(length_error());
            }
        }
        ty::MP_REACH_NLRI => parse_mp_reach(value, out)?,
        ty::MP_UNREACH_NLRI => parse_mp_unreach(value, out)?,
        // AS4_PATH / AS4_AGGREGATOR: only meaningful between 2-octet
        // speakers; passed on untouched (RFC 6793 §4.2.2).
        _ => out.attributes.other.push(RawAttribute {
            flags: flags & !flag::EXTENDED_LENGTH,
            type_code,
            value: value.to_vec(),
        }),
    }
    Ok(())
}

/// AGGREGATOR's (AS, address), or None when its length is wrong for the
/// session's AS size (RFC 7606 §7.7: the attribute is then dropped).
fn parse_aggregator(value: &[u8], four_octet_as: bool) -> Option<(u32, Ipv4Addr)> {
    let as_len = if four_octet_as { 4 } else { 2 };
    if value.len() != as_len + 4 {
        return None;
    }
    let asn = if as_len == 4 {
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

/// Splits the first attribute off `buf`: (flags, type, header length, the
/// whole attribute), or None if it does not fit.
fn split_attribute(buf: &[u8]) -> Option<(u8, u8, usize, &[u8])> {
    let (&flags, rest) = buf.split_first()?;
    let (&type_code, rest) = rest.split_first()?;
    let (header, len) = if flags & flag::EXTENDED_LENGTH != 0 {
        let [a, b, ..] = rest else { return None };
        (4, usize::from(u16::from_be_bytes([*a, *b])))
    } else {
        (3, usize::from(*rest.first()?))
    };
    Some((flags, type_code, header, buf.get(..header + len)?))
}

/// RFC 7606 §7: what a flags error on a known attribute does.
fn apply_error_action(type_code: u8, e: DecodeError, out: &mut ParsedAttributes) {
    match type_code {
        // Attribute discard (§7.6, §7.7).
        ty::ATOMIC_AGGREGATE | ty::AGGREGATOR | ty::AS4_AGGREGATOR => {}
        _ => out.withdraw(e),
    }
}

/// Parses AS_PATH segments; None if they do not fill the value exactly or a
/// segment is empty or of an unknown type (RFC 7606 §7.2).
fn parse_as_path(mut value: &[u8], four_octet: bool) -> Option<Vec<AsSegment>> {
    let as_len = if four_octet { 4 } else { 2 };
    let mut path = Vec::new();
    while !value.is_empty() {
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

/// Octets of the all-zero route distinguisher ahead of a VPN next hop
/// (RFC 4364 §4.3.2, RFC 4659 §3.2).
const NEXT_HOP_RD_LEN: usize = 8;

/// Decodes a VPN next hop: RD (zero) + IPv4 (12 octets), or RD + IPv6 (24),
/// or RD + IPv6 + RD + link-local IPv6 (48). An IPv4-mapped IPv6 next hop
/// (RFC 4659 §3.2.1.2) comes back as IPv4; an IPv6 next hop on VPNv4 is the
/// RFC 8950 extended next hop.
fn parse_vpn_next_hop(nh: &[u8]) -> Option<IpAddr> {
    match nh.len() {
        12 => Some(IpAddr::V4(Ipv4Addr::new(nh[8], nh[9], nh[10], nh[11]))),
        24 | 48 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&nh[NEXT_HOP_RD_LEN..NEXT_HOP_RD_LEN + 16]);
            let v6 = Ipv6Addr::from(a);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

/// Emits a VPN next hop for `family` (the inverse of [`parse_vpn_next_hop`]).
pub fn emit_vpn_next_hop(family: Family, next_hop: IpAddr, out: &mut Vec<u8>) {
    let len_at = out.len();
    out.push(0);
    out.extend_from_slice(&[0u8; NEXT_HOP_RD_LEN]);
    match (family.afi, next_hop) {
        (afi::IPV4, IpAddr::V4(a)) => out.extend_from_slice(&a.octets()),
        (_, IpAddr::V4(a)) => out.extend_from_slice(&a.to_ipv6_mapped().octets()),
        (_, IpAddr::V6(a)) => out.extend_from_slice(&a.octets()),
    }
    out[len_at] = (out.len() - len_at - 1) as u8;
}

fn is_vpn(f: Family) -> bool {
    f == Family::VPNV4 || f == Family::VPNV6
}

/// MP_REACH_NLRI (RFC 4760 §3): AFI, SAFI, next hop, reserved, NLRI.
/// A broken one resets the session (RFC 7606 §7.11).
fn parse_mp_reach(value: &[u8], out: &mut ParsedAttributes) -> Result<(), DecodeError> {
    let bad = || DecodeError::OptionalAttribute(ty::MP_REACH_NLRI);
    if value.len() < 5 {
        return Err(bad());
    }
    let family = Family {
        afi: u16::from_be_bytes([value[0], value[1]]),
        safi: value[2],
    };
    let nh_len = usize::from(value[3]);
    let nh = value.get(4..4 + nh_len).ok_or_else(bad)?;
    // One reserved octet (formerly SNPAs) follows the next hop.
    let nlri = value.get(4 + nh_len + 1..).ok_or_else(bad)?;
    out.reach_family = Some(family);
    if !is_vpn(family) {
        // A family we did not negotiate: ignore it (RFC 4760 §7 lets us).
        return Ok(());
    }
    if family.safi != safi::MPLS_VPN {
        return Ok(());
    }
    let next_hop = parse_vpn_next_hop(nh).ok_or_else(bad)?;
    out.attributes.next_hop = Some(next_hop);
    VpnNlri::parse_all(family.afi, nlri, &mut out.reach)
}

/// MP_UNREACH_NLRI (RFC 4760 §4): AFI, SAFI, withdrawn routes.
fn parse_mp_unreach(value: &[u8], out: &mut ParsedAttributes) -> Result<(), DecodeError> {
    if value.len() < 3 {
        return Err(DecodeError::OptionalAttribute(ty::MP_UNREACH_NLRI));
    }
    let family = Family {
        afi: u16::from_be_bytes([value[0], value[1]]),
        safi: value[2],
    };
    out.unreach_family = Some(family);
    if !is_vpn(family) {
        return Ok(());
    }
    VpnNlri::parse_all(family.afi, &value[3..], &mut out.unreach)
}

/// Appends one attribute header + value, with the extended length flag when
/// the value needs it.
pub fn emit_attribute(flags: u8, type_code: u8, value: &[u8], out: &mut Vec<u8>) {
    if value.len() > 255 {
        out.extend_from_slice(&[flags | flag::EXTENDED_LENGTH, type_code]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags & !flag::EXTENDED_LENGTH, type_code, value.len() as u8]);
    }
    out.extend_from_slice(value);
}

impl PathAttributes {
    /// Appends every attribute but MP_REACH_NLRI (which carries the NLRI and
    /// is built per message), in type order (RFC 4271 §5 recommends it).
    pub fn emit(&self, ctx: &SessionContext, out: &mut Vec<u8>) {
        let wk = flag::TRANSITIVE;
        let opt = flag::OPTIONAL;
        let opt_tr = flag::OPTIONAL | flag::TRANSITIVE;
        emit_attribute(wk, ty::ORIGIN, &[self.origin as u8], out);
        let mut path = Vec::new();
        for seg in &self.as_path {
            // AS_PATH segments hold at most 255 ASNs; longer ones are split.
            for chunk in seg.asns.chunks(255) {
                path.push(seg.kind);
                path.push(chunk.len() as u8);
                for asn in chunk {
                    if ctx.four_octet_as {
                        path.extend_from_slice(&asn.to_be_bytes());
                    } else {
                        let two = u16::try_from(*asn).unwrap_or(AS_TRANS);
                        path.extend_from_slice(&two.to_be_bytes());
                    }
                }
            }
        }
        emit_attribute(wk, ty::AS_PATH, &path, out);
        // A 2-octet peer sees AS_TRANS for every large AS; AS4_PATH carries
        // the real ones (RFC 6793 §4.2.2).
        if !ctx.four_octet_as
            && self
                .as_path
                .iter()
                .flat_map(|s| &s.asns)
                .any(|a| *a > 0xffff)
        {
            let mut as4 = Vec::new();
            for seg in &self.as_path {
                for chunk in seg.asns.chunks(255) {
                    as4.push(seg.kind);
                    as4.push(chunk.len() as u8);
                    for asn in chunk {
                        as4.extend_from_slice(&asn.to_be_bytes());
                    }
                }
            }
            emit_attribute(opt_tr, ty::AS4_PATH, &as4, out);
        }
        if let Some(med) = self.med {
            emit_attribute(opt, ty::MED, &med.to_be_bytes(), out);
        }
        // LOCAL_PREF is always sent on iBGP, never on eBGP (RFC 4271 §5.1.5).
        if !ctx.external {
            emit_attribute(
                wk,
                ty::LOCAL_PREF,
                &self.local_pref.unwrap_or(100).to_be_bytes(),
                out,
            );
        }
        if self.atomic_aggregate {
            emit_attribute(wk, ty::ATOMIC_AGGREGATE, &[], out);
        }
        if let Some((asn, ip)) = self.aggregator {
            let mut v = Vec::with_capacity(8);
            if ctx.four_octet_as {
                v.extend_from_slice(&asn.to_be_bytes());
            } else {
                v.extend_from_slice(&u16::try_from(asn).unwrap_or(AS_TRANS).to_be_bytes());
            }
            v.extend_from_slice(&ip.octets());
            emit_attribute(opt_tr, ty::AGGREGATOR, &v, out);
        }
        if !self.communities.is_empty() {
            let v: Vec<u8> = self
                .communities
                .iter()
                .flat_map(|c| c.to_be_bytes())
                .collect();
            emit_attribute(opt_tr, ty::COMMUNITIES, &v, out);
        }
        if let Some(id) = self.originator_id {
            emit_attribute(opt, ty::ORIGINATOR_ID, &id.octets(), out);
        }
        if !self.cluster_list.is_empty() {
            let v: Vec<u8> = self.cluster_list.iter().flat_map(|c| c.octets()).collect();
            emit_attribute(opt, ty::CLUSTER_LIST, &v, out);
        }
        if !self.ext_communities.is_empty() {
            let v: Vec<u8> = self.ext_communities.iter().flatten().copied().collect();
            emit_attribute(opt_tr, ty::EXTENDED_COMMUNITIES, &v, out);
        }
        for raw in &self.other {
            emit_attribute(raw.flags, raw.type_code, &raw.value, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> SessionContext {
        SessionContext {
            four_octet_as: true,
            external: false,
        }
    }

    #[test]
    fn attributes_round_trip() {
        let attrs = PathAttributes {
            origin: Origin::Egp,
            as_path: vec![AsSegment {
                kind: AS_SEQUENCE,
                asns: vec![65001, 4_200_000_000],
            }],
            med: Some(5),
            local_pref: Some(200),
            communities: vec![0xfde8_0001],
            ext_communities: vec![[0, 2, 0xfd, 0xe8, 0, 0, 0, 1]],
            originator_id: Some(Ipv4Addr::new(1, 1, 1, 1)),
            cluster_list: vec![Ipv4Addr::new(2, 2, 2, 2)],
            ..PathAttributes::default()
        };
        let mut buf = Vec::new();
        attrs.emit(&ctx(), &mut buf);
        let parsed = parse_attributes(&buf, &ctx()).unwrap();
        assert_eq!(parsed.treat_as_withdraw, None);
        assert_eq!(parsed.attributes, attrs);
    }

    #[test]
    fn bad_origin_is_treat_as_withdraw() {
        let parsed = parse_attributes(&[0x40, 1, 1, 7], &ctx()).unwrap();
        assert_eq!(
            parsed.treat_as_withdraw,
            Some(DecodeError::InvalidOrigin(7))
        );
    }

    #[test]
    fn bad_local_pref_length_is_treat_as_withdraw() {
        let parsed = parse_attributes(&[0x40, 5, 3, 0, 0, 100], &ctx()).unwrap();
        assert!(matches!(
            parsed.treat_as_withdraw,
            Some(DecodeError::AttributeLength { type_code: 5, .. })
        ));
    }

    #[test]
    fn wrong_flags_on_origin_is_treat_as_withdraw() {
        let parsed = parse_attributes(&[0x80, 1, 1, 0], &ctx()).unwrap();
        assert!(matches!(
            parsed.treat_as_withdraw,
            Some(DecodeError::AttributeFlags { type_code: 1, .. })
        ));
    }

    #[test]
    fn attribute_overrunning_the_list_after_mp_reach_is_treat_as_withdraw() {
        // MP_REACH_NLRI for VPNv4 with one route, then an ORIGIN claiming 5 octets.
        let mut v = vec![
            0x80, 14, 0, 0, 1, 128, 12, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 1, 0,
        ];
        v.extend_from_slice(&[112, 0, 0x06, 0x41, 0, 0, 0xfd, 0xe8, 0, 0, 0, 7, 10, 1, 2]);
        v[2] = (v.len() - 3) as u8;
        v.extend_from_slice(&[0x40, 1, 5, 0]);
        let parsed = parse_attributes(&v, &ctx()).unwrap();
        assert_eq!(
            parsed.treat_as_withdraw,
            Some(DecodeError::MalformedAttributeList)
        );
        assert_eq!(parsed.reach.len(), 1, "the routes to withdraw are known");
    }

    #[test]
    fn attribute_overrunning_the_list_resets() {
        assert_eq!(
            parse_attributes(&[0x40, 1, 5, 0], &ctx()).unwrap_err(),
            DecodeError::MalformedAttributeList
        );
        assert_eq!(
            parse_attributes(&[0x40, 1], &ctx()).unwrap_err(),
            DecodeError::MalformedAttributeList
        );
    }

    #[test]
    fn unknown_well_known_attribute_resets() {
        assert_eq!(
            parse_attributes(&[0x40, 99, 0], &ctx()).unwrap_err(),
            DecodeError::UnrecognizedWellKnownAttribute(99)
        );
    }

    #[test]
    fn unknown_optional_transitive_is_kept_partial() {
        let parsed = parse_attributes(&[0xc0, 99, 1, 7], &ctx()).unwrap();
        assert_eq!(
            parsed.attributes.other,
            vec![RawAttribute {
                flags: 0xe0,
                type_code: 99,
                value: vec![7]
            }]
        );
    }

    #[test]
    fn repeated_mp_reach_resets() {
        let mp = [0x80, 14, 5, 0, 9, 9, 0, 0];
        let both: Vec<u8> = mp.iter().chain(mp.iter()).copied().collect();
        assert_eq!(
            parse_attributes(&both, &ctx()).unwrap_err(),
            DecodeError::MalformedAttributeList
        );
    }

    #[test]
    fn mp_reach_with_bad_next_hop_length_is_an_optional_attribute_error() {
        // AFI 1 SAFI 128, next hop length 5.
        let v = [0x80, 14, 10, 0, 1, 128, 5, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_attributes(&v, &ctx()).unwrap_err(),
            DecodeError::OptionalAttribute(14)
        );
    }

    #[test]
    fn vpnv6_ipv4_mapped_next_hop_reads_as_ipv4() {
        let mut nh = Vec::new();
        emit_vpn_next_hop(
            Family::VPNV6,
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            &mut nh,
        );
        assert_eq!(nh.len(), 25);
        assert_eq!(
            parse_vpn_next_hop(&nh[1..]),
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
    }
}
