//! Pisek's test rig, shared by the root package's examples, integration
//! tests and benches: network namespaces ([`Netns`], the one helper for
//! them), prerequisites that skip or fail a test ([`require`]), polling
//! with a deadline ([`poll`]), bounded process stops, the two-gateway lab
//! ([`Lab`]) with its sensors and carbon ([`sensor_lab`]), and the real BGP
//! peers of the interop tests (gobgpd, BIRD, a raw peer) beside a Pisek
//! speaker.
//!
//! It is a library of the workspace, not part of the platform: nothing in
//! `pisek-overlay`, `pisek-agent` or `pisek-cni` depends on it.
#![warn(missing_docs)]

pub mod bgp_speaker;
pub mod binaries;
pub mod bird;
pub mod cni_exec;
pub mod containerd;
pub mod gobgpd;
pub mod host_agent;
pub mod lab;
pub mod libcni;
pub mod netns;
pub mod poll;
pub mod prereq;
pub mod process;
pub mod raw_peer;
pub mod sensor_lab;
pub mod temp_dir;

pub use binaries::{Binaries, build_agent, lab_binaries, profile_dir, workspace_binary};
pub use cni_exec::{CniCall, CniOutput, run_cni};
pub use host_agent::{HostAgent, Leftovers, host_agent_tenants};
pub use lab::{Lab, LabOptions, Node, Reflector, TENANTS, WORKLOADS_PER_TENANT, Workload};
pub use netns::{Netns, unique_tag, veth_pair};
pub use poll::{poll, poll_until};
pub use prereq::{in_ci, is_root, require, which};
pub use process::{Daemon, ReadyScript, on_signal, run, terminate};
pub use temp_dir::TempDir;
