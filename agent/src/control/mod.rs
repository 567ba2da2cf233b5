//! The agent's control plane: the tokio driver around the sans-I/O BGP
//! speaker, and what the agent does with routes (advertisements, learned
//! routes into the VRFs, the workloads' routes, the learned routes kept
//! across a restart). The logic lives in `pisek_overlay::bgp`
//! (`speaker`, `import`, `gr`); this module owns the tasks and channels.
//!
//! ```text
//!                 BgpHandle (advertise / withdraw / subscribe / sessions)
//!                      │ Command (mpsc, bounded)
//!  listener task ─────▶│
//!  connect tasks ─────▶▼
//!  reader tasks ──▶ speaker task (driver.rs: owns Speaker, sleeps until
//!    (per TCP conn)    its next deadline) ──Send(bytes)──▶ writer tasks ──▶ TCP
//!                      │ SpeakerEvent (unbounded): Route, EndOfRib
//!                      ▼
//!  route task (routing.rs: install_routes) ─▶ VrfRoutes (bgp::import)
//!       │ VrfChange → dataplane Command::Route ◀── WorkloadRouting (attach/detach:
//!       │ End-of-RIB / restart time → StaleSweep (bgp::gr) → sweep     stray host routes,
//!       ▼                                                              advertise/withdraw)
//!  writer task (restart.rs: LearnedRoutesWriter, debounced) ─▶ learned-routes.json
//!  session task (routing.rs: every second) ─▶ the API's BGP session list
//! ```
//!
//! - [`driver`]: the BGP TCP driver (listener, connections, timers) and
//!   [`BgpHandle`], the API the agent calls.
//! - [`routing`]: the speaker's config from the agent's, its start, learned
//!   routes into the VRFs, [`WorkloadRouting`].
//! - [`restart`]: the learned routes kept in the state directory and
//!   restored stale by the next start (RFC 4724 §4.1).

pub mod driver;
pub mod restart;
pub mod routing;

pub use driver::{BgpConfig, BgpHandle};
pub use routing::{
    FAMILIES, Routing, VrfChange, VrfRoutes, WorkloadRouting, bgp_config, own_prefixes, router_id,
    start, stray_routes, workload_addresses,
};
