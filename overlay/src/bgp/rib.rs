//! The routing information bases (RFC 4271 §3.2).
//!
//! One table keyed by VPN prefix holds, per prefix, the path from every
//! source (the Adj-RIBs-In of all peers plus our own routes) with the best
//! one first (the Loc-RIB). Path attributes are interned: the routes of one
//! UPDATE, and usually of one peer, share a single `Arc<PathAttributes>`, so
//! a route costs its key, a label, a source and a pointer. The Adj-RIB-Out
//! is not stored as a copy: the speaker computes what a peer gets from the
//! Loc-RIB when it sends (as BIRD does without an export table).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use super::packet::{Family, PathAttributes, VpnPrefix};
use crate::packet::Label;

/// Where a path came from: 0 is this node, peers are numbered from 1.
pub type Source = u16;
/// The source of routes this node originates.
pub const LOCAL: Source = 0;

/// One path to a prefix.
#[derive(Debug, Clone)]
pub struct Path {
    /// Shared attributes (next hop, route targets, ...).
    pub attrs: Arc<PathAttributes>,
    /// The label to push toward the next hop.
    pub label: Label,
    /// Who sent it.
    pub source: Source,
    /// Kept across the sender's restart, waiting for a refresh (RFC 4724).
    pub stale: bool,
    /// When the path was learned or last changed; an identical refresh
    /// keeps it (the path's age, as `show bgp` prints it). Not part of a
    /// path's equality.
    pub since: Instant,
}

impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        self.attrs == other.attrs
            && self.label == other.label
            && self.source == other.source
            && self.stale == other.stale
    }
}

impl Eq for Path {}

/// What the best-path tie-breaks need to know about a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceInfo {
    /// The peer's BGP Identifier (ours for [`LOCAL`]).
    pub router_id: Ipv4Addr,
    /// The peer's address (unspecified for [`LOCAL`]).
    pub address: IpAddr,
    /// The peer is in another AS.
    pub ebgp: bool,
}

/// The best path of a prefix changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestChange {
    /// The prefix.
    pub prefix: VpnPrefix,
    /// The best path before, if any.
    pub old: Option<Path>,
    /// The best path now, if any.
    pub new: Option<Path>,
}

#[derive(Debug)]
struct Entry {
    /// The best path: kept inline, so a prefix with one path allocates nothing.
    best: Path,
    /// Other paths, unordered.
    others: Vec<Path>,
}

/// The RIB: Adj-RIBs-In and Loc-RIB in one table.
#[derive(Debug, Default)]
pub struct Rib {
    routes: HashMap<VpnPrefix, Entry>,
    interned: HashSet<Arc<PathAttributes>>,
    /// Interned count after the last sweep of unused attribute sets.
    swept_at: usize,
}

/// Compares two paths by RFC 4271 §9.1.2.2 and RFC 4456 §9; `Less` means
/// `a` is better.
pub fn compare(a: &Path, b: &Path, info: &dyn Fn(Source) -> SourceInfo) -> Ordering {
    let (x, y) = (&*a.attrs, &*b.attrs);
    // Higher LOCAL_PREF (§9.1.1; 100 when absent, the common default).
    y.local_pref
        .unwrap_or(100)
        .cmp(&x.local_pref.unwrap_or(100))
        // Our own routes over learned ones (a common first tie-break).
        .then_with(|| (b.source == LOCAL).cmp(&(a.source == LOCAL)))
        // a) shorter AS_PATH.
        .then_with(|| x.as_path_len().cmp(&y.as_path_len()))
        // b) lower ORIGIN.
        .then_with(|| x.origin.cmp(&y.origin))
        // c) lower MED, only between routes from the same neighbour AS.
        .then_with(|| {
            if x.neighbor_as() == y.neighbor_as() {
                x.med.unwrap_or(0).cmp(&y.med.unwrap_or(0))
            } else {
                Ordering::Equal
            }
        })
        // d) a path from an external peer over one from an internal peer;
        // e) there is no IGP cost to compare.
        .then_with(|| info(b.source).ebgp.cmp(&info(a.source).ebgp))
        // f) lower BGP Identifier, the ORIGINATOR_ID for reflected routes
        // (RFC 4456 §9).
        .then_with(|| {
            let (ia, ib) = (info(a.source), info(b.source));
            x.originator_id
                .unwrap_or(ia.router_id)
                .cmp(&y.originator_id.unwrap_or(ib.router_id))
        })
        // RFC 4456 §9: shorter CLUSTER_LIST.
        .then_with(|| x.cluster_list.len().cmp(&y.cluster_list.len()))
        // g) lower peer address.
        .then_with(|| info(a.source).address.cmp(&info(b.source).address))
}

impl Rib {
    /// An empty RIB.
    pub fn new() -> Rib {
        Rib::default()
    }

    /// Number of prefixes with at least one path.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Number of distinct attribute sets in use.
    pub fn attribute_sets(&self) -> usize {
        self.interned.len()
    }

    /// Returns the shared copy of `attrs`, storing it if new.
    pub fn intern(&mut self, attrs: PathAttributes) -> Arc<PathAttributes> {
        if let Some(a) = self.interned.get(&attrs) {
            return a.clone();
        }
        let a = Arc::new(attrs);
        self.interned.insert(a.clone());
        if self.interned.len() > 2 * self.swept_at.max(512) {
            self.sweep_attributes();
        }
        a
    }

    /// Drops attribute sets no route uses any more.
    pub fn sweep_attributes(&mut self) {
        self.interned.retain(|a| Arc::strong_count(a) > 1);
        self.swept_at = self.interned.len();
    }

    /// The best path of a prefix.
    pub fn best(&self, prefix: &VpnPrefix) -> Option<&Path> {
        self.routes.get(prefix).map(|e| &e.best)
    }

    /// Every path of every prefix, with whether it is the best.
    pub fn iter_paths(&self) -> impl Iterator<Item = (&VpnPrefix, &Path, bool)> {
        self.routes.iter().flat_map(|(prefix, e)| {
            std::iter::once((prefix, &e.best, true))
                .chain(e.others.iter().map(move |p| (prefix, p, false)))
        })
    }

    /// Every prefix with its best path.
    pub fn iter_best(&self) -> impl Iterator<Item = (&VpnPrefix, &Path)> {
        self.routes.iter().map(|(p, e)| (p, &e.best))
    }

    /// Every path of a prefix, best first.
    pub fn paths(&self, prefix: &VpnPrefix) -> Vec<&Path> {
        self.routes
            .get(prefix)
            .map(|e| std::iter::once(&e.best).chain(e.others.iter()).collect())
            .unwrap_or_default()
    }

    /// Number of paths from `source`.
    pub fn count_from(&self, source: Source) -> usize {
        self.routes
            .values()
            .filter(|e| e.best.source == source || e.others.iter().any(|p| p.source == source))
            .count()
    }

    /// Adds or replaces `source`'s path to `prefix`; returns the change of
    /// best path, if any.
    pub fn update(
        &mut self,
        prefix: VpnPrefix,
        path: Path,
        info: &dyn Fn(Source) -> SourceInfo,
    ) -> Option<BestChange> {
        let entry = match self.routes.entry(prefix) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Entry {
                    best: path.clone(),
                    others: Vec::new(),
                });
                return Some(BestChange {
                    prefix,
                    old: None,
                    new: Some(path),
                });
            }
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        };
        let old = entry.best.clone();
        // An identical refresh keeps the path's age.
        let replace = |slot: &mut Path, mut path: Path| {
            if *slot == path {
                path.since = slot.since;
            }
            *slot = path;
        };
        if entry.best.source == path.source {
            replace(&mut entry.best, path);
        } else if let Some(p) = entry.others.iter_mut().find(|p| p.source == path.source) {
            replace(p, path);
        } else {
            entry.others.push(path);
        }
        reselect(entry, info);
        (entry.best != old).then(|| BestChange {
            prefix,
            old: Some(old),
            new: Some(entry.best.clone()),
        })
    }

    /// Removes `source`'s path to `prefix`; returns the change of best path.
    pub fn withdraw(
        &mut self,
        prefix: &VpnPrefix,
        source: Source,
        info: &dyn Fn(Source) -> SourceInfo,
    ) -> Option<BestChange> {
        let entry = self.routes.get_mut(prefix)?;
        if entry.best.source == source {
            let old = entry.best.clone();
            if entry.others.is_empty() {
                self.routes.remove(prefix);
                return Some(BestChange {
                    prefix: *prefix,
                    old: Some(old),
                    new: None,
                });
            }
            entry.best = entry.others.swap_remove(0);
            reselect(entry, info);
            Some(BestChange {
                prefix: *prefix,
                old: Some(old),
                new: Some(entry.best.clone()),
            })
        } else {
            entry.others.retain(|p| p.source != source);
            None
        }
    }

    /// Marks every path from `source` stale (RFC 4724 §4.2, the helper
    /// keeping a restarting peer's routes); returns how many.
    pub fn mark_stale(&mut self, source: Source) -> usize {
        let mut n = 0;
        for e in self.routes.values_mut() {
            for p in std::iter::once(&mut e.best).chain(e.others.iter_mut()) {
                if p.source == source {
                    p.stale = true;
                    n += 1;
                }
            }
        }
        n
    }

    /// Removes `source`'s stale paths of `family` (all families when None):
    /// End-of-RIB arrived or the restart timer ran out.
    pub fn remove_stale(
        &mut self,
        source: Source,
        family: Option<Family>,
        info: &dyn Fn(Source) -> SourceInfo,
    ) -> Vec<BestChange> {
        self.remove_where(info, |prefix, p| {
            p.source == source && p.stale && family.is_none_or(|f| prefix.family() == f)
        })
    }

    /// Removes every path from `source` (its session ended for good).
    pub fn remove_source(
        &mut self,
        source: Source,
        info: &dyn Fn(Source) -> SourceInfo,
    ) -> Vec<BestChange> {
        let changes = self.remove_where(info, |_, p| p.source == source);
        self.sweep_attributes();
        changes
    }

    fn remove_where(
        &mut self,
        info: &dyn Fn(Source) -> SourceInfo,
        doomed: impl Fn(&VpnPrefix, &Path) -> bool,
    ) -> Vec<BestChange> {
        let prefixes: Vec<VpnPrefix> = self
            .routes
            .iter()
            .filter(|(prefix, e)| {
                doomed(prefix, &e.best) || e.others.iter().any(|p| doomed(prefix, p))
            })
            .map(|(p, _)| *p)
            .collect();
        let mut changes = Vec::new();
        for prefix in prefixes {
            let sources: Vec<Source> = self
                .paths(&prefix)
                .into_iter()
                .filter(|p| doomed(&prefix, p))
                .map(|p| p.source)
                .collect();
            for s in sources {
                changes.extend(self.withdraw(&prefix, s, info));
            }
        }
        changes
    }
}

/// Puts the best path of `entry` first.
fn reselect(entry: &mut Entry, info: &dyn Fn(Source) -> SourceInfo) {
    let best_other = entry
        .others
        .iter()
        .enumerate()
        .min_by(|(_, a), (_, b)| compare(a, b, info))
        .map(|(i, _)| i);
    if let Some(i) = best_other {
        if compare(&entry.others[i], &entry.best, info) == Ordering::Less {
            std::mem::swap(&mut entry.best, &mut entry.others[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(s: Source) -> SourceInfo {
        SourceInfo {
            router_id: Ipv4Addr::new(10, 0, 0, s as u8),
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, s as u8)),
            ebgp: false,
        }
    }

    fn prefix() -> VpnPrefix {
        VpnPrefix::new("65000:1".parse().unwrap(), "10.1.0.0/16".parse().unwrap())
    }

    fn path(rib: &mut Rib, source: Source, attrs: PathAttributes) -> Path {
        Path {
            attrs: rib.intern(attrs),
            label: Label::new(100 + u32::from(source)).unwrap(),
            source,
            stale: false,
            since: Instant::now(),
        }
    }

    #[test]
    fn an_identical_refresh_keeps_the_age_and_a_change_resets_it() {
        let mut rib = Rib::new();
        let first = path(&mut rib, 1, PathAttributes::default());
        let learned_at = first.since;
        rib.update(prefix(), first.clone(), &info);
        let mut again = first.clone();
        again.since = learned_at + std::time::Duration::from_secs(5);
        assert_eq!(rib.update(prefix(), again, &info), None, "no change");
        assert_eq!(rib.best(&prefix()).map(|p| p.since), Some(learned_at));
        let mut changed = path(&mut rib, 1, PathAttributes::default());
        changed.label = Label::new(999).unwrap();
        changed.since = learned_at + std::time::Duration::from_secs(9);
        assert!(rib.update(prefix(), changed.clone(), &info).is_some());
        assert_eq!(rib.best(&prefix()).map(|p| p.since), Some(changed.since));
        assert_eq!(rib.iter_paths().count(), 1);
    }

    #[test]
    fn higher_local_pref_wins() {
        let mut rib = Rib::new();
        let a = path(
            &mut rib,
            1,
            PathAttributes {
                local_pref: Some(100),
                ..Default::default()
            },
        );
        let b = path(
            &mut rib,
            2,
            PathAttributes {
                local_pref: Some(200),
                ..Default::default()
            },
        );
        rib.update(prefix(), a, &info);
        let change = rib.update(prefix(), b.clone(), &info).unwrap();
        assert_eq!(change.new, Some(b));
    }

    #[test]
    fn originator_id_replaces_the_router_id_in_the_tie_break() {
        let mut rib = Rib::new();
        // Peer 1 has the lower router id, but reflects a route originated by 10.0.0.9.
        let reflected = path(
            &mut rib,
            1,
            PathAttributes {
                originator_id: Some(Ipv4Addr::new(10, 0, 0, 9)),
                ..Default::default()
            },
        );
        let direct = path(&mut rib, 2, PathAttributes::default());
        rib.update(prefix(), reflected, &info);
        rib.update(prefix(), direct.clone(), &info);
        assert_eq!(rib.best(&prefix()), Some(&direct));
    }

    #[test]
    fn shorter_cluster_list_wins_when_originators_tie() {
        let mut rib = Rib::new();
        let id = Some(Ipv4Addr::new(10, 0, 0, 9));
        let long = path(
            &mut rib,
            1,
            PathAttributes {
                originator_id: id,
                cluster_list: vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2)],
                ..Default::default()
            },
        );
        let short = path(
            &mut rib,
            2,
            PathAttributes {
                originator_id: id,
                cluster_list: vec![Ipv4Addr::new(3, 3, 3, 3)],
                ..Default::default()
            },
        );
        rib.update(prefix(), long, &info);
        rib.update(prefix(), short.clone(), &info);
        assert_eq!(rib.best(&prefix()), Some(&short));
    }

    #[test]
    fn withdrawing_the_best_promotes_the_next() {
        let mut rib = Rib::new();
        let a = path(&mut rib, 1, PathAttributes::default());
        let b = path(&mut rib, 2, PathAttributes::default());
        rib.update(prefix(), a.clone(), &info);
        assert_eq!(rib.update(prefix(), b.clone(), &info), None);
        let change = rib.withdraw(&prefix(), 1, &info).unwrap();
        assert_eq!((change.old, change.new), (Some(a), Some(b)));
        let gone = rib.withdraw(&prefix(), 2, &info).unwrap();
        assert_eq!(gone.new, None);
        assert!(rib.is_empty());
    }

    #[test]
    fn stale_paths_go_on_end_of_rib_unless_refreshed() {
        let mut rib = Rib::new();
        let other = VpnPrefix::new("65000:1".parse().unwrap(), "10.2.0.0/16".parse().unwrap());
        let a = path(&mut rib, 1, PathAttributes::default());
        rib.update(prefix(), a.clone(), &info);
        rib.update(other, a.clone(), &info);
        assert_eq!(rib.mark_stale(1), 2);
        // The peer comes back and re-announces one of the two.
        rib.update(prefix(), a, &info);
        let removed = rib.remove_stale(1, Some(Family::VPNV4), &info);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].prefix, other);
        assert_eq!(rib.len(), 1);
    }

    #[test]
    fn routes_share_interned_attributes() {
        let mut rib = Rib::new();
        let a = rib.intern(PathAttributes {
            local_pref: Some(7),
            ..Default::default()
        });
        let b = rib.intern(PathAttributes {
            local_pref: Some(7),
            ..Default::default()
        });
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(rib.attribute_sets(), 1);
    }
}
