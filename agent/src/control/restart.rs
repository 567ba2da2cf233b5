//! Forwarding across an agent restart (RFC 4724 §4.1, the restarting
//! speaker's side): the VRFs' learned routes are written to the state
//! directory while the agent runs and loaded, stale, by the next start that
//! adopts the data plane; they are swept once every neighbor has sent
//! End-of-RIB, or when the restart time runs out.
//!
//! ```text
//!  start (pisek0 found) ─▶ restored_routes ─▶ VrfRoutes::restore (stale)
//!                                              ─▶ dataplane::start (in the VRFs
//!                                                 before the first packet)
//!  speaker ─SpeakerEvent─▶ install task: Route ─▶ VrfRoutes::learned (fresh)
//!                                        EndOfRib ─▶ EndOfRibTracker ─▶ sweep a family
//!                          restart time over ─▶ sweep everything stale
//!  any learned change ─▶ Notify ─▶ writer task (debounced) ─▶ learned-routes.json
//!  SIGTERM ─▶ LearnedRoutesWriter::flush ─▶ learned-routes.json
//! ```

use crate::config::Config;
use crate::state::{self, LearnedRoute};
use pisek_overlay::bgp::gr::StaleSweep;
use pisek_overlay::bgp::import::VrfRoutes;
use pisek_overlay::bgp::packet::Family;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

/// A first change waits this long for the rest of its burst before the
/// file is written: a flap of many routes is one write, not one per route.
pub const WRITE_DEBOUNCE: Duration = Duration::from_secs(1);

/// Writes are at least this far apart, however long changes go on: the
/// file may hold a whole VPN table, and a restart that finds it a few
/// seconds old loses nothing that End-of-RIB does not repair.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(5);

/// The learned routes a start loads into the VRFs as stale.
///
/// `restarting` (the agent adopted the data plane of an earlier run): the
/// file's routes; a damaged or unreadable file is a warning and no routes.
/// A fresh start (no TUNs to adopt) ignores and removes the file: the
/// kernel forwarded nothing meanwhile, and routes kept from some older run
/// would only mislead.
pub fn restored_routes(config: &Config, restarting: bool) -> Vec<LearnedRoute> {
    let dir = &config.state.dir;
    if !restarting {
        if let Err(e) = state::remove_learned_routes(dir) {
            tracing::warn!("{e}");
        }
        return Vec::new();
    }
    match state::load_learned_routes(dir) {
        Ok(routes) => routes,
        Err(e) => {
            tracing::warn!("{e}; starting with empty VRFs, BGP will resend the routes");
            Vec::new()
        }
    }
}

/// The sweep of the routes restored stale: End-of-RIB from each of this
/// node's neighbors for each of `families`, bounded by the restart time
/// it announces (RFC 4724 §4.1), counted from now.
pub fn stale_sweep(config: &Config, families: &[Family]) -> StaleSweep {
    let neighbors: Vec<IpAddr> = config.bgp.neighbors.iter().map(|n| n.address).collect();
    let restart_time = Duration::from_secs(u64::from(config.bgp.restart_time_secs));
    StaleSweep::new(
        &neighbors,
        families,
        Instant::now().into_std() + restart_time,
    )
}

/// The handle on the task that writes the learned routes.
#[derive(Debug, Clone)]
pub struct LearnedRoutesWriter {
    changed: Arc<Notify>,
    flushes: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

impl LearnedRoutesWriter {
    /// Starts the task writing `vrf_routes`' learned routes into `dir`.
    pub fn spawn(dir: PathBuf, vrf_routes: Arc<Mutex<VrfRoutes>>) -> LearnedRoutesWriter {
        let changed = Arc::new(Notify::new());
        let (flushes, requests) = mpsc::unbounded_channel();
        tokio::spawn(write_learned_routes(
            dir,
            vrf_routes,
            Arc::clone(&changed),
            requests,
        ));
        LearnedRoutesWriter { changed, flushes }
    }

    /// The learned routes changed: a write is due (debounced).
    pub fn changed(&self) {
        // A stored permit: a change during a write is not lost.
        self.changed.notify_one();
    }

    /// Writes now, if anything changed since the last write, and returns
    /// when it is on disk (or failed, which is logged).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.flushes.send(done).is_ok() {
            let _ = written.await;
        }
    }
}

/// The writer task: one write per burst of changes, at most one per
/// [`WRITE_INTERVAL`], and one on request.
async fn write_learned_routes(
    dir: PathBuf,
    vrf_routes: Arc<Mutex<VrfRoutes>>,
    changed: Arc<Notify>,
    mut requests: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
) {
    let mut written: Option<u64> = None;
    let mut last_write: Option<Instant> = None;
    let mut due: Option<Instant> = None;
    loop {
        let sleep = async {
            match due {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = changed.notified(), if due.is_none() => {
                let soon = Instant::now() + WRITE_DEBOUNCE;
                due = Some(last_write.map_or(soon, |t| soon.max(t + WRITE_INTERVAL)));
            }
            () = sleep => {
                due = None;
                last_write = Some(Instant::now());
                write_if_changed(&dir, &vrf_routes, &mut written).await;
            }
            request = requests.recv() => {
                due = None;
                write_if_changed(&dir, &vrf_routes, &mut written).await;
                match request {
                    Some(done) => {
                        let _ = done.send(());
                    }
                    None => return,
                }
            }
        }
    }
}

/// Writes the learned routes if their generation is not the one on disk.
async fn write_if_changed(dir: &Path, vrf_routes: &Mutex<VrfRoutes>, written: &mut Option<u64>) {
    let (generation, routes) = match vrf_routes.lock() {
        Ok(r) => (r.generation(), r.learned_routes()),
        Err(_) => return,
    };
    if *written == Some(generation) {
        return;
    }
    let dir = dir.to_path_buf();
    let count = routes.len();
    let result =
        tokio::task::spawn_blocking(move || state::save_learned_routes(&dir, &routes)).await;
    match result {
        Ok(Ok(())) => {
            tracing::debug!(routes = count, "learned routes written");
            *written = Some(generation);
        }
        Ok(Err(e)) => tracing::warn!("cannot keep the learned routes for a restart: {e}"),
        Err(e) => tracing::warn!("cannot keep the learned routes for a restart: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::driver::{ImportedRoute, RouteEvent, SpeakerEvent};
    use crate::control::routing::{FAMILIES, install_routes};
    use crate::dataplane::{Command, CommandSender};
    use ipnet::IpNet;
    use pisek_overlay::TenantId;
    use pisek_overlay::bgp::gr::EndOfRibTracker;
    use pisek_overlay::bgp::packet::{PathAttributes, RouteDistinguisher, VpnPrefix};
    use pisek_overlay::packet::{Encapsulation, Label};

    const EDGE: &str = "10.255.0.1";

    fn kept(prefix: &str) -> LearnedRoute {
        LearnedRoute {
            tenant: TenantId(1),
            rd: RouteDistinguisher([0, 1, 10, 255, 0, 12, 0, 1]),
            prefix: prefix.parse().expect("prefix"),
            next_hop: "10.255.0.12".parse().expect("address"),
            label: Label::new(17).expect("label"),
            encap: Encapsulation::MplsOverUdp,
        }
    }

    fn relearned(prefix: &str) -> SpeakerEvent {
        SpeakerEvent::Route(RouteEvent {
            tenant: TenantId(1),
            prefix: VpnPrefix {
                rd: RouteDistinguisher([0, 1, 10, 255, 0, 12, 0, 1]),
                prefix: prefix.parse().expect("prefix"),
            },
            route: Some(ImportedRoute {
                next_hop: "10.255.0.12".parse().expect("address"),
                label: Label::new(17).expect("label"),
                attributes: Arc::new(PathAttributes::default()),
            }),
        })
    }

    /// A restarted gateway's install task over VRFs that hold `kept` stale,
    /// with one neighbor (the edge); returns what it sends the forwarder.
    struct Restarted {
        events: Option<mpsc::UnboundedSender<SpeakerEvent>>,
        forwarder: std::sync::mpsc::Receiver<Command>,
        vrf_routes: Arc<Mutex<VrfRoutes>>,
        dir: PathBuf,
        writer: LearnedRoutesWriter,
        task: Option<tokio::task::JoinHandle<()>>,
    }

    impl Restarted {
        fn start(tag: &str, kept: &[LearnedRoute], deadline: Instant) -> Restarted {
            let dir =
                std::env::temp_dir().join(format!("pisek-restart-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("mkdir");
            let mut routes = VrfRoutes::new("10.255.0.11".parse().expect("address"));
            routes.restore(kept);
            let vrf_routes = Arc::new(Mutex::new(routes));
            let (events, received) = mpsc::unbounded_channel();
            let (sender, forwarder): (CommandSender, _) =
                CommandSender::channel().expect("channel");
            let writer = LearnedRoutesWriter::spawn(dir.clone(), Arc::clone(&vrf_routes));
            let sweep = StaleSweep {
                tracker: EndOfRibTracker::new(&[EDGE.parse().expect("address")], &FAMILIES),
                deadline: deadline.into_std(),
            };
            let task = tokio::spawn(install_routes(
                received,
                Arc::clone(&vrf_routes),
                sender,
                Some(sweep),
                writer.clone(),
            ));
            Restarted {
                events: Some(events),
                forwarder,
                vrf_routes,
                dir,
                writer,
                task: Some(task),
            }
        }

        fn send(&self, event: SpeakerEvent) {
            if let Some(events) = &self.events {
                events.send(event).expect("the task runs");
            }
        }

        fn end_of_rib(&self, family: Family) {
            let neighbor = EDGE.parse().expect("address");
            self.send(SpeakerEvent::EndOfRib { neighbor, family });
        }

        /// Ends the task as the speaker stopping would, once it handled
        /// every event sent before.
        async fn stop(&mut self) {
            self.events = None;
            if let Some(task) = self.task.take() {
                task.await.expect("the task ends cleanly");
            }
        }

        /// The routes removed from the VRFs, in order.
        fn removed(&self) -> Vec<IpNet> {
            self.forwarder
                .try_iter()
                .filter_map(|c| match c {
                    Command::Route {
                        prefix,
                        next_hop: None,
                        ..
                    } => Some(prefix),
                    _ => None,
                })
                .collect()
        }
    }

    impl Drop for Restarted {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[tokio::test]
    async fn end_of_rib_from_every_neighbor_sweeps_what_was_not_resent() {
        let far = Instant::now() + Duration::from_secs(3600);
        let kept = [
            kept("10.1.2.0/24"),
            kept("10.1.9.5/32"),
            kept("fd00:10:1:2::/64"),
        ];
        let mut lab = Restarted::start("eor", &kept, far);
        lab.send(relearned("10.1.2.0/24"));
        lab.end_of_rib(Family::VPNV4);
        // VPNv6's marker is still owed: its stale route stays.
        lab.stop().await;
        assert_eq!(
            lab.removed(),
            ["10.1.9.5/32".parse::<IpNet>().expect("prefix")]
        );
        let routes = lab.vrf_routes.lock().expect("lock");
        assert!(
            routes.has_stale(),
            "fd00:10:1:2::/64 waits for VPNv6's End-of-RIB"
        );
        let mut left: Vec<String> = routes
            .learned_routes()
            .iter()
            .map(|r| r.prefix.to_string())
            .collect();
        left.sort();
        assert_eq!(left, ["10.1.2.0/24", "fd00:10:1:2::/64"]);
    }

    // Two threads: the test blocks on the forwarder's channel while the
    // task runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_restart_time_sweeps_what_end_of_rib_did_not() {
        let kept = [kept("10.1.2.0/24"), kept("fd00:10:1:2::/64")];
        // The restart time is over at once: the neighbor never came back.
        let mut lab = Restarted::start("timer", &kept, Instant::now());
        let first = lab
            .forwarder
            .recv_timeout(Duration::from_secs(10))
            .expect("a sweep");
        let mut removed: Vec<IpNet> = std::iter::once(first)
            .chain(lab.forwarder.recv_timeout(Duration::from_secs(10)))
            .filter_map(|c| match c {
                Command::Route {
                    prefix,
                    next_hop: None,
                    ..
                } => Some(prefix),
                _ => None,
            })
            .collect();
        removed.sort();
        assert_eq!(
            removed,
            [
                "10.1.2.0/24".parse::<IpNet>().expect("prefix"),
                "fd00:10:1:2::/64".parse().expect("prefix"),
            ]
        );
        lab.stop().await;
        assert!(!lab.vrf_routes.lock().expect("lock").has_stale());
    }

    #[tokio::test]
    async fn the_writer_keeps_what_the_vrfs_learned_and_flush_puts_it_on_disk() {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut lab = Restarted::start("write", &[kept("10.1.2.0/24")], far);
        lab.send(relearned("10.1.7.0/24"));
        lab.stop().await;
        lab.writer.flush().await;
        let mut on_disk: Vec<String> = state::load_learned_routes(&lab.dir)
            .expect("load")
            .iter()
            .map(|r| r.prefix.to_string())
            .collect();
        on_disk.sort();
        assert_eq!(
            on_disk,
            ["10.1.2.0/24", "10.1.7.0/24"],
            "stale and fresh routes alike"
        );
    }
}
