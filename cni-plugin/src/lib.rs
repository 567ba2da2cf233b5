//! `pisek-cni`: the CNI plugin that puts pods into Pisek's tenant networks.
//!
//! Thin by design: it checks the runtime's request (`CNI_*` variables and
//! the network configuration on stdin), chooses the tenant, sends one
//! request to the host agent over its Unix socket and prints the result in
//! the CNI version asked for. Every netlink step, the IPAM and the state
//! live in the agent, so a plugin killed mid-way leaves nothing the agent
//! cannot finish or undo. `docs/cni.md` is the reference.
//!
//! Modules: `env` (the variables), `config` (stdin), `tenant` (which
//! tenant), `agent` (the socket), `result` (ADD's result, CHECK's
//! comparison), `version`, `error` (codes), `log`, `command` (one
//! invocation end to end).
#![warn(missing_docs)]

pub mod agent;
pub mod command;
pub mod config;
pub mod env;
pub mod error;
pub mod log;
pub mod result;
pub mod tenant;
pub mod version;

pub use command::{Outcome, execute};
pub use error::{CniError, codes};
