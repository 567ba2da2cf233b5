//! Packet formats of the overlay: MPLS label stack entries and the
//! MPLS-over-UDP and MPLS-over-GRE encapsulations, the inner TTL hop, and
//! ICMP "too big" for path MTU discovery through the tunnel.
//!
//! One protocol per file, in the style of smoltcp's `wire`: a zero-copy
//! `Packet<T: AsRef<[u8]>>` view where the format is ours to read
//! ([`mpls`], [`gre`]), a checked high-level form with `parse` / `emit` /
//! `buffer_len`, and for the two encapsulations ([`mpls_udp`], [`mpls_gre`])
//! in-place `encapsulate` and borrowing `decapsulate`. Outer IPv4, IPv6 and
//! UDP headers are read and written with `etherparse`.
//!
//! Nothing here allocates, and every parser returns an [`Error`] on bad
//! input instead of panicking (checked by the fuzz targets in `overlay/fuzz`).

pub mod checksum;
mod error;
#[cfg(test)]
mod fixtures;
pub mod flow;
pub mod gre;
pub mod icmp;
pub mod ip;
pub mod mpls;
pub mod mpls_gre;
pub mod mpls_udp;
pub mod ttl;
mod tunnel;

pub use error::{Error, Layer};
pub use flow::flow_hash;
pub use icmp::packet_too_big;
pub use mpls::{Label, LabelError, LabelStackEntry};
pub use mpls_gre::MplsOverGre;
pub use mpls_udp::{MplsOverUdp, entropy_port};
pub use tunnel::{Decapsulated, Encap, Encapsulation, RxChecksum, TxChecksum};
