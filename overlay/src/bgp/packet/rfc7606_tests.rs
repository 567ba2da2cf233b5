//! RFC 7606 (and RFC 8092 §6, RFC 6793 §4.1 and §6) per attribute: each
//! fault of each attribute the codec knows gets its action, checked on the
//! attribute section (`parse_attributes`) and, for the rules that look at
//! the whole UPDATE (§3(d), §5.2), on the message.

use std::net::{IpAddr, Ipv4Addr};

use super::attribute::{ParsedAttributes, RawAttribute, parse_attributes};
use super::attribute_rules::{ATTRIBUTE_RULES, ErrorAction};
use super::community::LargeCommunity;
use super::error::DecodeError;
use super::iana::attr_type as ty;
use super::{Message, SessionContext};

const WK: u8 = 0x40;
const OPT: u8 = 0x80;
const OPT_TR: u8 = 0xc0;

const NEW: SessionContext = SessionContext {
    four_octet_as: true,
    external: false,
};
const OLD: SessionContext = SessionContext {
    four_octet_as: false,
    external: false,
};

fn attr(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, type_code, value.len() as u8];
    a.extend_from_slice(value);
    a
}

/// MP_REACH_NLRI for VPNv4 with `next_hop` and one route,
/// 65000:7:10.1.2.0/24 label 100.
fn mp_reach(next_hop: [u8; 4]) -> Vec<u8> {
    let mut v = vec![0, 1, 128, 12, 0, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&next_hop);
    v.push(0);
    v.extend_from_slice(&[112, 0, 0x06, 0x41, 0, 0, 0xfd, 0xe8, 0, 0, 0, 7, 10, 1, 2]);
    attr(OPT, ty::MP_REACH_NLRI, &v)
}

/// What became of the UPDATE's routes and attributes.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// No fault.
    Accepted,
    /// A fault whose attribute was dropped (attribute discard).
    Discarded,
    /// Treat-as-withdraw, with the reason.
    Withdrawn(DecodeError),
    /// Session reset, with the NOTIFICATION's error.
    Reset(DecodeError),
}

/// Parses a good VPNv4 route's attributes followed by `extra`.
fn parse(extra: &[u8], ctx: SessionContext) -> Result<ParsedAttributes, DecodeError> {
    let mut v = mp_reach([192, 0, 2, 1]);
    v.extend_from_slice(&attr(WK, ty::ORIGIN, &[0]));
    v.extend_from_slice(&attr(WK, ty::AS_PATH, &[]));
    v.extend_from_slice(extra);
    parse_attributes(&v, &ctx)
}

fn outcome(extra: &[u8], ctx: SessionContext) -> Outcome {
    match parse(extra, ctx) {
        Err(e) => Outcome::Reset(e),
        Ok(p) => match p.treat_as_withdraw {
            Some(e) => Outcome::Withdrawn(e),
            None if p.discarded.is_empty() => Outcome::Accepted,
            None => Outcome::Discarded,
        },
    }
}

fn length_error(a: &[u8]) -> Outcome {
    Outcome::Withdrawn(DecodeError::AttributeLength {
        type_code: a[1],
        attribute: a.to_vec(),
    })
}

fn flags_error(a: &[u8]) -> Outcome {
    Outcome::Withdrawn(DecodeError::AttributeFlags {
        type_code: a[1],
        attribute: a.to_vec(),
    })
}

/// A well-formed value for each attribute with a rule, on a NEW session.
fn sample(type_code: u8) -> Vec<u8> {
    match type_code {
        ty::ORIGIN => vec![0],
        ty::AS_PATH | ty::ATOMIC_AGGREGATE => vec![],
        ty::NEXT_HOP | ty::MED | ty::LOCAL_PREF | ty::ORIGINATOR_ID | ty::COMMUNITIES => {
            vec![0, 0, 0, 1]
        }
        ty::CLUSTER_LIST => vec![1, 1, 1, 1],
        ty::AGGREGATOR | ty::AS4_AGGREGATOR | ty::EXTENDED_COMMUNITIES => {
            vec![0, 2, 0, 1, 1, 2, 3, 4]
        }
        ty::MP_REACH_NLRI => mp_reach([192, 0, 2, 1])[3..].to_vec(),
        ty::MP_UNREACH_NLRI => vec![0, 1, 128],
        ty::AS4_PATH => vec![2, 1, 0, 0, 0xfd, 0xe9],
        ty::IPV6_EXTENDED_COMMUNITIES => vec![0; 20],
        ty::LARGE_COMMUNITY => vec![0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2],
        other => panic!("no sample for attribute {other}"),
    }
}

#[test]
fn every_known_attribute_parses_well_formed_and_its_rule_decides_wrong_flags() {
    for rule in &ATTRIBUTE_RULES {
        // ORIGIN and AS_PATH are in the base; MP_REACH too (a second resets).
        let in_base = matches!(rule.type_code, ty::ORIGIN | ty::AS_PATH | ty::MP_REACH_NLRI);
        let value = sample(rule.type_code);
        if !in_base {
            let good = attr(rule.flags, rule.type_code, &value);
            assert_eq!(outcome(&good, NEW), Outcome::Accepted, "{}", rule.name);
        }
        // Flip the Transitive bit, or the Optional one where Transitive is
        // required of an optional attribute (both are §3(c) flags errors).
        let wrong = rule.flags ^ if rule.flags == OPT_TR { OPT } else { WK };
        let bad = attr(wrong, rule.type_code, &value);
        let mut v = bad.clone();
        if !in_base {
            v = [mp_reach([192, 0, 2, 1]), bad.clone()].concat();
        }
        let e = DecodeError::AttributeFlags {
            type_code: rule.type_code,
            attribute: bad.clone(),
        };
        let got = match parse_attributes(&v, &NEW) {
            Err(e) => (ErrorAction::SessionReset, Some(e)),
            Ok(p) if p.treat_as_withdraw.is_some() => {
                (ErrorAction::TreatAsWithdraw, p.treat_as_withdraw)
            }
            Ok(p) => (ErrorAction::AttributeDiscard, p.discarded.first().cloned()),
        };
        assert_eq!(
            got,
            (rule.action, Some(e)),
            "{} with flags {wrong:#x}",
            rule.name
        );
    }
}

#[test]
fn origin_faults_are_treat_as_withdraw() {
    // RFC 7606 §7.1.
    let two = attr(WK, ty::ORIGIN, &[0, 0]);
    let v = [attr(WK, ty::AS_PATH, &[]), attr(WK, ty::ORIGIN, &[7])].concat();
    assert_eq!(
        parse_attributes(&v, &NEW).map(|p| p.treat_as_withdraw),
        Ok(Some(DecodeError::InvalidOrigin(7)))
    );
    let v = [attr(WK, ty::AS_PATH, &[]), two.clone()].concat();
    assert!(matches!(
        parse_attributes(&v, &NEW).map(|p| p.treat_as_withdraw),
        Ok(Some(DecodeError::AttributeLength { type_code: 1, .. }))
    ));
}

#[test]
fn as_path_faults_are_treat_as_withdraw() {
    // RFC 7606 §7.2: unknown segment type, empty segment, overrun, underrun.
    for value in [
        &[9, 1, 0, 0, 0, 1][..],
        &[2, 0],
        &[2, 2, 0, 0, 0, 1],
        &[2, 1, 0, 0, 0, 1, 2],
    ] {
        let v = [mp_reach([192, 0, 2, 1]), attr(WK, ty::AS_PATH, value)].concat();
        let p = parse_attributes(&v, &NEW).expect("no reset");
        assert_eq!(
            p.treat_as_withdraw,
            Some(DecodeError::MalformedAsPath),
            "{value:?}"
        );
    }
}

#[test]
fn fixed_length_attributes_of_a_wrong_length_are_treat_as_withdraw() {
    // RFC 7606 §7.3 NEXT_HOP, §7.4 MED, §7.5 LOCAL_PREF, §7.9 ORIGINATOR_ID.
    for (flags, t) in [
        (WK, ty::NEXT_HOP),
        (OPT, ty::MED),
        (WK, ty::LOCAL_PREF),
        (OPT, ty::ORIGINATOR_ID),
    ] {
        for value in [&[0, 0, 1][..], &[0, 0, 0, 0, 1], &[]] {
            let a = attr(flags, t, value);
            assert_eq!(
                outcome(&a, NEW),
                length_error(&a),
                "type {t} length {}",
                value.len()
            );
        }
    }
}

#[test]
fn aggregate_attributes_are_discarded() {
    // RFC 7606 §7.6: ATOMIC_AGGREGATE of length 1.
    let p = parse(&attr(WK, ty::ATOMIC_AGGREGATE, &[0]), NEW).expect("no reset");
    assert_eq!((p.treat_as_withdraw, p.discarded.len()), (None, 1));
    assert!(!p.attributes.atomic_aggregate);
    // §7.7: AGGREGATOR is 8 octets between NEW speakers, 6 otherwise.
    let six = attr(OPT_TR, ty::AGGREGATOR, &[0xfd, 0xe8, 10, 0, 0, 1]);
    assert_eq!(outcome(&six, NEW), Outcome::Discarded);
    let p = parse(&six, OLD).expect("no reset");
    assert_eq!(
        p.attributes.aggregator,
        Some((65000, Ipv4Addr::new(10, 0, 0, 1)))
    );
    // §3(f): a flags error on either is a discard too.
    assert_eq!(
        outcome(&attr(OPT_TR, ty::ATOMIC_AGGREGATE, &[]), NEW),
        Outcome::Discarded
    );
}

#[test]
fn community_lists_must_be_non_zero_multiples() {
    // RFC 7606 §7.8, §7.10, §7.14, §7.15; RFC 8092 §6.
    for (flags, t, size) in [
        (OPT_TR, ty::COMMUNITIES, 4),
        (OPT, ty::CLUSTER_LIST, 4),
        (OPT_TR, ty::EXTENDED_COMMUNITIES, 8),
        (OPT_TR, ty::IPV6_EXTENDED_COMMUNITIES, 20),
        (OPT_TR, ty::LARGE_COMMUNITY, 12),
    ] {
        for len in [0, size + 1, 2 * size - 1] {
            let a = attr(flags, t, &vec![1; len]);
            assert_eq!(outcome(&a, NEW), length_error(&a), "type {t} length {len}");
        }
        let good = attr(flags, t, &vec![1; 2 * size]);
        assert_eq!(outcome(&good, NEW), Outcome::Accepted, "type {t}");
    }
}

#[test]
fn large_community_of_13_octets_is_treat_as_withdraw() {
    // The case: it used to be kept as an unknown attribute.
    let a = attr(
        OPT_TR,
        ty::LARGE_COMMUNITY,
        &[0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2, 9],
    );
    assert_eq!(outcome(&a, NEW), length_error(&a));
    let p = parse(&a, NEW).expect("no reset");
    assert!(p.attributes.other.is_empty(), "not passed on either");
    // Wrong flags: RFC 7606 §3(c) treat-as-withdraw.
    let a = attr(OPT, ty::LARGE_COMMUNITY, &[0; 12]);
    assert_eq!(outcome(&a, NEW), flags_error(&a));
}

#[test]
fn large_communities_are_decoded_without_repeats_and_round_trip() {
    let one = [0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2];
    let p = parse(
        &attr(OPT_TR, ty::LARGE_COMMUNITY, &[one, one].concat()),
        NEW,
    )
    .expect("ok");
    let lc = LargeCommunity {
        global_admin: 65000,
        local_data_1: 1,
        local_data_2: 2,
    };
    assert_eq!(p.attributes.large_communities, [lc]);
    let mut out = Vec::new();
    p.attributes.emit(&NEW, &mut out);
    let again = parse_attributes(&out, &NEW).expect("ok").attributes;
    assert_eq!(again.large_communities, p.attributes.large_communities);
}

#[test]
fn unknown_extended_community_types_are_no_error() {
    // RFC 7606 §7.14; RFC 7153 §2.
    let a = attr(
        OPT_TR,
        ty::EXTENDED_COMMUNITIES,
        &[0x8f, 0x7f, 1, 2, 3, 4, 5, 6],
    );
    assert_eq!(outcome(&a, NEW), Outcome::Accepted);
}

#[test]
fn as4_attributes_from_a_new_speaker_are_dropped() {
    // RFC 6793 §4.1: MUST discard, and carry on with the UPDATE.
    for a in [
        attr(OPT_TR, ty::AS4_PATH, &[2, 1, 0, 0, 0xfd, 0xe9]),
        attr(OPT_TR, ty::AS4_AGGREGATOR, &[0, 0, 0xfd, 0xe9, 1, 2, 3, 4]),
    ] {
        let p = parse(&a, NEW).expect("no reset");
        assert_eq!(p.treat_as_withdraw, None);
        assert!(p.attributes.other.is_empty(), "type {} dropped", a[1]);
    }
}

#[test]
fn as4_attributes_from_an_old_speaker_are_checked_and_passed_on() {
    // RFC 6793 §6: malformed ones are discarded, confederation segments go.
    assert_eq!(
        outcome(&attr(OPT_TR, ty::AS4_PATH, &[2, 0]), OLD),
        Outcome::Discarded
    );
    assert_eq!(
        outcome(&attr(OPT_TR, ty::AS4_AGGREGATOR, &[0; 7]), OLD),
        Outcome::Discarded
    );
    assert_eq!(
        outcome(&attr(WK, ty::AS4_PATH, &[2, 1, 0, 0, 0, 1]), OLD),
        Outcome::Discarded
    );
    let confed_then_seq = [3, 1, 0, 0, 0, 9, 2, 1, 0, 0xfd, 0xe9, 0];
    let p = parse(&attr(OPT_TR, ty::AS4_PATH, &confed_then_seq), OLD).expect("ok");
    assert_eq!(
        p.attributes.other,
        [RawAttribute {
            flags: OPT_TR,
            type_code: ty::AS4_PATH,
            value: vec![2, 1, 0, 0xfd, 0xe9, 0]
        }]
    );
}

#[test]
fn as4_attributes_are_not_sent_to_a_new_speaker() {
    // RFC 6793 §4.1: what an OLD speaker gave us goes on to OLD ones only.
    let p = parse(&attr(OPT_TR, ty::AS4_PATH, &[2, 1, 0, 0, 0xfd, 0xe9]), OLD).expect("ok");
    let (mut to_new, mut to_old) = (Vec::new(), Vec::new());
    p.attributes.emit(&NEW, &mut to_new);
    p.attributes.emit(&OLD, &mut to_old);
    let has_as4 = |b: &[u8]| {
        parse_attributes(b, &OLD)
            .expect("ok")
            .attributes
            .other
            .len()
    };
    assert_eq!((has_as4(&to_new), has_as4(&to_old)), (0, 1));
}

#[test]
fn mp_attribute_faults_reset_the_session() {
    // RFC 7606 §7.11 and §5.3: the NLRI cannot be trusted.
    let short_reach = attr(OPT, ty::MP_REACH_NLRI, &[0, 1, 128, 0]);
    assert_eq!(
        parse_attributes(&short_reach, &NEW).map(|_| ()),
        Err(DecodeError::OptionalAttribute(ty::MP_REACH_NLRI))
    );
    let short_unreach = attr(OPT, ty::MP_UNREACH_NLRI, &[0, 1]);
    assert_eq!(
        parse_attributes(&short_unreach, &NEW).map(|_| ()),
        Err(DecodeError::OptionalAttribute(ty::MP_UNREACH_NLRI))
    );
    let flags = attr(WK, ty::MP_UNREACH_NLRI, &[0, 1, 128]);
    assert_eq!(
        parse_attributes(&flags, &NEW).map(|_| ()),
        Err(DecodeError::AttributeFlags {
            type_code: ty::MP_UNREACH_NLRI,
            attribute: flags.clone()
        })
    );
}

#[test]
fn unusable_mp_reach_next_hops_are_treat_as_withdraw() {
    // RFC 4271 §6.3: the route is ignored, no NOTIFICATION; the NLRI is
    // located, so the routes to withdraw are known.
    for nh in [[0, 0, 0, 0], [224, 0, 0, 1], [255, 255, 255, 255]] {
        let p = parse_attributes(&mp_reach(nh), &NEW).expect("no reset");
        assert_eq!(
            p.treat_as_withdraw,
            Some(DecodeError::InvalidNextHop),
            "{nh:?}"
        );
        assert_eq!(p.reach.len(), 1);
    }
    let p = parse_attributes(&mp_reach([127, 0, 0, 2]), &NEW).expect("no reset");
    assert_eq!(
        p.treat_as_withdraw, None,
        "loopback next hops are fine (the lab uses them)"
    );
    assert_eq!(
        p.attributes.next_hop,
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
    );
}

#[test]
fn repeats_keep_the_first_except_mp_attributes() {
    // RFC 7606 §3(g).
    let first = attr(OPT_TR, ty::COMMUNITIES, &[0, 0, 0, 1]);
    let broken_second = attr(OPT_TR, ty::COMMUNITIES, &[0]);
    let p = parse(&[first, broken_second].concat(), NEW).expect("no reset");
    assert_eq!(
        (p.treat_as_withdraw, p.attributes.communities),
        (None, vec![1])
    );
    assert_eq!(
        parse(&mp_reach([192, 0, 2, 1]), NEW).map(|_| ()),
        Err(DecodeError::MalformedAttributeList)
    );
}

#[test]
fn the_strongest_action_wins() {
    // RFC 7606 §3(h): discard + withdraw = withdraw; withdraw + reset = reset.
    let discard = attr(WK, ty::ATOMIC_AGGREGATE, &[0]);
    let withdraw = attr(OPT, ty::MED, &[0]);
    assert_eq!(
        outcome(&[discard, withdraw.clone()].concat(), NEW),
        length_error(&withdraw)
    );
    let reset = attr(OPT, ty::MP_UNREACH_NLRI, &[0]);
    assert!(matches!(
        outcome(&[withdraw, reset].concat(), NEW),
        Outcome::Reset(DecodeError::OptionalAttribute(15))
    ));
}

/// An UPDATE with the attribute section `attrs` and no other field.
fn update(attrs: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((23 + attrs.len()) as u16).to_be_bytes());
    m.extend_from_slice(&[2, 0, 0]);
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(attrs);
    m
}

#[test]
fn faults_without_reachable_nlri_reset_unless_discarded() {
    // RFC 7606 §5.2.
    let bad_origin = [attr(WK, ty::ORIGIN, &[7]), attr(WK, ty::AS_PATH, &[])].concat();
    assert_eq!(
        Message::decode(&update(&bad_origin), &NEW),
        Err(DecodeError::InvalidOrigin(7))
    );
    let withdrawals_and_bad_med = [
        attr(OPT, ty::MP_UNREACH_NLRI, &[0, 1, 128]),
        attr(OPT, ty::MED, &[0]),
    ]
    .concat();
    assert!(matches!(
        Message::decode(&update(&withdrawals_and_bad_med), &NEW),
        Err(DecodeError::AttributeLength { type_code: 4, .. })
    ));
    let discard_only = attr(WK, ty::ATOMIC_AGGREGATE, &[0]);
    assert!(Message::decode(&update(&discard_only), &NEW).is_ok());
}

#[test]
fn missing_origin_or_as_path_is_treat_as_withdraw() {
    // RFC 7606 §3(d).
    let without_as_path = [mp_reach([192, 0, 2, 1]), attr(WK, ty::ORIGIN, &[0])].concat();
    match Message::decode(&update(&without_as_path), &NEW) {
        Ok(Message::Update(u)) => assert_eq!(
            u.treat_as_withdraw,
            Some(DecodeError::MissingWellKnownAttribute(ty::AS_PATH))
        ),
        other => panic!("{other:?}"),
    }
}
