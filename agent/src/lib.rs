//! The Pisek gateway agent: composes the overlay library with TUN devices,
//! the underlay socket, netlink and the attach API.
//!
//! - [`dataplane`]: TUN devices, the batched underlay UDP socket and the
//!   forwarder thread around `pisek_overlay::forward::Pipeline` (every
//!   `unsafe` block of the agent is in its `sys.rs`).
//! - [`keyfile`]: the node's WireGuard static key on disk (0600).
//! - [`control`]: the control plane: the BGP speaker's driver (TCP sessions,
//!   timers) around `pisek_overlay::bgp`, learned routes into the VRFs, the
//!   workloads' routes, the learned routes kept across a restart.
//! - [`metrics`]: the Prometheus endpoint on a loopback port.

pub mod api;
pub mod attach;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod ipam;
pub mod keyfile;
pub mod metrics;
pub mod netlink;
pub mod state;
