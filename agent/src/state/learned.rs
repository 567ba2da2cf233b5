//! The routes the VRFs learned over BGP, kept across an agent restart in
//! `learned-routes.json` beside `state.json`.
//!
//! RFC 4724 §4.1: a speaker that announces the Forwarding State bit keeps
//! forwarding across its restart with the routes it had, marked stale, and
//! drops those not re-learned once its peers have sent End-of-RIB. The
//! kernel half of the data plane (TUNs, rules, routes) outlives the
//! process; the VRFs live in the forwarder's memory, so their learned
//! routes are written here and loaded, stale, by the next start.
//!
//! Why a file of its own and not a part of `state.json`: `state.json` is
//! the node's allocations (leases, labels, endpoints), written and synced
//! on every attach and refused at start when it is damaged, because losing
//! it would leak or double-allocate addresses. Learned routes are soft
//! state, a cache of what BGP will tell the agent again: there can be many
//! (a whole VPN table), they change in bursts, they are written debounced
//! rather than with every change, and a damaged copy is only a warning (the
//! agent starts with empty VRFs and relearns). Mixing the two would make
//! every attach rewrite the whole table, and a bad route cache stop the
//! node.

use super::atomic;
use ipnet::IpNet;
use pisek_overlay::TenantId;
use pisek_overlay::bgp::packet::RouteDistinguisher;
use pisek_overlay::packet::{Encapsulation, Label};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The file's name inside the state directory.
pub const LEARNED_ROUTES_FILE: &str = "learned-routes.json";
/// The file's format version; bumped on incompatible changes.
pub const LEARNED_ROUTES_VERSION: u32 = 1;

/// One route a VRF learned over BGP (the library's type: the VRFs' route
/// table restores it).
pub use pisek_overlay::bgp::import::LearnedRoute;

/// Why the file could not be used. The agent logs it and starts with empty
/// VRFs: learned routes are soft state.
#[derive(Debug, Error)]
pub enum LearnedRoutesError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The content is not a learned-routes document of this version.
    #[error("{path}: not a valid learned-routes file ({reason})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The file's path in a state directory.
pub fn learned_routes_path(state_dir: &Path) -> PathBuf {
    state_dir.join(LEARNED_ROUTES_FILE)
}

/// Replaces the file with `routes`, atomically and durably (like
/// `state.json`: a crash leaves the old or the new list, never a mix).
pub fn save_learned_routes(
    state_dir: &Path,
    routes: &[LearnedRoute],
) -> Result<(), LearnedRoutesError> {
    let path = learned_routes_path(state_dir);
    let bytes = encode_learned_routes(routes).map_err(|e| LearnedRoutesError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    atomic::write_atomically(&path, &bytes)
        .map_err(|source| LearnedRoutesError::Io { path, source })
}

/// The file's content for `routes`.
pub fn encode_learned_routes(routes: &[LearnedRoute]) -> Result<Vec<u8>, serde_json::Error> {
    let document = Document {
        version: LEARNED_ROUTES_VERSION,
        routes: routes.iter().map(Record::from).collect(),
    };
    // Compact: the file may hold a whole VPN table.
    let mut bytes = serde_json::to_vec(&document)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The routes of the file; an absent file is an empty list.
pub fn load_learned_routes(state_dir: &Path) -> Result<Vec<LearnedRoute>, LearnedRoutesError> {
    let path = learned_routes_path(state_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LearnedRoutesError::Io { path, source }),
    };
    parse_learned_routes(&bytes).map_err(|reason| LearnedRoutesError::Corrupt { path, reason })
}

/// Removes the file (a start that adopts nothing must never load it later).
pub fn remove_learned_routes(state_dir: &Path) -> Result<(), LearnedRoutesError> {
    let path = learned_routes_path(state_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LearnedRoutesError::Io { path, source }),
    }
}

/// Parses the file's content; every route must be valid, or none is used
/// (a file damaged in one place may be damaged in others). The error says
/// what is wrong.
pub fn parse_learned_routes(bytes: &[u8]) -> Result<Vec<LearnedRoute>, String> {
    let document: Document = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if document.version != LEARNED_ROUTES_VERSION {
        return Err(format!(
            "format version {} (this agent reads {LEARNED_ROUTES_VERSION})",
            document.version
        ));
    }
    document
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| r.to_route().map_err(|e| format!("route {i}: {e}")))
        .collect()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    version: u32,
    routes: Vec<Record>,
}

/// A route as written: text where the types have a text form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    tenant: u32,
    rd: String,
    prefix: String,
    next_hop: IpAddr,
    label: u32,
    encap: EncapRecord,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum EncapRecord {
    MplsOverUdp,
    MplsOverGre,
}

impl From<&LearnedRoute> for Record {
    fn from(r: &LearnedRoute) -> Record {
        Record {
            tenant: r.tenant.0,
            rd: r.rd.to_string(),
            prefix: r.prefix.to_string(),
            next_hop: r.next_hop,
            label: r.label.value(),
            encap: match r.encap {
                Encapsulation::MplsOverUdp => EncapRecord::MplsOverUdp,
                Encapsulation::MplsOverGre => EncapRecord::MplsOverGre,
            },
        }
    }
}

impl Record {
    fn to_route(&self) -> Result<LearnedRoute, String> {
        let rd: RouteDistinguisher = self.rd.parse().map_err(|e| format!("rd: {e}"))?;
        let prefix: IpNet = self
            .prefix
            .parse()
            .map_err(|e| format!("prefix {}: {e}", self.prefix))?;
        // A VRF label: 20 bits, not reserved (RFC 3032 §2.1).
        let label = Label::for_vrf(self.label).map_err(|e| format!("label: {e}"))?;
        Ok(LearnedRoute {
            tenant: TenantId(self.tenant),
            rd,
            prefix: prefix.trunc(),
            next_hop: self.next_hop,
            label,
            encap: match self.encap {
                EncapRecord::MplsOverUdp => Encapsulation::MplsOverUdp,
                EncapRecord::MplsOverGre => Encapsulation::MplsOverGre,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let d =
                std::env::temp_dir().join(format!("pisek-learned-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).expect("mkdir");
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn route(tenant: u32, prefix: &str, next_hop: &str, label: u32) -> LearnedRoute {
        LearnedRoute {
            tenant: TenantId(tenant),
            rd: RouteDistinguisher::from_ipv4("10.255.0.12".parse().expect("address"), 1),
            prefix: prefix.parse().expect("prefix"),
            next_hop: next_hop.parse().expect("address"),
            label: Label::new(label).expect("label"),
            encap: Encapsulation::MplsOverUdp,
        }
    }

    #[test]
    fn saved_routes_load_back_the_same() {
        let d = Dir::new("roundtrip");
        let mut gre = route(2, "fd00:10:1:2::/64", "10.255.0.12", 17);
        gre.encap = Encapsulation::MplsOverGre;
        gre.rd = RouteDistinguisher::from_as4(4_200_000_000, 7);
        let routes = vec![route(1, "10.1.2.0/24", "10.255.0.12", 16), gre];
        save_learned_routes(&d.0, &routes).expect("save");
        assert_eq!(load_learned_routes(&d.0).expect("load"), routes);
        let mode = std::fs::metadata(learned_routes_path(&d.0))
            .expect("stat")
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn an_absent_file_is_an_empty_list_and_removal_is_idempotent() {
        let d = Dir::new("absent");
        assert_eq!(load_learned_routes(&d.0).expect("load"), []);
        save_learned_routes(&d.0, &[route(1, "10.1.2.0/24", "10.255.0.12", 16)]).expect("save");
        remove_learned_routes(&d.0).expect("remove");
        remove_learned_routes(&d.0).expect("remove again");
        assert_eq!(load_learned_routes(&d.0).expect("load"), []);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_the_problem_never_a_panic() {
        let d = Dir::new("corrupt");
        let path = learned_routes_path(&d.0);
        let cases: [(&[u8], &str); 6] = [
            (b"{\"version\":1,\"rou", "EOF"),
            (b"\x00\xff\xfe garbage", "expected value"),
            (br#"{"version":9,"routes":[]}"#, "format version 9"),
            (
                br#"{"version":1,"routes":[{"tenant":1,"rd":"x","prefix":"10.1.2.0/24","next_hop":"10.255.0.12","label":16,"encap":"mpls-over-udp"}]}"#,
                "route 0: rd",
            ),
            (
                br#"{"version":1,"routes":[{"tenant":1,"rd":"10.255.0.12:1","prefix":"10.1.2.0/24","next_hop":"10.255.0.12","label":3,"encap":"mpls-over-udp"}]}"#,
                "reserved",
            ),
            (
                br#"{"version":1,"routes":[{"tenant":1,"rd":"10.255.0.12:1","prefix":"10.1.2.0/33","next_hop":"10.255.0.12","label":16,"encap":"mpls-over-udp"}]}"#,
                "prefix 10.1.2.0/33",
            ),
        ];
        for (bytes, reason) in cases {
            std::fs::write(&path, bytes).expect("write");
            let err = load_learned_routes(&d.0).expect_err("refused");
            assert!(matches!(err, LearnedRoutesError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains(reason), "{reason}: {err}");
        }
    }

    #[test]
    fn an_unreadable_file_is_an_io_error() {
        let d = Dir::new("unreadable");
        // A directory where the file should be: read(2) fails with EISDIR.
        std::fs::create_dir_all(learned_routes_path(&d.0)).expect("mkdir");
        let err = load_learned_routes(&d.0).expect_err("refused");
        assert!(matches!(err, LearnedRoutesError::Io { .. }), "{err}");
    }
}
