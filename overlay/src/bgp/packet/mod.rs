//! The BGP wire format: messages, capabilities, path attributes, labeled VPN
//! NLRI, and decode errors that map onto NOTIFICATIONs.
//!
//! This is Pisek's own codec; `docs/bgp.md` says why it is not a crate.

pub mod as_path;
pub mod attribute;
pub mod attribute_rules;
pub mod capability;
pub mod community;
#[cfg(test)]
mod conformance;
pub mod error;
pub mod iana;
pub mod message;
pub mod nlri;
#[cfg(test)]
mod rfc7606_tests;

pub use attribute::{AsSegment, Origin, PathAttributes};
pub use attribute_rules::{ATTRIBUTE_RULES, AttributeRule, ErrorAction};
pub use capability::{Capability, GracefulRestart, GracefulRestartFamily};
pub use community::LargeCommunity;
pub use error::{DecodeError, ErrorCode};
pub use message::{Message, Notification, Open, RouteRefresh, Update, UpdateEncoder};
pub use nlri::{Family, RouteDistinguisher, RouteTarget, VpnNlri, VpnPrefix};

/// What the two speakers agreed on in their OPENs that changes the wire
/// format (STYLE: negotiated capabilities are passed to encode/decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionContext {
    /// Both sides announced four-octet AS support (RFC 6793): AS numbers in
    /// AS_PATH and AGGREGATOR are 4 octets.
    pub four_octet_as: bool,
    /// The peer is in another AS (eBGP): LOCAL_PREF is not sent
    /// (RFC 4271 §5.1.5).
    pub external: bool,
}
