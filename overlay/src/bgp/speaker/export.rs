//! The Adj-RIB-Out: which neighbors get a best-path change, the route
//! reflection rules (RFC 4456 §6), and UPDATE bursts at most once per
//! MRAI (RFC 4271 §9.2.1.1).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use super::{NeighborId, Speaker, source_of};
use crate::bgp::packet::attribute::{AS_SEQUENCE, AsSegment};
use crate::bgp::packet::message::encode_end_of_rib;
use crate::bgp::packet::{PathAttributes, UpdateEncoder, VpnNlri, VpnPrefix};
use crate::bgp::rib::{LOCAL, Path, Source};

pub(super) type ReflectedCache =
    HashMap<(usize, Ipv4Addr), (Arc<PathAttributes>, Arc<PathAttributes>)>;

/// What an external peer gets for an attribute set, by the set's address
/// (the source `Arc` is held so the address is not reused meanwhile).
pub(super) type ExternalCache = HashMap<usize, (Arc<PathAttributes>, Arc<PathAttributes>)>;

impl Speaker {
    /// Queues a best-path change for the neighbors that may get the new
    /// path (`new_source`) or had the old one.
    pub(super) fn queue_for_peers(
        &mut self,
        prefix: VpnPrefix,
        new_source: Option<Source>,
        now: Instant,
    ) {
        let reflector = self.config.cluster_id.is_some();
        let mrai = self.config.mrai;
        let from_ebgp = new_source
            .filter(|s| *s != LOCAL)
            .is_some_and(|s| self.is_ebgp(usize::from(s) - 1));
        let ebgp: Vec<bool> = (0..self.peers.len()).map(|i| self.is_ebgp(i)).collect();
        for (i, p) in self.peers.iter_mut().enumerate() {
            if p.up.is_none() {
                continue;
            }
            // Every route goes to an external peer and every route from
            // one to everyone; between internal peers only our own and,
            // as a reflector, reflected ones.
            let may_get = new_source.is_some_and(|s| {
                s == LOCAL
                    || (s != source_of(NeighborId(i as u16)) && (reflector || ebgp[i] || from_ebgp))
            });
            if may_get || p.sent.contains(&prefix) {
                p.pending.insert(prefix);
                let allowed = p.last_flush.map_or(now, |t| (t + mrai).max(now));
                p.next_flush.get_or_insert(allowed);
            }
        }
    }

    /// What peer `to` should have for a best path, if anything (RFC 4456 §6
    /// reflection rules; our own routes go to everyone).
    pub(super) fn export_for(&mut self, to: usize, best: &Path) -> Option<Arc<PathAttributes>> {
        if best.source != LOCAL && usize::from(best.source) - 1 == to {
            return None;
        }
        if self.is_ebgp(to) {
            return Some(self.external(best));
        }
        if best.source == LOCAL {
            return Some(best.attrs.clone());
        }
        // From an external peer to an internal one: as learned, with the
        // LOCAL_PREF every internal peer expects (RFC 4271 §5.1.5).
        if self.is_ebgp(usize::from(best.source) - 1) {
            if best.attrs.local_pref.is_some() {
                return Some(best.attrs.clone());
            }
            let mut attrs = (*best.attrs).clone();
            attrs.local_pref = Some(100);
            return Some(self.rib.intern(attrs));
        }
        let cluster_id = self.config.cluster_id?;
        let from = usize::from(best.source) - 1;
        if from == to {
            return None;
        }
        let from_client = self.peers.get(from).is_some_and(|p| p.config.rr_client);
        let to_client = self.peers[to].config.rr_client;
        // §6: from a client to everyone; from a non-client to clients only.
        if !from_client && !to_client {
            return None;
        }
        let originator = best
            .attrs
            .originator_id
            .or(self.peers.get(from).and_then(|p| p.router_id))?;
        // Do not send a route back to the router that originated it.
        if self.peers[to].router_id == Some(originator) {
            return None;
        }
        let key = (Arc::as_ptr(&best.attrs) as usize, originator);
        if let Some((_, a)) = self.reflected.get(&key) {
            return Some(a.clone());
        }
        let mut attrs = (*best.attrs).clone();
        attrs.originator_id = Some(originator);
        attrs.cluster_list.insert(0, cluster_id);
        let a = self.rib.intern(attrs);
        if self.reflected.len() > 4096 {
            self.reflected.clear();
        }
        self.reflected.insert(key, (best.attrs.clone(), a.clone()));
        Some(a)
    }

    /// A path as an external peer gets it (RFC 4271 §5.1): our AS first
    /// in AS_PATH, next hop self, no LOCAL_PREF, no MED learned from
    /// another peer, no reflection attributes. Interned and cached per
    /// attribute set, so a full table costs one copy per set.
    fn external(&mut self, best: &Path) -> Arc<PathAttributes> {
        let key = Arc::as_ptr(&best.attrs) as usize;
        if let Some((_, a)) = self.external_cache.get(&key) {
            return a.clone();
        }
        let mut attrs = (*best.attrs).clone();
        match attrs.as_path.first_mut() {
            Some(seg) if seg.kind == AS_SEQUENCE && seg.asns.len() < 255 => {
                seg.asns.insert(0, self.config.local_as);
            }
            _ => attrs.as_path.insert(
                0,
                AsSegment {
                    kind: AS_SEQUENCE,
                    asns: vec![self.config.local_as],
                },
            ),
        }
        attrs.next_hop = Some(self.config.next_hop);
        attrs.local_pref = None;
        if best.source != LOCAL {
            attrs.med = None;
        }
        attrs.originator_id = None;
        attrs.cluster_list.clear();
        let a = self.rib.intern(attrs);
        if self.external_cache.len() > 4096 {
            self.external_cache.clear();
        }
        self.external_cache
            .insert(key, (best.attrs.clone(), a.clone()));
        a
    }

    /// Sends pending UPDATEs to every peer whose MRAI allows it.
    pub(super) fn flush_due(&mut self, now: Instant) {
        if self.deferral.is_deferring() {
            // RFC 4724 §4.1: a restarting speaker sends nothing until its
            // selection is complete; the pending sets keep growing.
            return;
        }
        for i in 0..self.peers.len() {
            let p = &self.peers[i];
            if p.next_flush.is_none_or(|t| t > now) || p.up.is_none() {
                continue;
            }
            self.flush_peer(i, now);
        }
    }

    pub(super) fn flush_peer(&mut self, i: usize, now: Instant) {
        let Some(n) = self.peers[i].up.clone() else {
            return;
        };
        let Some(conn) = self.peers[i].conn else {
            return;
        };
        let pending: Vec<VpnPrefix> = self.peers[i].pending.drain().collect();
        self.peers[i].next_flush = None;
        let mut withdrawals = Vec::new();
        let mut announcements: Vec<(Arc<PathAttributes>, VpnNlri)> = Vec::new();
        for prefix in pending {
            let best = self.rib.best(&prefix).cloned();
            match best.and_then(|b| self.export_for(i, &b).map(|a| (a, b.label))) {
                Some((attrs, label)) => {
                    announcements.push((attrs, VpnNlri { prefix, label }));
                    self.peers[i].sent.insert(prefix);
                }
                None => {
                    if self.peers[i].sent.remove(&prefix) {
                        withdrawals.push(prefix);
                    }
                }
            }
        }
        // Group by attribute set and family so each UPDATE carries many routes.
        announcements.sort_by_key(|(a, nlri)| (Arc::as_ptr(a) as usize, nlri.prefix.family()));
        withdrawals.sort_by_key(|p| p.family());
        let mut enc = UpdateEncoder::new(n.context);
        let mut bytes = Vec::new();
        for prefix in &withdrawals {
            enc.withdraw(prefix, &mut bytes);
        }
        for (attrs, nlri) in &announcements {
            if let Some(nh) = attrs.next_hop {
                enc.announce(attrs, nh, nlri, &mut bytes);
            }
        }
        enc.flush(&mut bytes);
        // End-of-RIB after the initial dump (RFC 4724 §4.1 asks it of a
        // restarting speaker; we always send it, it costs nothing).
        for family in std::mem::take(&mut self.peers[i].eor_due) {
            encode_end_of_rib(family, &mut bytes);
        }
        if !bytes.is_empty() {
            self.send(NeighborId(i as u16), conn, bytes, now);
            self.peers[i].last_flush = Some(now);
        }
    }
}
