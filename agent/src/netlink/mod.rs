//! The agent's kernel networking work, through rtnetlink: veth pairs,
//! addresses, routes, neighbours and policy rules, in the agent's own network
//! namespace or in a workload's (opened by path).
//!
//! Every `ensure_*` function is idempotent: it adopts an object that already
//! exists with the wanted name and shape, and creates it otherwise, so a
//! repeated attach, or an attach after an agent crash, converges on the same
//! result. Every `delete_*` function treats "already gone" as success.
//!
//! ```text
//!  agent netns (the host)                        workload netns
//!  pk<hash>  veth, MAC ee:ee:ee:ee:ee:ee  <---->  eth0  10.1.1.2/32
//!  rule     iif pk<hash> lookup T                 neigh 169.254.1.1 ee:ee:ee:ee:ee:ee
//!  table T  10.1.1.2 dev pk<hash>                 default via 169.254.1.1 dev eth0 onlink
//!           default dev pisek-t<N>  (data plane)
//!           unreachable default metric 4278198272 (last resort)
//!  neigh    10.1.1.2 <eth0's MAC> dev pk<hash>
//! ```
//!
//! Seam for the data plane: [`Netlink::ensure_iif_rule`] and
//! [`Netlink::ensure_device_route`] are what the TUN side needs too (`iif
//! pisek-t<N> lookup T`, `default dev pisek-t<N> table T`); the attach code
//! does not install the default route, the dataplane wiring does, once per
//! tenant.

mod address;
mod link;
mod neighbour;
mod quiet;
mod route;
mod rule;
pub mod sysctl;

pub use link::LinkInfo;
pub use quiet::QuietChanges;
pub use route::{RouteEntry, UNREACHABLE_METRIC};
pub use rule::IifRule;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A kernel networking operation failed.
#[derive(Debug, Error)]
pub enum NetlinkError {
    /// The kernel refused a request.
    #[error("{what}: {source}")]
    Kernel {
        /// What was being done, naming the object.
        what: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The rtnetlink layer failed (socket, unexpected message).
    #[error("{what}: {detail}")]
    Protocol {
        /// What was being done.
        what: String,
        /// The rtnetlink error.
        detail: String,
    },
    /// A network namespace file could not be opened or entered.
    #[error("network namespace {path}: {source}")]
    Netns {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An object exists with the wanted name but is something else.
    #[error("{0}")]
    Conflict(String),
}

impl NetlinkError {
    /// Wraps an rtnetlink error with what was being done.
    pub(crate) fn from_rtnetlink(what: impl Into<String>, e: rtnetlink::Error) -> NetlinkError {
        let what = what.into();
        match e {
            rtnetlink::Error::NetlinkError(msg) => NetlinkError::Kernel {
                what,
                source: msg.to_io(),
            },
            other => NetlinkError::Protocol {
                what,
                detail: other.to_string(),
            },
        }
    }

    /// The errno of a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The errno (positive) of an rtnetlink error, if the kernel sent one.
pub(crate) fn errno_of(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

/// A route netlink connection bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// A connection in the calling thread's network namespace (the agent's
    /// own, the "host"). Must be called inside a tokio runtime.
    pub fn open() -> Result<Netlink, NetlinkError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetlinkError::Kernel {
                what: "opening a route netlink socket".into(),
                source,
            })?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// A connection in the calling thread's network namespace whose socket
    /// I/O runs on a thread of its own, named `name`.
    ///
    /// The kernel executes a route netlink request inside the `sendmsg`
    /// that carries it, holding its routing lock: deleting veth pairs takes
    /// 20 ms and more there. On a runtime worker that would stall every
    /// task queued behind it (the API's answers); on its own thread only
    /// this connection's callers wait. The thread ends when the last clone
    /// of the returned handle is dropped.
    ///
    /// `niceness` (0 to 19) is the thread's nice value unless the process
    /// runs at a lower priority already: background work such as deleting
    /// detached pairs then yields the CPU to requests awaiting an answer.
    pub fn open_on_own_thread(name: &str, niceness: i32) -> Result<Netlink, NetlinkError> {
        let opening = |source: std::io::Error| NetlinkError::Kernel {
            what: "opening a route netlink socket".into(),
            source,
        };
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        // The new thread inherits the calling thread's namespace.
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                lower_priority(niceness);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => return drop(handle_tx.send(Err(e))),
                };
                let connection = {
                    let _enter = runtime.enter();
                    rtnetlink::new_connection()
                };
                match connection {
                    Ok((connection, handle, _)) => {
                        if handle_tx.send(Ok(handle)).is_ok() {
                            runtime.block_on(connection);
                        }
                    }
                    Err(e) => drop(handle_tx.send(Err(e))),
                }
            })
            .map_err(opening)?;
        let handle = handle_rx
            .recv()
            .map_err(|_| NetlinkError::Protocol {
                what: "opening a route netlink socket".into(),
                detail: "its thread ended before answering".into(),
            })?
            .map_err(opening)?;
        Ok(Netlink { handle })
    }

    /// A connection inside the network namespace open as `netns` (opened
    /// with [`open_netns`] from `path`, which names it in errors).
    ///
    /// A netlink socket belongs to the namespace it was created in, so the
    /// socket is created on a short-lived thread that entered the namespace;
    /// the thread then exits and the agent's threads never change namespace.
    /// (A pooled thread must not be used: it would stay in the namespace.)
    pub fn open_in_netns(netns: &std::fs::File, path: &Path) -> Result<Netlink, NetlinkError> {
        let netns_error = |source: std::io::Error| NetlinkError::Netns {
            path: path.to_path_buf(),
            source,
        };
        let netns = netns.try_clone().map_err(netns_error)?;
        let runtime = tokio::runtime::Handle::current();
        let joined = std::thread::spawn(move || {
            nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            let _enter = runtime.enter();
            rtnetlink::new_connection()
        })
        .join();
        let (connection, handle, _) = joined
            .map_err(|_| NetlinkError::Protocol {
                what: format!("entering {}", path.display()),
                detail: "the helper thread panicked".into(),
            })?
            .map_err(netns_error)?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    pub(crate) fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }
}

/// Opens a network namespace file, checking that it is one: a clear error for
/// a path that does not exist or is an ordinary file.
pub fn open_netns(path: &Path) -> Result<std::fs::File, NetlinkError> {
    let file = std::fs::File::open(path).map_err(|source| NetlinkError::Netns {
        path: path.to_path_buf(),
        source,
    })?;
    // nsfs files have the magic NSFS_MAGIC; statfs tells them apart from a
    // regular file someone passed by mistake.
    let fs = nix::sys::statfs::fstatfs(&file).map_err(|e| NetlinkError::Netns {
        path: path.to_path_buf(),
        source: std::io::Error::from(e),
    })?;
    if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return Err(NetlinkError::Netns {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a network namespace (not an nsfs file)",
            ),
        });
    }
    Ok(file)
}

/// Sets the calling thread's nice value to `niceness` unless it is higher
/// already. Best effort: a thread that keeps its priority still works.
fn lower_priority(niceness: i32) {
    use crate::dataplane::sys::{set_thread_niceness, thread_niceness};
    let lowered = thread_niceness().and_then(|current| {
        if current >= niceness {
            Ok(())
        } else {
            set_thread_niceness(niceness)
        }
    });
    if let Err(error) = lowered {
        tracing::warn!(niceness, %error, "could not lower a netlink thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of this process's thread named `name`, from procfs.
    fn nice_of_thread(name: &str) -> Option<i32> {
        // Other tests' threads come and go meanwhile: one that vanished
        // between the listing and the read is skipped, not an answer.
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let path = task.path();
            let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
                continue;
            };
            if comm.trim_end() == name {
                let stat = std::fs::read_to_string(path.join("stat")).ok()?;
                // Fields after the parenthesised name; nice is field 19.
                let rest = &stat[stat.rfind(')')? + 2..];
                return rest.split(' ').nth(16)?.parse().ok();
            }
        }
        None
    }

    #[tokio::test]
    async fn own_thread_runs_at_the_given_niceness() {
        let own = crate::dataplane::sys::thread_niceness().expect("this thread's nice value");
        let netlink = Netlink::open_on_own_thread("pk-nice-test", 7).expect("a netlink socket");
        // Lowered, never raised (a test run under `nice -n 19` stays there).
        assert_eq!(nice_of_thread("pk-nice-test"), Some(own.max(7)));
        drop(netlink);
    }
}
