//! Route events for tests of route import, in this crate and in the agent
//! (feature `test-fixtures`): a learned route, an event for it, and the
//! tunnel next hop it should become.

use super::packet::{PathAttributes, RouteDistinguisher, VpnPrefix};
use super::policy::TenantId;
use super::speaker::{ImportedRoute, RouteEvent};
use crate::packet::{Encapsulation, Label};
use crate::vrf::NextHop;
use std::sync::Arc;

/// A route learned with `next_hop` and MPLS `label`, no other attributes.
/// Panics on a bad address or label (a test's own mistake).
pub fn route(next_hop: &str, label: u32) -> ImportedRoute {
    ImportedRoute {
        next_hop: next_hop.parse().expect("address"),
        label: Label::new(label).expect("label"),
        attributes: Arc::new(PathAttributes::default()),
    }
}

/// The event of tenant 1 for `prefix` under RD `1:10.255.0.<rd_host>:1`:
/// learned with `route`, withdrawn with `None`.
pub fn event(rd_host: u8, prefix: &str, route: Option<ImportedRoute>) -> RouteEvent {
    RouteEvent {
        tenant: TenantId(1),
        prefix: VpnPrefix {
            rd: RouteDistinguisher([0, 1, 10, 255, 0, rd_host, 0, 1]),
            prefix: prefix.parse().expect("prefix"),
        },
        route,
    }
}

/// The MPLS-over-UDP tunnel to `next_hop` with `label`, as a VRF holds it.
pub fn tunnel(next_hop: &str, label: u32) -> Option<NextHop> {
    Some(NextHop::Tunnel {
        endpoint: next_hop.parse().expect("address"),
        label: Label::new(label).expect("label"),
        encap: Encapsulation::MplsOverUdp,
    })
}
