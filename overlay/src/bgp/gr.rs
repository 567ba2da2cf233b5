//! Graceful restart (RFC 4724) as bookkeeping, without I/O or a clock:
//! the caller passes the time in and acts on the answers.
//!
//! - The restarting speaker's side (§4.1): [`SelectionDeferral`] holds our
//!   UPDATEs and End-of-RIB after our restart until every neighbor is up
//!   and sent its End-of-RIB ([`selection_complete`]) or the
//!   Selection_Deferral_Timer runs out; [`EndOfRibTracker`] and
//!   [`StaleSweep`] tell when the routes kept from before the restart that
//!   were not resent can go.
//! - The receiving speaker's side (§4.2): [`families_kept_stale`] says which
//!   of a returning neighbor's stale routes wait for its End-of-RIB.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::fsm::Negotiated;
use super::packet::Family;

/// Whether UPDATEs to neighbors are held after our own restart: the
/// Selection_Deferral_Timer of RFC 4724 §4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectionDeferral {
    state: Deferral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deferral {
    /// Not restarting, or the deferral is over: updates flow.
    Off,
    /// Restarting; the timer starts with the first neighbor.
    Pending,
    /// Holding every neighbor's UPDATEs and End-of-RIB until this deadline
    /// or until every neighbor is up and sent its End-of-RIB.
    Until(Instant),
}

impl SelectionDeferral {
    /// Deferring when `restarting` (we announce the Restart State bit),
    /// else off from the start.
    pub fn new(restarting: bool) -> SelectionDeferral {
        SelectionDeferral {
            state: if restarting {
                Deferral::Pending
            } else {
                Deferral::Off
            },
        }
    }

    /// Whether UPDATEs are still held.
    pub fn is_deferring(&self) -> bool {
        self.state != Deferral::Off
    }

    /// A neighbor was configured at `now`: the first one starts the timer,
    /// which runs out after `time`.
    pub fn neighbor_added(&mut self, now: Instant, time: Duration) {
        if self.state == Deferral::Pending {
            self.state = Deferral::Until(now + time);
        }
    }

    /// When the timer runs out, if it runs.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            Deferral::Until(t) => Some(t),
            Deferral::Off | Deferral::Pending => None,
        }
    }

    /// The timer ran out by `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|t| t <= now)
    }

    /// Selection is complete (or the timer ran out): updates flow from now on.
    pub fn end(&mut self) {
        self.state = Deferral::Off;
    }
}

/// Whether route selection after our restart is complete (RFC 4724 §4.1):
/// every configured neighbor is up (`Some` terms of its session) and each
/// that does graceful restart has sent End-of-RIB for all the session's
/// families (the `Family` list: the markers received in this session).
pub fn selection_complete<'a>(
    neighbors: impl IntoIterator<Item = (Option<&'a Negotiated>, &'a [Family])>,
) -> bool {
    neighbors.into_iter().all(|(up, eor_received)| {
        up.is_some_and(|n| {
            !n.graceful_restart || n.families.iter().all(|f| eor_received.contains(f))
        })
    })
}

/// A returning neighbor's `stale` families split into (kept, dropped)
/// (RFC 4724 §4.2): kept wait for its End-of-RIB, those it no longer
/// preserves forwarding state for, or no longer negotiates, go now.
pub fn families_kept_stale(n: &Negotiated, stale: &[Family]) -> (Vec<Family>, Vec<Family>) {
    let preserved: Vec<Family> = n
        .peer_graceful_restart
        .as_ref()
        .map(|gr| {
            gr.families
                .iter()
                .filter(|f| f.forwarding_preserved)
                .map(|f| f.family)
                .collect()
        })
        .unwrap_or_default();
    stale
        .iter()
        .partition(|f| preserved.contains(f) && n.families.contains(f))
}

/// Which neighbors still owe End-of-RIB for which family after a restart.
/// Pure bookkeeping: the caller feeds it the markers and sweeps a
/// family's stale routes once every neighbor has sent its marker
/// (RFC 4724 §4.1: "from all its peers").
#[derive(Debug, Clone)]
pub struct EndOfRibTracker {
    pending: BTreeSet<(IpAddr, Family)>,
}

impl EndOfRibTracker {
    /// Waiting for every `family` from every neighbor.
    pub fn new(neighbors: &[IpAddr], families: &[Family]) -> EndOfRibTracker {
        EndOfRibTracker {
            pending: neighbors
                .iter()
                .flat_map(|n| families.iter().map(move |f| (*n, *f)))
                .collect(),
        }
    }

    /// A neighbor's End-of-RIB. Returns the family when this marker was
    /// the last one it waited for.
    pub fn end_of_rib(&mut self, neighbor: IpAddr, family: Family) -> Option<Family> {
        if !self.pending.remove(&(neighbor, family)) {
            return None;
        }
        self.is_complete(family).then_some(family)
    }

    /// Every neighbor has sent `family`'s End-of-RIB (or there is none).
    pub fn is_complete(&self, family: Family) -> bool {
        !self.pending.iter().any(|(_, f)| *f == family)
    }

    /// Nothing is owed any more.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The restart in progress, on the side of the routes kept from before
/// it: what is still owed, and the bound.
#[derive(Debug)]
pub struct StaleSweep {
    /// End-of-RIB markers still owed.
    pub tracker: EndOfRibTracker,
    /// When every route still stale goes, markers or not: the restart time
    /// we announced (RFC 4724 §4.1 bounds the wait).
    pub deadline: Instant,
}

impl StaleSweep {
    /// Waiting for `families` from `neighbors`, at most until `deadline`
    /// (the caller's now plus the restart time it announced).
    pub fn new(neighbors: &[IpAddr], families: &[Family], deadline: Instant) -> StaleSweep {
        StaleSweep {
            tracker: EndOfRibTracker::new(neighbors, families),
            deadline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_complete_once_every_neighbor_sent_its_end_of_rib() {
        let edge1: IpAddr = "10.255.0.1".parse().expect("address");
        let edge2: IpAddr = "10.255.0.2".parse().expect("address");
        let mut t = EndOfRibTracker::new(&[edge1, edge2], &[Family::VPNV4, Family::VPNV6]);
        assert_eq!(t.end_of_rib(edge1, Family::VPNV4), None, "edge2 owes it");
        assert_eq!(
            t.end_of_rib(edge1, Family::VPNV4),
            None,
            "a repeat is no news"
        );
        assert_eq!(t.end_of_rib(edge2, Family::VPNV6), None, "edge1 owes VPNv6");
        assert_eq!(
            t.end_of_rib(edge2, Family::VPNV4),
            Some(Family::VPNV4),
            "both sent VPNv4"
        );
        assert!(!t.is_done());
        let stranger: IpAddr = "10.255.0.9".parse().expect("address");
        assert_eq!(t.end_of_rib(stranger, Family::VPNV6), None);
        assert_eq!(t.end_of_rib(edge1, Family::VPNV6), Some(Family::VPNV6));
        assert!(t.is_done());
    }

    #[test]
    fn without_neighbors_nothing_is_owed() {
        let t = EndOfRibTracker::new(&[], &[Family::VPNV4]);
        assert!(t.is_complete(Family::VPNV4));
        assert!(t.is_done());
    }

    #[test]
    fn the_deferral_timer_starts_with_the_first_neighbor_and_runs_out() {
        let t0 = Instant::now();
        let time = Duration::from_secs(20);
        let mut d = SelectionDeferral::new(true);
        assert!(d.is_deferring());
        assert_eq!(d.deadline(), None, "no neighbor yet");
        d.neighbor_added(t0, time);
        d.neighbor_added(t0 + Duration::from_secs(5), time);
        assert_eq!(d.deadline(), Some(t0 + time), "the first neighbor's");
        assert!(!d.expired(t0 + Duration::from_secs(19)));
        assert!(d.expired(t0 + time));
        d.end();
        assert!(!d.is_deferring());
        assert_eq!(d.deadline(), None);
    }

    #[test]
    fn a_speaker_that_is_not_restarting_never_defers() {
        let mut d = SelectionDeferral::new(false);
        d.neighbor_added(Instant::now(), Duration::from_secs(20));
        assert!(!d.is_deferring());
        assert_eq!(d.deadline(), None);
    }

    #[test]
    fn selection_is_complete_only_when_every_neighbor_is_up() {
        assert!(selection_complete([]), "nothing to wait for");
        assert!(!selection_complete([(None, &[][..])]), "a neighbor is down");
    }
}
