//! Received UPDATEs into the RIB (RFC 4456 §8 loop check, RFC 7606
//! treat-as-withdraw, End-of-RIB), and best-path changes out to the
//! tenants that import them.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use super::{ImportedRoute, NeighborId, Output, RouteEvent, Speaker, source_of};
use crate::bgp::packet::{ErrorAction, Update, VpnNlri};
use crate::bgp::rib::{BestChange, LOCAL, Path};

impl Speaker {
    pub(super) fn apply_update(&mut self, peer: NeighborId, update: Box<Update>, now: Instant) {
        let i = usize::from(peer.0);
        let source = source_of(peer);
        let info = self.source_info();
        let Some(n) = self.peers[i].up.as_ref() else {
            return;
        };
        let families = n.families.clone();
        if let Some(family) = update.end_of_rib {
            if self.peers[i].stale_families.contains(&family) {
                self.peers[i].stale_families.retain(|f| *f != family);
                if self.peers[i].stale_families.is_empty() {
                    self.peers[i].stale_until = None;
                }
                for c in self.rib.remove_stale(source, Some(family), &info) {
                    self.best_changed(c, now);
                }
            }
            if !self.peers[i].eor_received.contains(&family) {
                self.peers[i].eor_received.push(family);
            }
            self.outputs.push_back(Output::EndOfRib { peer, family });
            self.check_deferral(now);
            return;
        }
        for w in &update.withdrawn {
            if let Some(c) = self.rib.withdraw(&w.prefix, source, &info) {
                self.best_changed(c, now);
            }
        }
        if update.announced.is_empty() {
            return;
        }
        // The real 4-octet path from a 2-octet speaker (RFC 6793 §4.2.3),
        // before the loop check reads it.
        let mut update = update;
        let four_octet = self.peers[i]
            .up
            .as_ref()
            .is_none_or(|n| n.context.four_octet_as);
        crate::bgp::as4::apply(&mut update.attributes, four_octet);
        let attrs = &update.attributes;
        let ebgp = self.is_ebgp(i);
        // RFC 4456 §8: a route we originated or already reflected is a loop;
        // RFC 4271 §9.1.2: so is one from another AS with ours in its path.
        let looped = attrs.originator_id == Some(self.config.router_id)
            || self
                .config
                .cluster_id
                .is_some_and(|id| attrs.cluster_list.contains(&id))
            || (ebgp
                && attrs
                    .as_path
                    .iter()
                    .any(|s| s.asns.contains(&self.config.local_as)));
        // RFC 4271 §6.3: our own address as next hop is semantically wrong;
        // the routes are ignored (withdrawn if held), the session stays.
        let own_next_hop = attrs.next_hop == Some(self.config.next_hop);
        if update.treat_as_withdraw.is_some() || looped || own_next_hop || attrs.next_hop.is_none()
        {
            for a in &update.announced {
                if let Some(c) = self.rib.withdraw(&a.prefix, source, &info) {
                    self.best_changed(c, now);
                }
            }
            return;
        }
        let Update {
            announced,
            mut attributes,
            ..
        } = *update;
        if ebgp {
            // LOCAL_PREF is ours to set (RFC 4271 §5.1.5); the reflection
            // attributes never cross an AS boundary (RFC 4456 §8).
            attributes.local_pref = None;
            attributes.originator_id = None;
            attributes.cluster_list.clear();
        }
        let shared = self.rib.intern(attributes);
        for VpnNlri { prefix, label } in announced {
            if !families.contains(&prefix.family()) {
                continue;
            }
            let path = Path {
                attrs: shared.clone(),
                label,
                source,
                stale: false,
                since: now,
            };
            if let Some(c) = self.rib.update(prefix, path, &info) {
                self.best_changed(c, now);
            }
        }
    }

    /// Reports an UPDATE whose fault was handled without a reset, with the
    /// routes it announced and the whole `message` (RFC 7606 §6).
    pub(super) fn report_malformed(&mut self, peer: NeighborId, update: &Update, message: &[u8]) {
        let (reason, action) = match (&update.treat_as_withdraw, update.discarded.first()) {
            (Some(e), _) => (e.clone(), ErrorAction::TreatAsWithdraw),
            (None, Some(e)) => (e.clone(), ErrorAction::AttributeDiscard),
            (None, None) => return,
        };
        self.outputs.push_back(Output::MalformedUpdate {
            peer,
            reason,
            action,
            routes: update.announced.iter().map(|n| n.prefix).collect(),
            message: message.to_vec(),
        });
    }

    /// Reports a best-path change to the tenants and queues it for peers.
    pub(super) fn best_changed(&mut self, change: BestChange, now: Instant) {
        let BestChange { prefix, old, new } = change;
        // Route events: learned routes only (the agent knows its own).
        let learned = |p: &Option<Path>| p.as_ref().filter(|p| p.source != LOCAL).cloned();
        let (old_l, new_l) = (learned(&old), learned(&new));
        let same_route = match (&old_l, &new_l) {
            (Some(a), Some(b)) => a.label == b.label && Arc::ptr_eq(&a.attrs, &b.attrs),
            _ => false,
        };
        if !same_route {
            let new_tenants = new_l
                .as_ref()
                .map(|p| self.policy.importers(&p.attrs))
                .unwrap_or_default();
            if let Some(o) = &old_l {
                for t in self.policy.importers(&o.attrs) {
                    if !new_tenants.contains(&t) {
                        self.outputs.push_back(Output::Route(RouteEvent {
                            tenant: t,
                            prefix,
                            route: None,
                        }));
                    }
                }
            }
            if let Some(nw) = &new_l {
                for t in new_tenants {
                    self.outputs.push_back(Output::Route(RouteEvent {
                        tenant: t,
                        prefix,
                        route: Some(imported(nw)),
                    }));
                }
            }
        }
        self.queue_for_peers(prefix, new.as_ref().map(|p| p.source), now);
    }
}

pub(super) fn imported(p: &Path) -> ImportedRoute {
    ImportedRoute {
        next_hop: p
            .attrs
            .next_hop
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        label: p.label,
        attributes: p.attrs.clone(),
    }
}
