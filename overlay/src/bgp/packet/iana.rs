//! IANA code points used by the speaker, in one place (IANA "Border Gateway
//! Protocol (BGP) Parameters" and "Capability Codes" registries).

/// BGP message types (RFC 4271 §4.1, RFC 2918 §3).
pub mod message_type {
    /// OPEN (RFC 4271 §4.2).
    pub const OPEN: u8 = 1;
    /// UPDATE (RFC 4271 §4.3).
    pub const UPDATE: u8 = 2;
    /// NOTIFICATION (RFC 4271 §4.5).
    pub const NOTIFICATION: u8 = 3;
    /// KEEPALIVE (RFC 4271 §4.4).
    pub const KEEPALIVE: u8 = 4;
    /// ROUTE-REFRESH (RFC 2918 §3).
    pub const ROUTE_REFRESH: u8 = 5;
}

/// Path attribute type codes.
pub mod attr_type {
    /// ORIGIN (RFC 4271 §5.1.1), well-known mandatory.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH (RFC 4271 §5.1.2), well-known mandatory.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP (RFC 4271 §5.1.3), well-known mandatory for IPv4 unicast.
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC (RFC 4271 §5.1.4), optional non-transitive.
    pub const MED: u8 = 4;
    /// LOCAL_PREF (RFC 4271 §5.1.5), well-known, iBGP only.
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE (RFC 4271 §5.1.6), well-known discretionary.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR (RFC 4271 §5.1.7), optional transitive.
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997), optional transitive.
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID (RFC 4456 §8), optional non-transitive.
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST (RFC 4456 §8), optional non-transitive.
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI (RFC 4760 §3), optional non-transitive.
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760 §4), optional non-transitive.
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// EXTENDED COMMUNITIES (RFC 4360), optional transitive.
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// AS4_PATH (RFC 6793), optional transitive.
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793), optional transitive.
    pub const AS4_AGGREGATOR: u8 = 18;
    /// IPv6 Address Specific Extended Community (RFC 5701), optional transitive.
    pub const IPV6_EXTENDED_COMMUNITIES: u8 = 25;
    /// LARGE_COMMUNITY (RFC 8092), optional transitive.
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// Path attribute flag bits (RFC 4271 §4.3).
pub mod attr_flag {
    /// Optional (1) or well-known (0).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: an optional transitive attribute some speaker did not recognise.
    pub const PARTIAL: u8 = 0x20;
    /// The length field is two octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Capability codes (RFC 5492 and the IANA registry).
pub mod capability_code {
    /// Multiprotocol extensions (RFC 4760 §8).
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route refresh (RFC 2918 §2).
    pub const ROUTE_REFRESH: u8 = 2;
    /// Extended next hop encoding (RFC 8950 §3).
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    /// Graceful restart (RFC 4724 §3).
    pub const GRACEFUL_RESTART: u8 = 64;
    /// Four-octet AS numbers (RFC 6793 §3).
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// Address family identifiers (IANA "Address Family Numbers").
pub mod afi {
    /// IPv4.
    pub const IPV4: u16 = 1;
    /// IPv6.
    pub const IPV6: u16 = 2;
}

/// Subsequent address family identifiers (IANA SAFI registry).
pub mod safi {
    /// Unicast (RFC 4760).
    pub const UNICAST: u8 = 1;
    /// MPLS-labeled VPN address (RFC 4364 §4.3.4, RFC 4659).
    pub const MPLS_VPN: u8 = 128;
}

/// The OPEN optional parameter type that carries capabilities (RFC 5492 §4).
pub const OPT_PARAM_CAPABILITIES: u8 = 2;

/// AS_TRANS, the 2-octet stand-in for a 4-octet AS (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;
