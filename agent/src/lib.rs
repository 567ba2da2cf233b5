//! The Pisek gateway agent: composes the overlay library with TUN devices,
//! the underlay socket, netlink and the attach API.
//!
//! - [`dataplane`]: TUN devices, the batched underlay UDP socket and the
//!   forwarder thread around `pisek_overlay::forward::Pipeline` (every
//!   `unsafe` block of the agent is in its `sys.rs`).
//! - [`keyfile`]: the node's WireGuard static key on disk (0600).
//! - [`bgp`]: the BGP speaker's driver (TCP sessions, timers) around `pisek_overlay::bgp`.
//! - [`metrics`]: the Prometheus endpoint on a loopback port.
//! - [`collector`]: the sensor collector (MQTT -> Graphite), binary `pisek-collector`.

pub mod api;
pub mod attach;
pub mod bgp;
pub mod collector;
pub mod config;
pub mod dataplane;
pub mod ipam;
pub mod keyfile;
pub mod metrics;
pub mod netlink;
pub mod routing;
pub mod state;
