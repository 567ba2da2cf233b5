//! VPN routes into VRFs: the one next hop per tenant and prefix the
//! data plane installs, chosen among the routes BGP learned and the
//! node's own stray host routes.
//!
//! Two nodes may advertise the same prefix in one tenant (each under its own
//! route distinguisher, RFC 4364 §4.1): the VRF holds one next hop per
//! prefix, so the candidate with the lowest (next hop, RD) wins. Every node
//! makes the same choice, and it only changes when that route goes away.
//! A route restored from before a restart (stale, RFC 4724 §4.1) gives way
//! to a fresh one. A local host route (a workload here whose address lies
//! outside the node's prefixes) wins over learned ones for the same prefix:
//! the workload is here, whatever an older advertisement from its previous
//! node says. A learned route for exactly one of the node's own prefixes
//! is refused (and counted): the node's prefix is local by definition, and
//! installing it would send the node's own workloads' traffic away.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::packet::{Family, RouteDistinguisher};
use super::policy::TenantId;
use super::speaker::RouteEvent;
use crate::packet::{Encapsulation, Label};
use crate::vrf::{InterfaceId, NextHop};

/// One route a VRF learned over BGP: a candidate for its prefix, under the
/// route distinguisher of the node that advertised it. What the agent
/// keeps across a restart and [`VrfRoutes::restore`] loads back, stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnedRoute {
    /// The tenant whose VRF imported it.
    pub tenant: TenantId,
    /// The advertiser's route distinguisher (RFC 4364 §4.1).
    pub rd: RouteDistinguisher,
    /// The destination.
    pub prefix: IpNet,
    /// The BGP next hop: the advertiser's tunnel address.
    pub next_hop: IpAddr,
    /// The label it bound to its VRF.
    pub label: Label,
    /// How packets to it are encapsulated.
    pub encap: Encapsulation,
}

/// A learned route for one tenant and prefix, from one advertiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    next_hop: IpAddr,
    label: Label,
    encap: Encapsulation,
    /// Restored from the previous run and not re-learned yet (RFC 4724
    /// §4.1): forwarded on, and swept after End-of-RIB.
    stale: bool,
}

/// The routes known for one tenant and prefix, by route distinguisher.
type Candidates = BTreeMap<[u8; 8], Candidate>;

/// A change of the next hop a VRF holds for a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VrfChange {
    /// The tenant.
    pub tenant: TenantId,
    /// The destination.
    pub prefix: IpNet,
    /// The new next hop; `None`: the route goes.
    pub next_hop: Option<NextHop>,
}

/// The one next hop per (tenant, prefix) that the VRFs hold beyond the
/// node prefixes: chosen among the routes BGP learned, unless a local
/// stray host route claims the prefix. Pure bookkeeping: each change
/// returns the [`VrfChange`] to send, if the installed next hop changed.
#[derive(Debug)]
pub struct VrfRoutes {
    own_address: IpAddr,
    learned: HashMap<(TenantId, IpNet), Candidates>,
    local: HashSet<(TenantId, IpNet)>,
    /// The node's own prefixes per tenant: never replaced by a learned route.
    own_prefixes: HashSet<(TenantId, IpNet)>,
    /// Learned routes refused because they claim an own prefix.
    refused: u64,
    /// Bumped on every change of the learned routes: the writer compares
    /// it with what it wrote last.
    generation: u64,
}

impl VrfRoutes {
    /// Empty, for a node whose tunnel address is `own_address`.
    pub fn new(own_address: IpAddr) -> VrfRoutes {
        VrfRoutes {
            own_address,
            learned: HashMap::new(),
            local: HashSet::new(),
            own_prefixes: HashSet::new(),
            refused: 0,
            generation: 0,
        }
    }

    /// The node's own prefixes (tenant, prefix): learned routes for exactly
    /// these are refused.
    pub fn with_own_prefixes(
        mut self,
        prefixes: impl IntoIterator<Item = (TenantId, IpNet)>,
    ) -> VrfRoutes {
        self.own_prefixes.extend(prefixes);
        self
    }

    /// Why a learned route is refused, if it is: it claims one of the
    /// node's own prefixes. [`VrfRoutes::learned`] ignores such routes.
    pub fn refuses(&self, event: &RouteEvent) -> Option<&'static str> {
        (event.route.is_some()
            && self
                .own_prefixes
                .contains(&(event.tenant, event.prefix.prefix)))
        .then_some("the prefix is this node's own")
    }

    /// How many learned routes were refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Loads the routes the previous run learned, as stale candidates
    /// (RFC 4724 §4.1): they are forwarded on until BGP re-learns them
    /// (then they are fresh) or [`VrfRoutes::sweep_stale`] removes them.
    /// Our own routes are skipped. Returns the next hops to install.
    pub fn restore(&mut self, routes: &[LearnedRoute]) -> Vec<VrfChange> {
        let mut changes = Vec::new();
        let own_address = self.own_address;
        let own_prefixes = self.own_prefixes.clone();
        for r in routes
            .iter()
            .filter(|r| r.next_hop != own_address && !own_prefixes.contains(&(r.tenant, r.prefix)))
        {
            let candidate = Candidate {
                next_hop: r.next_hop,
                label: r.label,
                encap: r.encap,
                stale: true,
            };
            let change = self.change((r.tenant, r.prefix), |s| {
                s.learned
                    .entry((r.tenant, r.prefix))
                    .or_default()
                    .entry(r.rd.0)
                    .or_insert(candidate);
            });
            changes.extend(change);
        }
        self.generation += 1;
        changes
    }

    /// Removes the stale candidates of `family` (None: of every family) and
    /// returns the next-hop changes: what the peers did not resend.
    pub fn sweep_stale(&mut self, family: Option<Family>) -> Vec<VrfChange> {
        let keys: Vec<(TenantId, IpNet)> = self
            .learned
            .iter()
            .filter(|(k, c)| {
                family.is_none_or(|f| Family::vpn_of(&k.1) == f) && c.values().any(|c| c.stale)
            })
            .map(|(k, _)| *k)
            .collect();
        let mut changes = Vec::new();
        for key in keys {
            let change = self.change(key, |s| {
                if let Some(candidates) = s.learned.get_mut(&key) {
                    candidates.retain(|_, c| !c.stale);
                    if candidates.is_empty() {
                        s.learned.remove(&key);
                    }
                }
            });
            changes.extend(change);
        }
        self.generation += 1;
        changes
    }

    /// Some learned route is still stale.
    pub fn has_stale(&self) -> bool {
        self.learned.values().flatten().any(|(_, c)| c.stale)
    }

    /// Every learned route (fresh and stale), for the state directory.
    pub fn learned_routes(&self) -> Vec<LearnedRoute> {
        self.learned
            .iter()
            .flat_map(|((tenant, prefix), candidates)| {
                candidates.iter().map(move |(rd, c)| LearnedRoute {
                    tenant: *tenant,
                    rd: RouteDistinguisher(*rd),
                    prefix: *prefix,
                    next_hop: c.next_hop,
                    label: c.label,
                    encap: c.encap,
                })
            })
            .collect()
    }

    /// The host addresses (/32, /128) the tenant learned routes for:
    /// workloads on other nodes, which this node's IPAM must not hand out.
    pub fn learned_hosts(&self, tenant: TenantId) -> Vec<IpAddr> {
        self.learned
            .keys()
            .filter(|(t, p)| *t == tenant && p.prefix_len() == p.max_prefix_len())
            .map(|(_, p)| p.addr())
            .collect()
    }

    /// Changes with every change of the learned routes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn installed(&self, key: &(TenantId, IpNet)) -> Option<NextHop> {
        if self.local.contains(key) {
            // The tenant's TUN: the kernel's tenant table has the host
            // route to the workload's veth.
            return Some(NextHop::Local(InterfaceId(key.0.0)));
        }
        self.learned
            .get(key)
            .and_then(|c| chosen(c, self.own_address))
    }

    fn change(
        &mut self,
        key: (TenantId, IpNet),
        edit: impl FnOnce(&mut Self),
    ) -> Option<VrfChange> {
        let before = self.installed(&key);
        edit(self);
        let after = self.installed(&key);
        (before != after).then_some(VrfChange {
            tenant: key.0,
            prefix: key.1,
            next_hop: after,
        })
    }

    /// A best-path change from BGP. A route re-learned after a restart
    /// replaces its stale copy; a withdrawal removes it, stale or not.
    pub fn learned(&mut self, event: RouteEvent) -> Option<VrfChange> {
        if self.refuses(&event).is_some() {
            self.refused += 1;
            return None;
        }
        let key = (event.tenant, event.prefix.prefix);
        self.generation += 1;
        self.change(key, |s| {
            let candidates = s.learned.entry(key).or_default();
            match event.route {
                Some(route) => candidates.insert(
                    event.prefix.rd.0,
                    Candidate {
                        next_hop: route.next_hop,
                        label: route.label,
                        encap: Encapsulation::MplsOverUdp,
                        stale: false,
                    },
                ),
                None => candidates.remove(&event.prefix.rd.0),
            };
            if candidates.is_empty() {
                s.learned.remove(&key);
            }
        })
    }

    /// A stray address of a local workload: its host route is local.
    pub fn add_local(&mut self, tenant: TenantId, address: IpAddr) -> Option<VrfChange> {
        self.change((tenant, IpNet::from(address)), |s| {
            s.local.insert((tenant, IpNet::from(address)));
        })
    }

    /// The stray address went away: a learned route for it, if any, takes over.
    pub fn remove_local(&mut self, tenant: TenantId, address: IpAddr) -> Option<VrfChange> {
        self.change((tenant, IpNet::from(address)), |s| {
            s.local.remove(&(tenant, IpNet::from(address)));
        })
    }
}

/// The next hop installed for a prefix: a fresh candidate before a stale
/// one (a route re-learned since the restart says where the prefix is now;
/// a kept one only where it was), then the lowest (next hop, RD), skipping
/// our own routes (they are local in the VRF).
fn chosen(candidates: &Candidates, own_address: IpAddr) -> Option<NextHop> {
    candidates
        .iter()
        .filter(|(_, r)| r.next_hop != own_address)
        .min_by_key(|(rd, r)| (r.stale, r.next_hop, **rd))
        .map(|(_, r)| NextHop::Tunnel {
            endpoint: r.next_hop,
            label: r.label,
            encap: r.encap,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::fixtures::{event, route, tunnel};

    #[test]
    fn a_local_stray_host_route_wins_over_a_learned_one_and_hands_back_on_removal() {
        let mut routes = VrfRoutes::new("10.255.0.11".parse().expect("address"));
        let stray: IpAddr = "10.1.9.5".parse().expect("address");
        // The pod's previous node still advertises it.
        let change = routes.learned(event(12, "10.1.9.5/32", Some(route("10.255.0.12", 17))));
        assert_eq!(change.map(|c| c.next_hop), Some(tunnel("10.255.0.12", 17)));
        // It moved here: local from now on, whatever BGP says.
        let change = routes.add_local(TenantId(1), stray).expect("a change");
        assert_eq!(change.prefix.to_string(), "10.1.9.5/32");
        assert_eq!(change.next_hop, Some(NextHop::Local(InterfaceId(1))));
        assert_eq!(
            routes.learned(event(13, "10.1.9.5/32", Some(route("10.255.0.13", 18)))),
            None,
            "a learned route does not replace a local one"
        );
        // Detached here: the learned route with the lowest next hop takes over.
        let change = routes.remove_local(TenantId(1), stray).expect("a change");
        assert_eq!(change.next_hop, tunnel("10.255.0.12", 17));
        // Our own advertisement coming back is never installed as a tunnel.
        routes.learned(event(12, "10.1.9.5/32", None));
        routes.learned(event(13, "10.1.9.5/32", None));
        assert_eq!(
            routes.learned(event(11, "10.1.9.5/32", Some(route("10.255.0.11", 16)))),
            None
        );
    }

    #[test]
    fn a_learned_route_for_an_own_prefix_is_refused_and_counted() {
        let own: IpNet = "10.1.1.0/24".parse().expect("prefix");
        let mut routes = VrfRoutes::new("10.255.0.11".parse().expect("address"))
            .with_own_prefixes([(TenantId(1), own)]);
        let claim = event(12, "10.1.1.0/24", Some(route("10.255.0.12", 17)));
        assert_eq!(
            routes.refuses(&claim),
            Some("the prefix is this node's own")
        );
        assert_eq!(routes.learned(claim), None, "not installed");
        assert_eq!(routes.refused(), 1);
        routes.learned(event(12, "10.1.1.7/32", Some(route("10.255.0.12", 17))));
        routes.learned(event(12, "fd00::7/128", Some(route("10.255.0.12", 17))));
        let mut hosts = routes.learned_hosts(TenantId(1));
        hosts.sort();
        assert_eq!(hosts.len(), 2, "host routes only: {hosts:?}");
        routes.learned(event(12, "10.1.1.7/32", None));
        routes.learned(event(12, "fd00::7/128", None));
        assert!(routes.learned_routes().is_empty(), "not kept either");
        // A withdrawal of it is not a refusal; a more specific route is fine.
        assert_eq!(routes.refuses(&event(12, "10.1.1.0/24", None)), None);
        let inside = routes.learned(event(12, "10.1.1.128/25", Some(route("10.255.0.12", 17))));
        assert_eq!(inside.map(|c| c.next_hop), Some(tunnel("10.255.0.12", 17)));
        // Nor does a restored copy come back.
        let mut kept = kept_routes();
        kept[0].prefix = own;
        let mut restarted = VrfRoutes::new("10.255.0.11".parse().expect("address"))
            .with_own_prefixes([(TenantId(1), own)]);
        let changes = restarted.restore(&kept);
        assert!(changes.iter().all(|c| c.prefix != own), "{changes:?}");
    }

    /// What gw1 learned before its restart: gw2's prefixes (IPv4 and
    /// IPv6) and a stray /32 of gw2 that was detached meanwhile.
    fn kept_routes() -> Vec<LearnedRoute> {
        let kept = |prefix: &str| LearnedRoute {
            tenant: TenantId(1),
            rd: RouteDistinguisher([0, 1, 10, 255, 0, 12, 0, 1]),
            prefix: prefix.parse().expect("prefix"),
            next_hop: "10.255.0.12".parse().expect("address"),
            label: Label::new(17).expect("label"),
            encap: Encapsulation::MplsOverUdp,
        };
        vec![
            kept("10.1.2.0/24"),
            kept("10.1.9.5/32"),
            kept("fd00:10:1:2::/64"),
        ]
    }

    #[test]
    fn restored_routes_forward_until_the_sweep_removes_what_was_not_relearned() {
        let mut routes = VrfRoutes::new("10.255.0.11".parse().expect("address"));
        let mut kept = kept_routes();
        // Our own route coming back from the file is never installed.
        kept.push(LearnedRoute {
            next_hop: "10.255.0.11".parse().expect("address"),
            prefix: "10.1.1.0/24".parse().expect("prefix"),
            ..kept[0]
        });
        let installed = routes.restore(&kept);
        assert_eq!(installed.len(), 3, "{installed:?}");
        assert!(
            installed
                .iter()
                .all(|c| c.next_hop == tunnel("10.255.0.12", 17))
        );
        assert!(routes.has_stale());

        // BGP resends the /24 (same RD): fresh now, no change in the VRF.
        assert_eq!(
            routes.learned(event(12, "10.1.2.0/24", Some(route("10.255.0.12", 17)))),
            None
        );
        // VPNv4's End-of-RIB from every neighbor: the /32 nobody resent goes,
        // the IPv6 route waits for VPNv6's marker.
        let swept = routes.sweep_stale(Some(Family::VPNV4));
        assert_eq!(swept.len(), 1, "{swept:?}");
        assert_eq!(swept[0].prefix.to_string(), "10.1.9.5/32");
        assert_eq!(swept[0].next_hop, None);
        assert!(routes.has_stale(), "the IPv6 route is still stale");
        let swept = routes.sweep_stale(None);
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].prefix.to_string(), "fd00:10:1:2::/64");
        assert!(!routes.has_stale());
        // What is left is what BGP re-learned.
        let left: Vec<String> = routes
            .learned_routes()
            .iter()
            .map(|r| r.prefix.to_string())
            .collect();
        assert_eq!(left, ["10.1.2.0/24"]);
        assert!(
            routes.sweep_stale(None).is_empty(),
            "a second sweep is a no-op"
        );
    }

    #[test]
    fn a_withdrawal_while_stale_removes_the_route_at_once() {
        let mut routes = VrfRoutes::new("10.255.0.11".parse().expect("address"));
        routes.restore(&kept_routes());
        let change = routes
            .learned(event(12, "10.1.2.0/24", None))
            .expect("a change");
        assert_eq!(change.next_hop, None);
        // Re-learned, then withdrawn: gone, no stale copy comes back.
        routes.learned(event(12, "10.1.9.5/32", Some(route("10.255.0.12", 17))));
        let change = routes
            .learned(event(12, "10.1.9.5/32", None))
            .expect("a change");
        assert_eq!(change.next_hop, None);
        // A fresh route under another RD wins over the stale one at once
        // (the prefix moved while this agent was away); the sweep then
        // only forgets the stale candidate.
        let v6 = routes
            .learned(event(
                13,
                "fd00:10:1:2::/64",
                Some(route("10.255.0.13", 18)),
            ))
            .expect("a change");
        assert_eq!(
            v6.next_hop,
            tunnel("10.255.0.13", 18),
            "fresh beats the stale 10.255.0.12 candidate"
        );
        assert_eq!(routes.sweep_stale(None), Vec::new());
    }

    #[test]
    fn local_host_route_without_learned_ones_goes_with_the_workload() {
        let mut routes = VrfRoutes::new("10.255.0.11".parse().expect("address"));
        let v6: IpAddr = "fd00:9::5".parse().expect("address");
        let added = routes.add_local(TenantId(2), v6).expect("a change");
        assert_eq!(added.prefix.to_string(), "fd00:9::5/128");
        assert_eq!(routes.add_local(TenantId(2), v6), None, "idempotent");
        let removed = routes.remove_local(TenantId(2), v6).expect("a change");
        assert_eq!(removed.next_hop, None);
        assert_eq!(routes.remove_local(TenantId(2), v6), None, "idempotent");
    }

    #[test]
    fn the_same_prefix_under_two_rds_picks_the_lowest_next_hop_and_skips_our_own() {
        let own: IpAddr = "10.255.0.2".parse().expect("address");
        let route = |next_hop: &str, label: u32| Candidate {
            next_hop: next_hop.parse().expect("address"),
            label: Label::new(label).expect("label"),
            encap: Encapsulation::MplsOverUdp,
            stale: false,
        };
        let mut c = Candidates::new();
        c.insert([0, 1, 10, 255, 0, 3, 0, 1], route("10.255.0.3", 100));
        c.insert([0, 1, 10, 255, 0, 2, 0, 1], route("10.255.0.2", 200));
        c.insert([0, 1, 10, 255, 0, 4, 0, 1], route("10.255.0.4", 300));
        let Some(NextHop::Tunnel {
            endpoint, label, ..
        }) = chosen(&c, own)
        else {
            panic!("a tunnel next hop");
        };
        assert_eq!(
            (endpoint.to_string(), label.value()),
            ("10.255.0.3".into(), 100)
        );
        c.clear();
        c.insert([0, 1, 10, 255, 0, 2, 0, 1], route("10.255.0.2", 200));
        assert_eq!(chosen(&c, own), None);
    }
}
