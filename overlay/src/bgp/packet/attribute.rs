//! Path attributes (RFC 4271 §5, RFC 4456 §8, RFC 4360, RFC 4760, RFC 8092)
//! and their error handling per RFC 7606: most malformed attributes make the
//! UPDATE's routes withdrawn instead of resetting the session. What each
//! attribute's fault does is in [`super::attribute_rules`].
//!
//! Attribute layout (RFC 4271 §4.3):
//! ```text
//! flags (1) | type (1) | length (1, or 2 with EXTENDED_LENGTH) | value
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::SessionContext;
use super::as_path::{
    AS4_AGGREGATOR_LEN, clean_as4_path, emit_aggregator, emit_as_path, parse_aggregator,
    parse_as_path,
};
use super::attribute_rules::{ErrorAction, attribute_rule};
use super::community::{
    LargeCommunity, emit_large_communities, ipv6_ext_communities_are_well_formed,
    parse_communities, parse_ext_communities, parse_large_communities,
};
use super::error::DecodeError;
use super::iana::{afi, attr_flag as flag, attr_type as ty};
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
    /// LARGE_COMMUNITY (RFC 8092), without repeats.
    pub large_communities: Vec<LargeCommunity>,
    /// Optional transitive attributes we pass on uninterpreted: unknown
    /// ones (Partial set) and the checked AS4_PATH, AS4_AGGREGATOR (from a
    /// two-octet speaker) and IPv6 Address Specific Extended Community.
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
    /// Faults whose attribute was dropped (RFC 7606 §2 attribute discard),
    /// kept for the log RFC 7606 §6 asks for.
    pub discarded: Vec<DecodeError>,
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

    /// Applies the rule of the attribute of `type_code` to a fault in it:
    /// `Err` when the session must be reset.
    fn fault(&mut self, type_code: u8, e: DecodeError) -> Result<(), DecodeError> {
        match attribute_rule(type_code).map(|r| r.action) {
            Some(ErrorAction::SessionReset) => Err(e),
            Some(ErrorAction::AttributeDiscard) => {
                self.discarded.push(e);
                Ok(())
            }
            // Only known attributes have faults; withdrawing is the
            // default of RFC 7606 §3(c) should another ever get here.
            Some(ErrorAction::TreatAsWithdraw) | None => {
                self.withdraw(e);
                Ok(())
            }
        }
    }
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
        let Some(rule) = attribute_rule(type_code) else {
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
        // RFC 7606 §3(c): wrong Optional/Transitive bits make the attribute
        // malformed, handled by its rule (the Partial bit is not checked).
        if flags & (flag::OPTIONAL | flag::TRANSITIVE) != rule.flags {
            let e = DecodeError::AttributeFlags {
                type_code,
                attribute: whole.to_vec(),
            };
            out.fault(type_code, e)?;
            continue;
        }
        if let Err(e) = parse_known_attribute(type_code, flags, whole, header, ctx, &mut out) {
            out.fault(type_code, e)?;
        }
    }
    Ok(out)
}

/// A four-octet value (MED, LOCAL_PREF, ORIGINATOR_ID), or None when the
/// length is not 4 (RFC 7606 §7.4, §7.5, §7.9).
fn four_octets(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes)
}

/// Keeps an attribute to pass on as received (Extended Length is recomputed
/// on output).
fn keep_raw(flags: u8, type_code: u8, value: &[u8], out: &mut ParsedAttributes) {
    out.attributes.other.push(RawAttribute {
        flags: flags & !flag::EXTENDED_LENGTH,
        type_code,
        value: value.to_vec(),
    });
}

/// Decodes one attribute of a type we know, whose flags are right, into
/// `out`. `Err` is a fault in the attribute, which the caller hands to the
/// attribute's rule ([`super::attribute_rules`]).
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
        ty::ORIGIN => {
            a.origin = match value {
                [0] => Origin::Igp,
                [1] => Origin::Egp,
                [2] => Origin::Incomplete,
                [v] => return Err(DecodeError::InvalidOrigin(*v)),
                _ => return Err(length_error()),
            }
        }
        ty::AS_PATH => {
            a.as_path =
                parse_as_path(value, ctx.four_octet_as).ok_or(DecodeError::MalformedAsPath)?;
        }
        // The plain NEXT_HOP only serves IPv4 unicast NLRI, which we do not
        // use; VPN routes take theirs from MP_REACH_NLRI. Its length is
        // still checked (RFC 7606 §7.3).
        ty::NEXT_HOP => {
            four_octets(value).ok_or_else(length_error)?;
        }
        ty::MED => a.med = Some(four_octets(value).ok_or_else(length_error)?),
        ty::LOCAL_PREF => a.local_pref = Some(four_octets(value).ok_or_else(length_error)?),
        ty::ATOMIC_AGGREGATE if value.is_empty() => a.atomic_aggregate = true,
        ty::ATOMIC_AGGREGATE => return Err(length_error()),
        ty::AGGREGATOR => {
            a.aggregator =
                Some(parse_aggregator(value, ctx.four_octet_as).ok_or_else(length_error)?);
        }
        ty::COMMUNITIES => a.communities = parse_communities(value).ok_or_else(length_error)?,
        ty::ORIGINATOR_ID => {
            a.originator_id = Some(Ipv4Addr::from(four_octets(value).ok_or_else(length_error)?));
        }
        // Same shape as COMMUNITIES: a non-zero multiple of 4 (§7.10).
        ty::CLUSTER_LIST => {
            let ids = parse_communities(value).ok_or_else(length_error)?;
            a.cluster_list = ids.into_iter().map(Ipv4Addr::from).collect();
        }
        ty::MP_REACH_NLRI => parse_mp_reach(value, out)?,
        ty::MP_UNREACH_NLRI => parse_mp_unreach(value, out)?,
        ty::EXTENDED_COMMUNITIES => {
            a.ext_communities = parse_ext_communities(value).ok_or_else(length_error)?;
        }
        // RFC 6793 §4.1: NEW speakers never send these to each other, and
        // one that receives them anyway MUST discard them: no fault.
        ty::AS4_PATH | ty::AS4_AGGREGATOR if ctx.four_octet_as => {}
        // From an OLD speaker they are passed on, checked (RFC 6793 §6);
        // we do not merge them into AS_PATH (§4.2.3): our peers are iBGP.
        ty::AS4_PATH => {
            let path = clean_as4_path(value).ok_or(DecodeError::MalformedAsPath)?;
            if !path.is_empty() {
                keep_raw(flags, type_code, &path, out);
            }
        }
        ty::AS4_AGGREGATOR if value.len() == AS4_AGGREGATOR_LEN => {
            keep_raw(flags, type_code, value, out)
        }
        ty::AS4_AGGREGATOR => return Err(length_error()),
        ty::IPV6_EXTENDED_COMMUNITIES if ipv6_ext_communities_are_well_formed(value) => {
            keep_raw(flags, type_code, value, out)
        }
        ty::IPV6_EXTENDED_COMMUNITIES => return Err(length_error()),
        ty::LARGE_COMMUNITY => {
            a.large_communities = parse_large_communities(value).ok_or_else(length_error)?;
        }
        // Every type of `ATTRIBUTE_RULES` is handled above (a test checks).
        _ => {}
    }
    Ok(())
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
    let next_hop = parse_vpn_next_hop(nh).ok_or_else(bad)?;
    if !is_usable_next_hop(next_hop) {
        // RFC 4271 §6.3: a semantically wrong next hop is logged and the
        // route ignored, without a NOTIFICATION. The NLRI is still located,
        // so the routes are withdrawn should we hold an older version.
        out.withdraw(DecodeError::InvalidNextHop);
    }
    out.attributes.next_hop = Some(next_hop);
    VpnNlri::parse_all(family.afi, nlri, &mut out.reach)
}

/// False for addresses no packet can be tunnelled to: unspecified,
/// multicast, limited broadcast (RFC 4271 §6.3's semantic check; the
/// receiver's own address is the speaker's check, it knows the address).
/// Loopback addresses stay usable: lab peers live on 127/8.
fn is_usable_next_hop(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
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
        emit_as_path(&self.as_path, ctx.four_octet_as, &mut path);
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
            emit_as_path(&self.as_path, true, &mut as4);
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
            let v = emit_aggregator(asn, ip, ctx.four_octet_as);
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
        // LARGE_COMMUNITY goes in type order among the raw attributes,
        // whose own order is kept (a decode of the output gives them back
        // as they were).
        let mut large = (!self.large_communities.is_empty())
            .then(|| emit_large_communities(&self.large_communities));
        for raw in &self.other {
            // RFC 6793 §4.1: never between two four-octet AS speakers (we
            // keep them only from two-octet ones, to pass on to such).
            if ctx.four_octet_as && matches!(raw.type_code, ty::AS4_PATH | ty::AS4_AGGREGATOR) {
                continue;
            }
            if raw.type_code > ty::LARGE_COMMUNITY {
                if let Some(v) = large.take() {
                    emit_attribute(opt_tr, ty::LARGE_COMMUNITY, &v, out);
                }
            }
            emit_attribute(raw.flags, raw.type_code, &raw.value, out);
        }
        if let Some(v) = large {
            emit_attribute(opt_tr, ty::LARGE_COMMUNITY, &v, out);
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
