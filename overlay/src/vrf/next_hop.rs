//! Where a route sends a packet.

use crate::packet::{Encapsulation, Label};
use std::fmt;
use std::net::IpAddr;

/// An interface of this node, named by an id the agent chooses (a veth's
/// ifindex, an index into its endpoint table): the library never looks it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceId(pub u32);

impl fmt::Display for InterfaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "if{}", self.0)
    }
}

/// The next hop of a VRF route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Deliver on this node, out of the given interface.
    Local(InterfaceId),
    /// Encapsulate towards another node's tunnel address with the VRF label
    /// it advertised for the prefix (RFC 4364 §4.3.2: the route's label).
    Tunnel {
        /// The remote node's tunnel address (the BGP next hop).
        endpoint: IpAddr,
        /// The label the remote node bound to its VRF.
        label: Label,
        /// How the remote node wants packets encapsulated.
        encap: Encapsulation,
    },
    /// Drop the packet (a blackhole route, e.g. for an aggregate's holes).
    Discard,
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::Local(interface) => write!(f, "local {interface}"),
            NextHop::Tunnel {
                endpoint,
                label,
                encap,
            } => write!(f, "{endpoint} label {label} {encap}"),
            NextHop::Discard => f.write_str("discard"),
        }
    }
}
