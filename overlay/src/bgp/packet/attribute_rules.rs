//! One row per path attribute the codec knows: the Optional and Transitive
//! flags it must carry and what a fault in it does to the UPDATE (RFC 7606).
//!
//! RFC 7606 gives each attribute one approach whatever the fault: wrong
//! Optional/Transitive flags make the attribute malformed (§3(c)) and it is
//! then handled like a wrong length or value (§7). The one place a flags
//! error could read otherwise is ATOMIC_AGGREGATE and AGGREGATOR: §3(c) says
//! treat-as-withdraw unless the attribute's own rule differs, and §3(f) turns
//! every case RFC 4271 resets for these two (a flags error is one, RFC 4271
//! §6.3) into attribute discard. We follow §3(f), as FRR does: the two carry
//! nothing that route selection reads, which is what §2 asks of a discard.

use super::iana::{attr_flag as flag, attr_type as ty};
use ErrorAction::{AttributeDiscard as DISCARD, SessionReset as RESET, TreatAsWithdraw as TAW};

/// The error-handling approaches of RFC 7606 §2, weakest first, so that the
/// larger of two is the one to use when an UPDATE has several faults (§3(h)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorAction {
    /// Drop the attribute and go on with the UPDATE (§2 "attribute discard").
    AttributeDiscard,
    /// Handle the UPDATE's routes as withdrawn; the session stays (§2).
    TreatAsWithdraw,
    /// NOTIFICATION and close (§2 "session reset"; we do not offer the
    /// optional AFI/SAFI disable).
    SessionReset,
}

/// How a known attribute is checked and what a fault in it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeRule {
    /// Attribute type code.
    pub type_code: u8,
    /// The attribute's name as the RFCs spell it.
    pub name: &'static str,
    /// The Optional and Transitive bits it must carry (RFC 4271 §4.3).
    pub flags: u8,
    /// What a wrong flag, length or value does.
    pub action: ErrorAction,
    /// Where the rule comes from, for logs and `docs/bgp.md`.
    pub rfc: &'static str,
}

const WELL_KNOWN: u8 = flag::TRANSITIVE;
const OPTIONAL: u8 = flag::OPTIONAL;
const OPTIONAL_TRANSITIVE: u8 = flag::OPTIONAL | flag::TRANSITIVE;

const fn rule(
    type_code: u8,
    name: &'static str,
    flags: u8,
    action: ErrorAction,
    rfc: &'static str,
) -> AttributeRule {
    AttributeRule {
        type_code,
        name,
        flags,
        action,
        rfc,
    }
}

/// Every attribute the codec parses, in type order. Sessions are iBGP only
/// (the OPEN check refuses another AS), so the external-neighbour discards
/// of RFC 7606 §7.5, §7.9 and §7.10 never apply.
#[rustfmt::skip]
pub static ATTRIBUTE_RULES: [AttributeRule; 17] = [
    rule(ty::ORIGIN,                    "ORIGIN",                                   WELL_KNOWN,          TAW,     "RFC 7606 §7.1"),
    rule(ty::AS_PATH,                   "AS_PATH",                                  WELL_KNOWN,          TAW,     "RFC 7606 §7.2"),
    rule(ty::NEXT_HOP,                  "NEXT_HOP",                                 WELL_KNOWN,          TAW,     "RFC 7606 §7.3"),
    rule(ty::MED,                       "MULTI_EXIT_DISC",                          OPTIONAL,            TAW,     "RFC 7606 §7.4"),
    rule(ty::LOCAL_PREF,                "LOCAL_PREF",                               WELL_KNOWN,          TAW,     "RFC 7606 §7.5"),
    rule(ty::ATOMIC_AGGREGATE,          "ATOMIC_AGGREGATE",                         WELL_KNOWN,          DISCARD, "RFC 7606 §7.6, §3(f)"),
    rule(ty::AGGREGATOR,                "AGGREGATOR",                               OPTIONAL_TRANSITIVE, DISCARD, "RFC 7606 §7.7, §3(f)"),
    rule(ty::COMMUNITIES,               "COMMUNITIES",                              OPTIONAL_TRANSITIVE, TAW,     "RFC 7606 §7.8"),
    rule(ty::ORIGINATOR_ID,             "ORIGINATOR_ID",                            OPTIONAL,            TAW,     "RFC 7606 §7.9"),
    rule(ty::CLUSTER_LIST,              "CLUSTER_LIST",                             OPTIONAL,            TAW,     "RFC 7606 §7.10"),
    rule(ty::MP_REACH_NLRI,             "MP_REACH_NLRI",                            OPTIONAL,            RESET,   "RFC 7606 §7.11, §5.3"),
    rule(ty::MP_UNREACH_NLRI,           "MP_UNREACH_NLRI",                          OPTIONAL,            RESET,   "RFC 7606 §7.11, §5.3"),
    rule(ty::EXTENDED_COMMUNITIES,      "EXTENDED COMMUNITIES",                     OPTIONAL_TRANSITIVE, TAW,     "RFC 7606 §7.14"),
    rule(ty::AS4_PATH,                  "AS4_PATH",                                 OPTIONAL_TRANSITIVE, DISCARD, "RFC 6793 §6"),
    rule(ty::AS4_AGGREGATOR,            "AS4_AGGREGATOR",                           OPTIONAL_TRANSITIVE, DISCARD, "RFC 6793 §6"),
    rule(ty::IPV6_EXTENDED_COMMUNITIES, "IPv6 Address Specific Extended Community", OPTIONAL_TRANSITIVE, TAW,     "RFC 7606 §7.15"),
    rule(ty::LARGE_COMMUNITY,           "LARGE_COMMUNITY",                          OPTIONAL_TRANSITIVE, TAW,     "RFC 8092 §6"),
];

/// The rule for a type code, or None for an attribute the codec does not
/// know (RFC 4271 §5 handles those: see `parse_attributes`).
pub fn attribute_rule(type_code: u8) -> Option<&'static AttributeRule> {
    ATTRIBUTE_RULES.iter().find(|r| r.type_code == type_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_in_type_order_without_repeats() {
        assert!(
            ATTRIBUTE_RULES
                .windows(2)
                .all(|w| w[0].type_code < w[1].type_code)
        );
    }

    #[test]
    fn only_the_mp_attributes_reset_the_session() {
        let resets: Vec<u8> = ATTRIBUTE_RULES
            .iter()
            .filter(|r| r.action == ErrorAction::SessionReset)
            .map(|r| r.type_code)
            .collect();
        assert_eq!(resets, [ty::MP_REACH_NLRI, ty::MP_UNREACH_NLRI]);
    }

    #[test]
    fn discard_is_only_for_attributes_route_selection_ignores() {
        // RFC 7606 §2: attribute discard only where selection is unaffected
        // (AS4_PATH is RFC 6793 §6's own rule; we never merge it, §4.2.3).
        for r in ATTRIBUTE_RULES
            .iter()
            .filter(|r| r.action == ErrorAction::AttributeDiscard)
        {
            assert!(
                matches!(
                    r.type_code,
                    ty::ATOMIC_AGGREGATE | ty::AGGREGATOR | ty::AS4_PATH | ty::AS4_AGGREGATOR
                ),
                "{}",
                r.name
            );
        }
    }

    #[test]
    fn the_stronger_action_wins() {
        assert!(ErrorAction::SessionReset > ErrorAction::TreatAsWithdraw);
        assert!(ErrorAction::TreatAsWithdraw > ErrorAction::AttributeDiscard);
    }
}
