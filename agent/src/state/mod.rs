//! The agent's persistent state: IPAM leases, VRF labels and endpoint
//! records, in two JSON documents split by how long what they describe
//! lives (`documents.rs`): the labels durably in the state directory
//! (`/var/lib/pisek/state.json`), the endpoints and their leases in the
//! runtime directory (`/run/pisek/attachments.json`), which a reboot clears
//! together with the veth pairs they name. And, apart, the routes the VRFs
//! learned over BGP (`learned-routes.json`, `learned.rs`), kept for the next
//! start.
//!
//! A lease and the endpoint that uses it are in one document, replaced
//! atomically ([`atomic`]) on every change: there is no moment at which one
//! is on disk and the other is not.
//!
//! Every change goes through [`StateStore::update`]: the change is applied to
//! a copy, the documents it changed are written, and only when the writes
//! succeeded does the copy become the agent's state. So a full disk (or any
//! write error) returns an error and changes nothing, on disk or in memory:
//! no allocation is lost and none is leaked. A crash between two updates
//! leaves the last complete documents; endpoint records in phase `attaching`
//! name every kernel object that may have been made, so the agent can finish
//! or undo them on start.
//!
//! A lock file (`flock`) in each directory keeps two agents from sharing one.

pub mod atomic;
mod documents;
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

pub use documents::{ATTACHMENTS_FILE, STATE_FILE};

/// The lock file's name inside the state and the runtime directory.
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

/// The state and runtime directories, opened and locked, with the current
/// state in memory.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    runtime_dir: PathBuf,
    state: AgentState,
    _locks: [Flock<File>; 2],
}

impl StateStore {
    /// Opens (creating them with mode 0700 if needed) and locks the state
    /// directory and the runtime directory, and loads the state. A leftover
    /// temporary file from an interrupted write is removed: the document
    /// beside it is complete. Endpoints and leases that an agent before the
    /// split left in `state.json` move to the runtime document.
    pub fn open(dir: &Path, runtime_dir: &Path) -> Result<StateStore, StateError> {
        let locks = [lock_dir(dir)?, lock_dir(runtime_dir)?];
        let path = dir.join(STATE_FILE);
        let mut state = match read(&path)? {
            Some(bytes) => documents::parse_durable(&path, &bytes)?,
            None => AgentState::default(),
        };
        let runtime_path = runtime_dir.join(ATTACHMENTS_FILE);
        let migrate = !state.leases.is_empty() || !state.endpoints.is_empty();
        if let Some(bytes) = read(&runtime_path)? {
            // A current runtime document wins over what an older agent left
            // in state.json (a crash in the middle of the move below).
            (state.leases, state.endpoints) = documents::parse_runtime(&runtime_path, &bytes)?;
        }
        let store = StateStore {
            dir: dir.to_path_buf(),
            runtime_dir: runtime_dir.to_path_buf(),
            state,
            _locks: locks,
        };
        if migrate {
            // Runtime document first: until state.json is rewritten, both
            // name the endpoints, and the runtime document wins.
            store.write_runtime(&store.state)?;
            store.write_durable(&store.state)?;
        }
        Ok(store)
    }

    /// The current state.
    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// The durable document's path (labels).
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The runtime document's path (endpoints and leases).
    pub fn runtime_path(&self) -> PathBuf {
        self.runtime_dir.join(ATTACHMENTS_FILE)
    }

    /// Applies `change` to a copy of the state and writes the documents it
    /// changed: labels durably (they survive a power cut), endpoints and
    /// leases for this boot. The copy becomes the state only if the writes
    /// succeed. Returns what `change` returned.
    pub fn update<T, E>(
        &mut self,
        change: impl FnOnce(&mut AgentState) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StateError>,
    {
        let mut next = self.state.clone();
        let out = change(&mut next)?;
        let runtime_changed =
            next.leases != self.state.leases || next.endpoints != self.state.endpoints;
        if runtime_changed {
            self.write_runtime(&next)?;
        }
        if next.labels != self.state.labels {
            if let Err(e) = self.write_durable(&next) {
                if runtime_changed {
                    // Put the runtime document back, so disk and memory
                    // agree on the state before the change.
                    let _ = self.write_runtime(&self.state);
                }
                return Err(e.into());
            }
        }
        self.state = next;
        Ok(out)
    }

    fn write_durable(&self, state: &AgentState) -> Result<(), StateError> {
        let path = self.path();
        let bytes = documents::encode_durable(state).map_err(|e| io_error(&path, e))?;
        atomic::write_atomically(&path, &bytes).map_err(|source| StateError::Io { path, source })
    }

    fn write_runtime(&self, state: &AgentState) -> Result<(), StateError> {
        let path = self.runtime_path();
        let bytes = documents::encode_runtime(state).map_err(|e| io_error(&path, e))?;
        atomic::replace_unsynced(&path, &bytes).map_err(|source| StateError::Io { path, source })
    }
}

/// Creates `dir` (mode 0700) if needed, takes its lock and removes a
/// temporary file an interrupted write left.
fn lock_dir(dir: &Path) -> Result<Flock<File>, StateError> {
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
    for name in [STATE_FILE, ATTACHMENTS_FILE] {
        let temp = atomic::temp_path(&dir.join(name));
        if temp.exists() {
            std::fs::remove_file(&temp).map_err(io(&temp))?;
        }
    }
    Ok(lock)
}

/// A file's bytes, or `None` if it does not exist.
fn read(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn io_error(path: &Path, e: serde_json::Error) -> StateError {
    StateError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    }
}

#[cfg(test)]
mod tests;
