//! Pisek's overlay library: everything protocol- and packet-level of the
//! SDN overlay, and nothing of daemons.
//!
//! - [`packet`]: MPLS label stack entries, MPLS-over-UDP (RFC 7510) and
//!   MPLS-over-GRE (RFC 4023) encapsulation in place into caller-owned
//!   buffers and decapsulation into borrowed slices, inner TTL handling and
//!   ICMP "too big" generation.
//! - [`vrf`]: per-tenant routing tables with longest-prefix match (a
//!   `prefix_trie` routing table compiled into a poptrie forwarding table),
//!   next hops, and the incoming label table.
//! - [`TenantId`]: a tenant's id, shared by the VRFs and BGP.
//! - [`drop`]: why a packet was dropped, with counters.
//! - [`wg`]: WireGuard peers on boringtun's noise state machine, crypto-key
//!   routing with edge failover.
//! - [`forward`]: the vRouter forwarding pipeline: tenant TUN batches →
//!   VRF → MPLS encap → WireGuard → underlay, and back, with the edge's
//!   hub relay; no I/O, caller-owned batches.
//! - [`bgp`]: the iBGP speaker for BGP/MPLS IP VPNs (VPNv4/VPNv6).
//!
//! The library reads no config file, touches no netlink and starts no thread:
//! the agent composes it, and tests embed it with in-memory queues. Nothing
//! on the packet path allocates (`overlay/tests/no_allocation.rs` checks).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bgp;
pub mod drop;
pub mod forward;
pub mod packet;
mod tenant;
pub mod vrf;
pub mod wg;

pub use tenant::TenantId;
