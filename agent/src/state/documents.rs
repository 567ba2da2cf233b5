//! The two documents the agent's state is kept in, split by how long what
//! they describe lives.
//!
//! - `state.json` in the state directory (`/var/lib/pisek`): the VRF labels,
//!   which routes in other nodes' tables carry and which must survive a
//!   power cut. Replaced durably (two fsyncs).
//! - `attachments.json` in the runtime directory (`/run/pisek`, a tmpfs):
//!   the endpoints and their IPAM leases. They describe veth pairs, routes
//!   and rules, which no reboot keeps, so the document lives exactly as
//!   long (Cilium keeps its endpoint state in `/var/run/cilium` for the same
//!   reason). Replaced atomically, without an fsync: a crash or restart of
//!   the agent finds it in the page cache, and a power cut takes it with
//!   the objects it names. This is the write on the path of every CNI ADD
//!   and DEL, so it costs no disk flush.
//!
//! An agent older than the split kept endpoints and leases in `state.json`;
//! [`parse_durable`] still reads them there, and the store moves them.

use super::{AgentState, Endpoints, FORMAT_VERSION, LabelAllocations, StateError};
use crate::ipam::Leases;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The durable document's name inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// The runtime document's name inside the runtime directory.
pub const ATTACHMENTS_FILE: &str = "attachments.json";

/// `state.json` as read: endpoints and leases only in a file an agent
/// before the split wrote.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DurableIn {
    version: u32,
    labels: LabelAllocations,
    #[serde(default)]
    leases: Leases,
    #[serde(default)]
    endpoints: Endpoints,
}

/// `state.json` as written.
#[derive(Serialize)]
struct DurableOut<'a> {
    version: u32,
    labels: &'a LabelAllocations,
}

/// `attachments.json`, both ways.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Runtime<L, E> {
    version: u32,
    leases: L,
    endpoints: E,
}

/// What `state.json` holds: the whole state, with the endpoints and leases
/// an older agent left in it (empty from a current one).
pub fn parse_durable(path: &Path, bytes: &[u8]) -> Result<AgentState, StateError> {
    let doc: DurableIn = serde_json::from_slice(bytes).map_err(|e| corrupt(path, e))?;
    check_version(path, doc.version)?;
    Ok(AgentState {
        version: doc.version,
        leases: doc.leases,
        labels: doc.labels,
        endpoints: doc.endpoints,
    })
}

/// The endpoints and leases `attachments.json` holds.
pub fn parse_runtime(path: &Path, bytes: &[u8]) -> Result<(Leases, Endpoints), StateError> {
    let doc: Runtime<Leases, Endpoints> =
        serde_json::from_slice(bytes).map_err(|e| corrupt(path, e))?;
    check_version(path, doc.version)?;
    Ok((doc.leases, doc.endpoints))
}

/// `state.json`'s bytes for `state` (indented: operators read it).
pub fn encode_durable(state: &AgentState) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec_pretty(&DurableOut {
        version: FORMAT_VERSION,
        labels: &state.labels,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// `attachments.json`'s bytes for `state` (one line: it is rewritten on
/// every attach and detach, and `jq` indents it for a reader).
pub fn encode_runtime(state: &AgentState) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec(&Runtime {
        version: FORMAT_VERSION,
        leases: &state.leases,
        endpoints: &state.endpoints,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn corrupt(path: &Path, e: serde_json::Error) -> StateError {
    StateError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn check_version(path: &Path, version: u32) -> Result<(), StateError> {
    if version == FORMAT_VERSION {
        return Ok(());
    }
    Err(StateError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("format version {version} (this agent reads {FORMAT_VERSION})"),
    })
}
