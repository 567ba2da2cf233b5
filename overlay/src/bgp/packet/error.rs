//! Decode errors, each mapped one to one onto the NOTIFICATION it causes
//! (RFC 4271 §6, RFC 4760 §7, RFC 7313 §5). A fault in a path attribute
//! resets only if that attribute's RFC 7606 rule says so
//! ([`super::attribute_rules`]); otherwise the same error is the reason
//! given for a treat-as-withdraw or an attribute discard. I/O errors are
//! not here: the codec does no I/O.

use thiserror::Error;

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// Message Header Error (§6.1).
    MessageHeader = 1,
    /// OPEN Message Error (§6.2).
    Open = 2,
    /// UPDATE Message Error (§6.3).
    Update = 3,
    /// Hold Timer Expired (§6.5).
    HoldTimerExpired = 4,
    /// Finite State Machine Error (§6.6).
    FiniteStateMachine = 5,
    /// Cease (§6.7, RFC 4486 subcodes).
    Cease = 6,
    /// ROUTE-REFRESH Message Error (RFC 7313 §5).
    RouteRefresh = 7,
}

/// Cease subcodes used by the speaker (RFC 4486 §4).
pub mod cease {
    /// Administrative Shutdown.
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Connection Collision Resolution (RFC 4271 §6.8).
    pub const CONNECTION_COLLISION: u8 = 7;
}

/// Why a received message is rejected. Every variant is exactly one
/// NOTIFICATION (code, subcode, data): see [`DecodeError::code`],
/// [`DecodeError::subcode`] and [`DecodeError::data`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The marker is not all ones (RFC 4271 §6.1: Connection Not Synchronized).
    #[error("message header marker is not all ones")]
    ConnectionNotSynchronized,
    /// The length field is out of range for the message (§6.1: Bad Message Length).
    #[error("bad message length {0}")]
    BadMessageLength(u16),
    /// Unknown message type (§6.1: Bad Message Type).
    #[error("bad message type {0}")]
    BadMessageType(u8),
    /// OPEN version other than 4 (§6.2: Unsupported Version Number).
    #[error("unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    /// Peer AS not the configured one (§6.2: Bad Peer AS).
    #[error("bad peer AS {0}")]
    BadPeerAs(u32),
    /// BGP Identifier 0.0.0.0 or equal to ours on iBGP (§6.2, RFC 6286).
    #[error("bad BGP identifier {0}")]
    BadBgpIdentifier(std::net::Ipv4Addr),
    /// An optional parameter other than capabilities (§6.2).
    #[error("unsupported optional parameter {0}")]
    UnsupportedOptionalParameter(u8),
    /// Hold time 1 or 2 seconds (§6.2: Unacceptable Hold Time).
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// The peer offers none of the address families we need (RFC 5492 §3:
    /// Unsupported Capability, data = the capabilities we miss).
    #[error("no common address family")]
    UnsupportedCapability(Vec<u8>),
    /// Attribute list does not add up (§6.3: Malformed Attribute List).
    #[error("malformed attribute list")]
    MalformedAttributeList,
    /// Well-known attribute we do not know (§6.3).
    #[error("unrecognized well-known attribute {0}")]
    UnrecognizedWellKnownAttribute(u8),
    /// A mandatory attribute is missing (§6.3, data = its type).
    #[error("missing well-known attribute {0}")]
    MissingWellKnownAttribute(u8),
    /// Flags contradict the attribute type (§6.3, data = the attribute).
    #[error("attribute flags error on type {type_code}")]
    AttributeFlags {
        /// Attribute type code.
        type_code: u8,
        /// The whole attribute (flags, type, length, value).
        attribute: Vec<u8>,
    },
    /// Length contradicts the attribute type (§6.3, data = the attribute).
    #[error("attribute length error on type {type_code}")]
    AttributeLength {
        /// Attribute type code.
        type_code: u8,
        /// The whole attribute (flags, type, length, value).
        attribute: Vec<u8>,
    },
    /// ORIGIN value not 0, 1 or 2 (§6.3: Invalid ORIGIN Attribute).
    #[error("invalid ORIGIN {0}")]
    InvalidOrigin(u8),
    /// Next hop unusable (§6.3: Invalid NEXT_HOP Attribute).
    #[error("invalid next hop")]
    InvalidNextHop,
    /// A recognised optional attribute with a bad value (§6.3: Optional
    /// Attribute Error), e.g. an MP_REACH_NLRI next hop of the wrong length.
    #[error("optional attribute error on type {0}")]
    OptionalAttribute(u8),
    /// NLRI or withdrawn routes that do not parse (§6.3: Invalid Network Field).
    #[error("invalid network field")]
    InvalidNetworkField,
    /// AS_PATH segments that do not parse (§6.3: Malformed AS_PATH).
    #[error("malformed AS_PATH")]
    MalformedAsPath,
    /// ROUTE-REFRESH with a bad length (RFC 7313 §5: Invalid Message
    /// Length; data = the whole message).
    #[error("bad ROUTE-REFRESH length {}", .0.len())]
    BadRouteRefreshLength(Vec<u8>),
}

impl DecodeError {
    /// The NOTIFICATION error code.
    pub fn code(&self) -> ErrorCode {
        use DecodeError::*;
        match self {
            ConnectionNotSynchronized | BadMessageLength(_) | BadMessageType(_) => {
                ErrorCode::MessageHeader
            }
            UnsupportedVersion(_)
            | BadPeerAs(_)
            | BadBgpIdentifier(_)
            | UnsupportedOptionalParameter(_)
            | UnacceptableHoldTime(_)
            | UnsupportedCapability(_) => ErrorCode::Open,
            BadRouteRefreshLength(_) => ErrorCode::RouteRefresh,
            _ => ErrorCode::Update,
        }
    }

    /// The NOTIFICATION error subcode.
    pub fn subcode(&self) -> u8 {
        use DecodeError::*;
        match self {
            ConnectionNotSynchronized => 1,
            BadMessageLength(_) => 2,
            BadMessageType(_) => 3,
            UnsupportedVersion(_) => 1,
            BadPeerAs(_) => 2,
            BadBgpIdentifier(_) => 3,
            UnsupportedOptionalParameter(_) => 4,
            UnacceptableHoldTime(_) => 6,
            UnsupportedCapability(_) => 7,
            MalformedAttributeList => 1,
            UnrecognizedWellKnownAttribute(_) => 2,
            MissingWellKnownAttribute(_) => 3,
            AttributeFlags { .. } => 4,
            AttributeLength { .. } => 5,
            InvalidOrigin(_) => 6,
            InvalidNextHop => 8,
            OptionalAttribute(_) => 9,
            InvalidNetworkField => 10,
            MalformedAsPath => 11,
            BadRouteRefreshLength(_) => 1,
        }
    }

    /// The NOTIFICATION data field (RFC 4271 §6 says what each error carries).
    pub fn data(&self) -> Vec<u8> {
        use DecodeError::*;
        match self {
            BadMessageLength(len) => len.to_be_bytes().to_vec(),
            BadMessageType(t) => vec![*t],
            // §6.2: the largest locally supported version.
            UnsupportedVersion(_) => 4u16.to_be_bytes().to_vec(),
            UnsupportedCapability(caps) | BadRouteRefreshLength(caps) => caps.clone(),
            MissingWellKnownAttribute(t) => vec![*t],
            AttributeFlags { attribute, .. } | AttributeLength { attribute, .. } => {
                attribute.clone()
            }
            _ => Vec::new(),
        }
    }
}
