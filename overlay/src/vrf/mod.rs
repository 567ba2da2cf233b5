//! Per-tenant routing tables (VRFs) with longest-prefix match, their next
//! hops, and the incoming label table.
//!
//! A [`Vrf`] holds one tenant's IPv4 and IPv6 routes in two
//! `prefix_trie::PrefixMap`s; [`Vrfs`] is the node's set of them, keyed by
//! [`TenantId`], together with the [`LabelTable`] that maps a received VRF
//! label back to its tenant. Lookups take `&self` and allocate nothing; a
//! forwarder thread can own a `Vrfs` (or a snapshot of one) outright.
//!
//! Route changes go into the tries; [`Vrf::commit`] then compiles them into
//! a poptrie forwarding table, which lookups use while it is current (until
//! the next change they fall back to the tries, so a lookup is never wrong).
//! The agent commits once per batch of changes (a BGP UPDATE burst, an
//! attach), not per route.

mod fib;
mod labels;
mod next_hop;

pub use crate::tenant::TenantId;
pub use labels::LabelTable;
pub use next_hop::{InterfaceId, NextHop};

use crate::packet::Label;
use fib::{Entry, NO_ROUTE, Poptrie};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use thiserror::Error;

/// Why a VRF or label change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum VrfError {
    /// Labels 0-15 are reserved (RFC 3032 §2.1) and cannot name a VRF.
    #[error("label {0} is reserved (0-15) and cannot name a VRF")]
    ReservedLabel(Label),
    /// The label already selects another tenant's VRF.
    #[error("label {label} is already bound to tenant {tenant}")]
    LabelInUse {
        /// The label asked for.
        label: Label,
        /// The tenant that holds it.
        tenant: TenantId,
    },
    /// The tenant already has a VRF.
    #[error("tenant {0} already has a VRF")]
    TenantExists(TenantId),
}

/// One tenant's routing table.
#[derive(Debug, Clone)]
pub struct Vrf {
    tenant: TenantId,
    label: Label,
    v4: PrefixMap<Ipv4Net, NextHop>,
    v6: PrefixMap<Ipv6Net, NextHop>,
    /// The compiled forwarding table; `None` when a change came after it.
    fib: Option<Box<Fib>>,
}

/// A VRF's routes compiled for lookup.
#[derive(Debug, Clone)]
struct Fib {
    v4: Poptrie<u32>,
    v6: Poptrie<u128>,
    /// Distinct next hops; the poptries hold indices into this.
    next_hops: Vec<NextHop>,
}

impl Fib {
    fn next_hop(&self, index: u32) -> Option<&NextHop> {
        if index == NO_ROUTE {
            None
        } else {
            self.next_hops.get(index as usize)
        }
    }
}

impl Vrf {
    /// An empty VRF for `tenant`, reached from other nodes with `label`.
    pub fn new(tenant: TenantId, label: Label) -> Result<Vrf, VrfError> {
        if label.is_reserved() {
            return Err(VrfError::ReservedLabel(label));
        }
        Ok(Vrf {
            tenant,
            label,
            v4: PrefixMap::new(),
            v6: PrefixMap::new(),
            fib: None,
        })
    }

    /// Compiles the routes into the forwarding table that lookups use until
    /// the next change. Costs time linear in the number of routes (tens of
    /// milliseconds for 100k), so call it once per batch of changes.
    pub fn commit(&mut self) {
        let mut next_hops: Vec<NextHop> = Vec::new();
        let mut index_of: HashMap<NextHop, u32> = HashMap::new();
        let mut intern = |nh: &NextHop| -> u32 {
            *index_of.entry(*nh).or_insert_with(|| {
                next_hops.push(*nh);
                (next_hops.len() - 1) as u32
            })
        };
        let v4: Vec<Entry<u32>> = self
            .v4
            .iter()
            .map(|(p, nh)| Entry {
                key: u32::from(p.network()),
                len: u32::from(p.prefix_len()),
                value: intern(nh),
            })
            .collect();
        let v6: Vec<Entry<u128>> = self
            .v6
            .iter()
            .map(|(p, nh)| Entry {
                key: u128::from(p.network()),
                len: u32::from(p.prefix_len()),
                value: intern(nh),
            })
            .collect();
        self.fib = Some(Box::new(Fib {
            v4: Poptrie::build(&v4),
            v6: Poptrie::build(&v6),
            next_hops,
        }));
    }

    /// True when lookups use a forwarding table compiled after the last change.
    pub fn is_committed(&self) -> bool {
        self.fib.is_some()
    }

    /// Bytes the compiled forwarding table takes (0 when not committed).
    pub fn forwarding_table_memory(&self) -> usize {
        self.fib.as_ref().map_or(0, |f| {
            f.v4.memory() + f.v6.memory() + f.next_hops.len() * std::mem::size_of::<NextHop>()
        })
    }

    /// The tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The label other nodes put on packets for this VRF.
    pub fn label(&self) -> Label {
        self.label
    }

    /// Adds or replaces the route for `prefix` (host bits are cleared:
    /// 10.1.2.3/24 is 10.1.2.0/24); returns the next hop it replaced.
    pub fn insert(&mut self, prefix: IpNet, next_hop: NextHop) -> Option<NextHop> {
        self.fib = None;
        match prefix.trunc() {
            IpNet::V4(p) => self.v4.insert(p, next_hop),
            IpNet::V6(p) => self.v6.insert(p, next_hop),
        }
    }

    /// Removes the route for exactly `prefix`, returning its next hop.
    pub fn remove(&mut self, prefix: &IpNet) -> Option<NextHop> {
        self.fib = None;
        match prefix.trunc() {
            IpNet::V4(p) => self.v4.remove(&p),
            IpNet::V6(p) => self.v6.remove(&p),
        }
    }

    /// The route for exactly `prefix` (no longest-prefix match).
    pub fn get(&self, prefix: &IpNet) -> Option<&NextHop> {
        match prefix.trunc() {
            IpNet::V4(p) => self.v4.get(&p),
            IpNet::V6(p) => self.v6.get(&p),
        }
    }

    /// The next hop of the longest prefix containing `destination`.
    #[inline]
    pub fn lookup(&self, destination: IpAddr) -> Option<&NextHop> {
        match destination {
            IpAddr::V4(a) => self.lookup_v4(a),
            IpAddr::V6(a) => self.lookup_v6(a),
        }
    }

    /// [`Vrf::lookup`] for an IPv4 destination.
    #[inline]
    pub fn lookup_v4(&self, destination: Ipv4Addr) -> Option<&NextHop> {
        if let Some(fib) = &self.fib {
            return fib.next_hop(fib.v4.lookup(u32::from(destination)));
        }
        self.v4
            .get_lpm(&Ipv4Net::from(destination))
            .map(|(_, nh)| nh)
    }

    /// [`Vrf::lookup`] for an IPv6 destination.
    #[inline]
    pub fn lookup_v6(&self, destination: Ipv6Addr) -> Option<&NextHop> {
        if let Some(fib) = &self.fib {
            return fib.next_hop(fib.v6.lookup(u128::from(destination)));
        }
        self.v6
            .get_lpm(&Ipv6Net::from(destination))
            .map(|(_, nh)| nh)
    }

    /// The longest matching prefix together with its next hop.
    pub fn lookup_route(&self, destination: IpAddr) -> Option<(IpNet, &NextHop)> {
        match destination {
            IpAddr::V4(a) => self
                .v4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(p, nh)| (IpNet::V4(p), nh)),
            IpAddr::V6(a) => self
                .v6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(p, nh)| (IpNet::V6(p), nh)),
        }
    }

    /// Every route, IPv4 first, each family in prefix order.
    pub fn routes(&self) -> impl Iterator<Item = (IpNet, &NextHop)> + '_ {
        let v4 = self.v4.iter().map(|(p, nh)| (IpNet::V4(p), nh));
        let v6 = self.v6.iter().map(|(p, nh)| (IpNet::V6(p), nh));
        v4.chain(v6)
    }

    /// Number of routes, both families.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when the VRF has no route.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every route whose next hop matches `pred` (a withdrawn BGP
    /// peer's routes, a detached interface's); returns how many.
    pub fn remove_where(&mut self, mut pred: impl FnMut(&NextHop) -> bool) -> usize {
        self.fib = None;
        let before = self.len();
        self.v4.retain(|_, nh| !pred(nh));
        self.v6.retain(|_, nh| !pred(nh));
        before - self.len()
    }
}

/// The node's VRFs, keyed by tenant, and the incoming label table.
#[derive(Debug, Clone, Default)]
pub struct Vrfs {
    by_tenant: HashMap<TenantId, Vrf>,
    labels: LabelTable,
}

impl Vrfs {
    /// No VRF.
    pub fn new() -> Vrfs {
        Vrfs::default()
    }

    /// Adds a VRF and binds its label. Refuses a second VRF for a tenant
    /// and a label already bound to another tenant; changes nothing then.
    pub fn add(&mut self, vrf: Vrf) -> Result<&mut Vrf, VrfError> {
        let tenant = vrf.tenant;
        if self.by_tenant.contains_key(&tenant) {
            return Err(VrfError::TenantExists(tenant));
        }
        self.labels.bind(vrf.label, tenant)?;
        Ok(self.by_tenant.entry(tenant).or_insert(vrf))
    }

    /// Creates an empty VRF; see [`Vrfs::add`].
    pub fn create(&mut self, tenant: TenantId, label: Label) -> Result<&mut Vrf, VrfError> {
        self.add(Vrf::new(tenant, label)?)
    }

    /// Removes a tenant's VRF and unbinds its label.
    pub fn remove(&mut self, tenant: TenantId) -> Option<Vrf> {
        let vrf = self.by_tenant.remove(&tenant)?;
        self.labels.unbind(vrf.label);
        Some(vrf)
    }

    /// A tenant's VRF.
    #[inline]
    pub fn get(&self, tenant: TenantId) -> Option<&Vrf> {
        self.by_tenant.get(&tenant)
    }

    /// A tenant's VRF, to change its routes.
    pub fn get_mut(&mut self, tenant: TenantId) -> Option<&mut Vrf> {
        self.by_tenant.get_mut(&tenant)
    }

    /// The VRF a received label selects.
    #[inline]
    pub fn by_label(&self, label: Label) -> Option<&Vrf> {
        self.labels
            .tenant(label)
            .and_then(|t| self.by_tenant.get(&t))
    }

    /// The incoming label table.
    pub fn labels(&self) -> &LabelTable {
        &self.labels
    }

    /// Commits every VRF that changed since its last commit.
    pub fn commit_changed(&mut self) {
        for vrf in self.by_tenant.values_mut().filter(|v| !v.is_committed()) {
            vrf.commit();
        }
    }

    /// Every VRF, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Vrf> + '_ {
        self.by_tenant.values()
    }

    /// Number of VRFs.
    pub fn len(&self) -> usize {
        self.by_tenant.len()
    }

    /// True when there is no VRF.
    pub fn is_empty(&self) -> bool {
        self.by_tenant.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Encapsulation;

    fn label(v: u32) -> Label {
        Label::for_vrf(v).unwrap()
    }

    fn tunnel(endpoint: &str, l: u32) -> NextHop {
        NextHop::Tunnel {
            endpoint: endpoint.parse().unwrap(),
            label: label(l),
            encap: Encapsulation::MplsOverUdp,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_in_both_families() {
        let mut vrf = Vrf::new(TenantId(1), label(100)).unwrap();
        vrf.insert(net("0.0.0.0/0"), NextHop::Discard);
        vrf.insert(net("10.1.0.0/16"), tunnel("100.64.0.2", 200));
        vrf.insert(net("10.1.2.3/32"), NextHop::Local(InterfaceId(7)));
        vrf.insert(net("fd00::/8"), tunnel("fd99::2", 300));
        vrf.insert(net("fd00:1::/32"), NextHop::Local(InterfaceId(8)));

        assert_eq!(
            vrf.lookup(ip("10.1.2.3")),
            Some(&NextHop::Local(InterfaceId(7)))
        );
        assert_eq!(vrf.lookup(ip("10.1.2.4")), Some(&tunnel("100.64.0.2", 200)));
        assert_eq!(vrf.lookup(ip("192.0.2.1")), Some(&NextHop::Discard));
        assert_eq!(
            vrf.lookup(ip("fd00:1::5")),
            Some(&NextHop::Local(InterfaceId(8)))
        );
        assert_eq!(vrf.lookup(ip("fd00:2::5")), Some(&tunnel("fd99::2", 300)));
        assert_eq!(vrf.lookup(ip("2001:db8::1")), None);
        assert_eq!(
            vrf.lookup_route(ip("10.1.9.9")),
            Some((net("10.1.0.0/16"), &tunnel("100.64.0.2", 200)))
        );
        assert_eq!(vrf.len(), 5);
    }

    #[test]
    fn host_bits_are_ignored_and_remove_restores_the_shorter_route() {
        let mut vrf = Vrf::new(TenantId(1), label(100)).unwrap();
        vrf.insert(net("10.0.0.0/8"), tunnel("100.64.0.2", 200));
        assert_eq!(vrf.insert(net("10.1.2.3/24"), NextHop::Discard), None);
        assert_eq!(vrf.get(&net("10.1.2.0/24")), Some(&NextHop::Discard));
        assert_eq!(vrf.lookup(ip("10.1.2.200")), Some(&NextHop::Discard));
        assert_eq!(vrf.remove(&net("10.1.2.0/24")), Some(NextHop::Discard));
        assert_eq!(
            vrf.lookup(ip("10.1.2.200")),
            Some(&tunnel("100.64.0.2", 200))
        );
        assert_eq!(vrf.remove(&net("10.1.2.0/24")), None);
    }

    #[test]
    fn insert_replaces_and_returns_the_old_next_hop() {
        let mut vrf = Vrf::new(TenantId(1), label(100)).unwrap();
        assert_eq!(vrf.insert(net("10.0.0.0/8"), NextHop::Discard), None);
        assert_eq!(
            vrf.insert(net("10.0.0.0/8"), tunnel("100.64.0.3", 17)),
            Some(NextHop::Discard)
        );
        assert_eq!(
            vrf.routes().collect::<Vec<_>>(),
            [(net("10.0.0.0/8"), &tunnel("100.64.0.3", 17))]
        );
    }

    #[test]
    fn remove_where_drops_a_withdrawn_peers_routes() {
        let mut vrf = Vrf::new(TenantId(1), label(100)).unwrap();
        vrf.insert(net("10.1.0.0/16"), tunnel("100.64.0.2", 200));
        vrf.insert(net("10.2.0.0/16"), tunnel("100.64.0.3", 200));
        vrf.insert(net("fd00::/16"), tunnel("100.64.0.2", 201));
        let gone = vrf.remove_where(
            |nh| matches!(nh, NextHop::Tunnel { endpoint, .. } if *endpoint == ip("100.64.0.2")),
        );
        assert_eq!(gone, 2);
        assert_eq!(vrf.lookup(ip("10.2.0.1")), Some(&tunnel("100.64.0.3", 200)));
        assert_eq!(vrf.lookup(ip("10.1.0.1")), None);
    }

    #[test]
    fn tenants_with_overlapping_prefixes_stay_apart() {
        let mut vrfs = Vrfs::new();
        vrfs.create(TenantId(1), label(100))
            .unwrap()
            .insert(net("10.0.0.0/24"), NextHop::Local(InterfaceId(1)));
        vrfs.create(TenantId(2), label(101))
            .unwrap()
            .insert(net("10.0.0.0/24"), NextHop::Local(InterfaceId(2)));
        let via = |l| {
            vrfs.by_label(label(l))
                .and_then(|v| v.lookup(ip("10.0.0.5")))
        };
        assert_eq!(via(100), Some(&NextHop::Local(InterfaceId(1))));
        assert_eq!(via(101), Some(&NextHop::Local(InterfaceId(2))));
        assert!(vrfs.by_label(label(102)).is_none());
    }

    #[test]
    fn reserved_duplicate_and_taken_labels_are_refused() {
        let mut vrfs = Vrfs::new();
        let reserved = Label::new(3).unwrap();
        assert_eq!(
            Vrf::new(TenantId(1), reserved).map(|_| ()),
            Err(VrfError::ReservedLabel(reserved))
        );
        vrfs.create(TenantId(1), label(100)).unwrap();
        assert_eq!(
            vrfs.create(TenantId(1), label(200)).map(|_| ()),
            Err(VrfError::TenantExists(TenantId(1)))
        );
        assert_eq!(
            vrfs.create(TenantId(2), label(100)).map(|_| ()),
            Err(VrfError::LabelInUse {
                label: label(100),
                tenant: TenantId(1)
            })
        );
        assert_eq!(vrfs.len(), 1);
        assert_eq!(vrfs.labels().len(), 1);
    }

    #[test]
    fn removing_a_vrf_frees_its_label() {
        let mut vrfs = Vrfs::new();
        vrfs.create(TenantId(1), label(100)).unwrap();
        assert!(vrfs.remove(TenantId(1)).is_some());
        assert_eq!(vrfs.labels().tenant(label(100)), None);
        vrfs.create(TenantId(2), label(100)).unwrap();
        assert_eq!(
            vrfs.by_label(label(100)).map(Vrf::tenant),
            Some(TenantId(2))
        );
    }

    /// xorshift64*, for reproducible random tables.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    /// Addresses worth asking about a prefix: its first and last address
    /// and their neighbours outside it.
    fn probes(net: &IpNet) -> Vec<IpAddr> {
        match net {
            IpNet::V4(n) => {
                let (a, b) = (u32::from(n.network()), u32::from(n.broadcast()));
                [a, b, a.wrapping_sub(1), b.wrapping_add(1)]
                    .map(|x| IpAddr::V4(Ipv4Addr::from(x)))
                    .to_vec()
            }
            IpNet::V6(n) => {
                let (a, b) = (u128::from(n.network()), u128::from(n.broadcast()));
                [a, b, a.wrapping_sub(1), b.wrapping_add(1)]
                    .map(|x| IpAddr::V6(Ipv6Addr::from(x)))
                    .to_vec()
            }
        }
    }

    #[test]
    fn compiled_table_answers_as_the_trie_on_random_tables() {
        for seed in 1..=6u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut vrf = Vrf::new(TenantId(1), label(100)).unwrap();
            let mut nets = Vec::new();
            for i in 0..3000u32 {
                let r = rng.next();
                // Cluster the keys so that prefixes nest: few distinct top bytes.
                let net = if i % 2 == 0 {
                    let addr = Ipv4Addr::from(((r >> 32) as u32 & 0x0f0f_ffff) | 0x0a00_0000);
                    IpNet::V4(Ipv4Net::new(addr, (r % 33) as u8).unwrap())
                } else {
                    let hi = u128::from(rng.next() & 0x0f0f_0000_ffff_ffff) << 64;
                    let addr =
                        Ipv6Addr::from(0x2001_0db8u128 << 96 | hi >> 32 | u128::from(rng.next()));
                    IpNet::V6(Ipv6Net::new(addr, (r % 129) as u8).unwrap())
                };
                let nh = if r % 7 == 0 {
                    NextHop::Discard
                } else {
                    NextHop::Local(InterfaceId((r % 5) as u32))
                };
                vrf.insert(net, nh);
                nets.push(net.trunc());
            }
            let trie = vrf.clone();
            vrf.commit();
            assert!(vrf.is_committed() && !trie.is_committed());
            let mut asked = 0;
            for net in &nets {
                for a in probes(net) {
                    assert_eq!(vrf.lookup(a), trie.lookup(a), "seed {seed}, {a} near {net}");
                    asked += 1;
                }
            }
            for _ in 0..20_000 {
                let r = rng.next();
                let a = IpAddr::V4(Ipv4Addr::from(r as u32 & 0x0f0f_ffff | 0x0a00_0000));
                assert_eq!(vrf.lookup(a), trie.lookup(a), "seed {seed}, {a}");
            }
            assert!(asked > 10_000);
        }
    }

    #[test]
    fn a_change_after_commit_is_seen_at_once() {
        let mut vrf = Vrf::new(TenantId(1), label(100)).unwrap();
        vrf.insert(net("10.0.0.0/8"), NextHop::Discard);
        vrf.commit();
        assert_eq!(vrf.lookup(ip("10.1.1.1")), Some(&NextHop::Discard));
        vrf.insert(net("10.1.0.0/16"), NextHop::Local(InterfaceId(1)));
        assert!(!vrf.is_committed());
        assert_eq!(
            vrf.lookup(ip("10.1.1.1")),
            Some(&NextHop::Local(InterfaceId(1)))
        );
        vrf.commit();
        assert_eq!(
            vrf.lookup(ip("10.1.1.1")),
            Some(&NextHop::Local(InterfaceId(1)))
        );
        vrf.remove(&net("10.1.0.0/16"));
        assert_eq!(vrf.lookup(ip("10.1.1.1")), Some(&NextHop::Discard));
        vrf.commit();
        assert_eq!(vrf.lookup(ip("10.1.1.1")), Some(&NextHop::Discard));
        assert_eq!(vrf.lookup(ip("11.0.0.1")), None);
        assert_eq!(vrf.lookup(ip("::1")), None);
    }

    #[test]
    fn default_and_host_routes_compile() {
        let mut vrf = Vrf::new(TenantId(1), label(100)).unwrap();
        vrf.insert(net("0.0.0.0/0"), NextHop::Discard);
        vrf.insert(net("192.0.2.77/32"), NextHop::Local(InterfaceId(9)));
        vrf.insert(net("::/0"), NextHop::Discard);
        vrf.insert(net("2001:db8::77/128"), NextHop::Local(InterfaceId(10)));
        vrf.commit();
        assert_eq!(
            vrf.lookup(ip("192.0.2.77")),
            Some(&NextHop::Local(InterfaceId(9)))
        );
        assert_eq!(vrf.lookup(ip("192.0.2.76")), Some(&NextHop::Discard));
        assert_eq!(vrf.lookup(ip("192.0.2.78")), Some(&NextHop::Discard));
        assert_eq!(
            vrf.lookup(ip("2001:db8::77")),
            Some(&NextHop::Local(InterfaceId(10)))
        );
        assert_eq!(vrf.lookup(ip("2001:db8::76")), Some(&NextHop::Discard));
        assert_eq!(vrf.lookup(ip("255.255.255.255")), Some(&NextHop::Discard));
    }
}
