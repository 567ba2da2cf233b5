//! Packet formats of the overlay: MPLS label stack entries and the MPLS-over-UDP
//! and MPLS-over-GRE encapsulations.

pub mod mpls;

pub use mpls::{Label, LabelError};
