//! The WireGuard peers' last authenticated endpoints, kept in the state
//! directory (`peer-endpoints.json`), so that a restarted node knows where
//! its NAT'd peers are and initiates the handshakes itself.
//!
//! Without it an edge forgets every gateway's roaming endpoint on restart
//! and can only wait for each gateway's own rekey timeout (seconds of lost
//! traffic between gateways); with it the forwarder sends an initiation to
//! each known endpoint at start and sessions are back in one round trip.
//! An endpoint is only ever one the peer sent an authenticated message from
//! (WireGuard's roaming rule), so the file holds nothing a stranger chose.

use super::snapshot::Snapshot;
use crate::keyfile;
use crate::state::atomic::write_atomically;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The file's name in the state directory.
pub const FILE: &str = "peer-endpoints.json";

/// How often the endpoints are compared with what is on disk.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Endpoints by the peer's base64 public key.
pub type PeerEndpoints = BTreeMap<String, SocketAddr>;

/// Reads the file; a missing or unreadable one is no endpoints (logged).
pub fn load(dir: &Path) -> PeerEndpoints {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable peer endpoints");
            PeerEndpoints::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PeerEndpoints::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable peer endpoints");
            PeerEndpoints::new()
        }
    }
}

/// Writes the file atomically.
pub fn save(dir: &Path, endpoints: &PeerEndpoints) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(endpoints).map_err(std::io::Error::other)?;
    write_atomically(&dir.join(FILE), &text)
}

/// The endpoints the forwarder knows now.
fn current(snapshot: &Mutex<Snapshot>) -> Option<PeerEndpoints> {
    let snapshot = snapshot.lock().ok()?;
    Some(
        snapshot
            .peers
            .iter()
            .filter_map(|p| Some((keyfile::encode_key(&p.public_key), p.endpoint?)))
            .collect(),
    )
}

/// Keeps the file equal to the forwarder's endpoints (checked every
/// second, written only when they changed), for as long as the agent runs.
pub async fn keep(dir: PathBuf, snapshot: Arc<Mutex<Snapshot>>) {
    let mut written = load(&dir);
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    loop {
        ticks.tick().await;
        let Some(mut now) = current(&snapshot) else {
            return;
        };
        // A peer not heard from in this run keeps its last known endpoint.
        for (key, endpoint) in &written {
            now.entry(key.clone()).or_insert(*endpoint);
        }
        if now != written {
            match save(&dir, &now) {
                Ok(()) => written = now,
                Err(e) => tracing::warn!(error = %e, "cannot save the peers' endpoints"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_survive_the_file_and_garbage_is_no_endpoints() {
        let dir = std::env::temp_dir().join(format!("pisek-peer-endpoints-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert!(load(&dir).is_empty(), "no file yet");
        let mut e = PeerEndpoints::new();
        e.insert(
            keyfile::encode_key(&[7; 32]),
            "192.0.2.7:40000".parse().expect("addr"),
        );
        save(&dir, &e).expect("save");
        assert_eq!(load(&dir), e);
        std::fs::write(dir.join(FILE), b"{not json").expect("write");
        assert!(load(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
