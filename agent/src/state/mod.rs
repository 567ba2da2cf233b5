//! The agent's persistent state in the state directory (`/var/lib/pisek`):
//! IPAM leases, VRF labels and endpoint records, in one JSON document,
//! `state.json`; and, apart, the routes the VRFs learned over BGP
//! (`learned-routes.json`, `learned.rs`), kept for the next start.
//!
//! One document, replaced atomically ([`atomic`]) on every change, so a lease
//! and the endpoint that uses it are always written together: there is no
//! moment at which one is on disk and the other is not.
//!
//! Every change goes through [`StateStore::update`]: the change is applied to
//! a copy, the copy is written, and only when the write succeeded does the copy
//! become the agent's state. So a full disk (or any write error) returns an
//! error and changes nothing, on disk or in memory: no allocation is lost and
//! none is leaked. A crash between two updates leaves the last complete
//! document; endpoint records in phase `attaching` name every kernel object
//! that may have been made, so the agent can finish or undo them on start.
//!
//! A lock file (`flock`) keeps two agents from sharing one state directory.

pub mod atomic;
mod endpoints;
mod labels;
mod learned;

pub use endpoints::{EndpointPhase, EndpointRecord, Endpoints};
pub use labels::{LabelAllocations, LabelsExhausted};
pub use learned::{
    LEARNED_ROUTES_FILE, LearnedRoute, LearnedRoutesError, encode_learned_routes,
    learned_routes_path, load_learned_routes, parse_learned_routes, remove_learned_routes,
    save_learned_routes,
};

use crate::ipam::Leases;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// The lock file's name inside the state directory.
pub const LOCK_FILE: &str = "lock";
/// The document's format version; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// Everything the agent persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentState {
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// IPAM leases, all tenants.
    pub leases: Leases,
    /// VRF labels by tenant id.
    pub labels: LabelAllocations,
    /// Attached endpoints.
    pub endpoints: Endpoints,
}

impl Default for AgentState {
    fn default() -> Self {
        AgentState {
            version: FORMAT_VERSION,
            leases: Leases::default(),
            labels: LabelAllocations::default(),
            endpoints: Endpoints::default(),
        }
    }
}

/// Why the state could not be opened or written.
#[derive(Debug, Error)]
pub enum StateError {
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The state file exists but cannot be read as a state document. The agent
    /// refuses to start rather than forget allocations.
    #[error(
        "{path}: not a valid state file ({reason}); move it away only if every workload on this node is gone"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the state directory's lock.
    #[error("{0}: another pisek-agent uses this state directory")]
    Locked(PathBuf),
}

/// The state directory, opened and locked, with the current state in memory.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    state: AgentState,
    _lock: Flock<File>,
}

impl StateStore {
    /// Opens (creating it with mode 0700 if needed) and locks a state
    /// directory, and loads its state. A leftover temporary file from an
    /// interrupted write is removed: the state file beside it is complete.
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = File::create(&lock_path).map_err(io(&lock_path))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| StateError::Locked(dir.to_path_buf()))?;
        let path = dir.join(STATE_FILE);
        let temp = atomic::temp_path(&path);
        if temp.exists() {
            std::fs::remove_file(&temp).map_err(io(&temp))?;
        }
        let state = match std::fs::read(&path) {
            Ok(bytes) => parse_state(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AgentState::default(),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(StateStore {
            dir: dir.to_path_buf(),
            state,
            _lock: lock,
        })
    }

    /// The current state.
    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Applies `change` to a copy of the state and writes it durably (it
    /// survives a power cut); the copy becomes the state only if both
    /// succeed. Returns what `change` returned.
    pub fn update<T, E>(
        &mut self,
        change: impl FnOnce(&mut AgentState) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StateError>,
    {
        self.apply(change, Durability::PowerCut)
    }

    /// Like [`StateStore::update`], for changes to endpoints and their
    /// leases: the kernel objects they describe (veths, routes, rules) do
    /// not outlive the boot, so the change is written for a crash or a
    /// restart of the agent (the page cache keeps it) but its rename is not
    /// made durable. A power cut may lose it, together with the objects it
    /// describes; the file is never torn. One fsync fewer per change, on
    /// the path of every CNI ADD and DEL.
    pub fn update_for_this_boot<T, E>(
        &mut self,
        change: impl FnOnce(&mut AgentState) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StateError>,
    {
        self.apply(change, Durability::ThisBoot)
    }

    fn apply<T, E>(
        &mut self,
        change: impl FnOnce(&mut AgentState) -> Result<T, E>,
        durability: Durability,
    ) -> Result<T, E>
    where
        E: From<StateError>,
    {
        let mut next = self.state.clone();
        let out = change(&mut next)?;
        if next != self.state {
            self.write(&next, durability)?;
            self.state = next;
        }
        Ok(out)
    }

    fn write(&self, state: &AgentState, durability: Durability) -> Result<(), StateError> {
        let path = self.path();
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| StateError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        bytes.push(b'\n');
        let written = match durability {
            Durability::PowerCut => atomic::write_atomically(&path, &bytes),
            Durability::ThisBoot => atomic::replace_atomically(&path, &bytes),
        };
        written.map_err(|source| StateError::Io { path, source })
    }
}

/// What a state write must survive.
#[derive(Clone, Copy)]
enum Durability {
    /// A power cut: the rename is made durable too.
    PowerCut,
    /// A crash or restart of the agent, within this boot.
    ThisBoot,
}

fn parse_state(path: &Path, bytes: &[u8]) -> Result<AgentState, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let state: AgentState = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if state.version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} (this agent reads {FORMAT_VERSION})",
            state.version
        )));
    }
    Ok(state)
}

#[cfg(test)]
mod tests;
