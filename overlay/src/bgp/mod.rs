//! The iBGP speaker for BGP/MPLS IP VPNs (RFC 4364): VPNv4 and VPNv6 labeled
//! unicast, route reflection (RFC 4456), graceful restart (RFC 4724), route
//! refresh (RFC 2918), four-octet AS (RFC 6793).
//!
//! - [`packet`]: the wire format and decode errors (one per NOTIFICATION).
//! - [`fsm`]: the session state machine of RFC 4271 §8, one per connection.
//! - [`rib`]: Adj-RIB-In, Loc-RIB with best-path selection, interned attributes.
//! - [`policy`]: route-target import and export per VRF.
//! - [`import`]: VPN routes into VRFs, one next hop per tenant and prefix.
//! - [`gr`]: graceful restart (RFC 4724): End-of-RIB tracking, the stale
//!   sweep, the selection deferral.
//! - [`speaker`]: all of it composed: `handle(input, now) -> outputs`.
//!
//! No I/O, no clock: the agent's driver feeds bytes, connection events and
//! the time in, and carries bytes and route changes out.

pub mod as4;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
pub mod fsm;
pub mod gr;
pub mod import;
pub mod packet;
pub mod policy;
pub mod rib;
pub mod speaker;
