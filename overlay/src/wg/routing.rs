//! Crypto-key routing (whitepaper §2), the agent's own: a destination tunnel
//! address maps to a preferred peer and an optional backup peer (the two edge
//! routers of a high-availability site). The same table checks the source of
//! every decrypted packet: a peer may only send from addresses routed to it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

use super::PeerId;

/// The peers a tunnel prefix is reachable through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoKeyRoute {
    /// The peer used while it answers handshakes.
    pub preferred: PeerId,
    /// The peer used while the preferred one is down.
    pub backup: Option<PeerId>,
}

impl CryptoKeyRoute {
    /// True when `peer` is one of the route's peers.
    pub fn has(&self, peer: PeerId) -> bool {
        self.preferred == peer || self.backup == Some(peer)
    }

    /// The peer to use now, given which peers are known to be down: the
    /// preferred one unless it is down and the backup is not.
    pub fn select(&self, is_down: impl Fn(PeerId) -> bool) -> PeerId {
        match self.backup {
            Some(backup) if is_down(self.preferred) && !is_down(backup) => backup,
            _ => self.preferred,
        }
    }
}

/// Longest-prefix-match table from tunnel prefixes to [`CryptoKeyRoute`]s.
///
/// Host routes (/32, /128: one per gateway on an edge) are also kept in
/// an exact-match hash table looked up first: a host route is always the
/// longest match, and the hash lookup costs one probe where the trie walks
/// up to 32 (128) levels; the profile of issue 14 showed the trie at 10 %
/// of the edge's cycles for 64-byte packets (it runs twice per relayed
/// packet: the source check and the next peer).
#[derive(Debug, Clone, Default)]
pub struct CryptoKeyRoutes {
    v4: PrefixMap<Ipv4Net, CryptoKeyRoute>,
    v6: PrefixMap<Ipv6Net, CryptoKeyRoute>,
    hosts_v4: HashMap<Ipv4Addr, CryptoKeyRoute, BuildHasherDefault<AddressHasher>>,
    hosts_v6: HashMap<Ipv6Addr, CryptoKeyRoute, BuildHasherDefault<AddressHasher>>,
}

/// A fast hash for the host table's keys. Addresses are not chosen by an
/// attacker here: only the operator's configuration and BGP (authenticated
/// peers) add routes, so no DoS-resistant (keyed) hash is needed.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            // FxHash's step: rotate, xor, multiply by a large odd constant.
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl CryptoKeyRoutes {
    /// An empty table.
    pub fn new() -> CryptoKeyRoutes {
        CryptoKeyRoutes::default()
    }

    /// Routes `prefix` to `route`, replacing what was there. The prefix is
    /// truncated to its network address.
    pub fn insert(&mut self, prefix: IpNet, route: CryptoKeyRoute) {
        match prefix.trunc() {
            IpNet::V4(p) => {
                if p.prefix_len() == 32 {
                    self.hosts_v4.insert(p.addr(), route);
                }
                self.v4.insert(p, route);
            }
            IpNet::V6(p) => {
                if p.prefix_len() == 128 {
                    self.hosts_v6.insert(p.addr(), route);
                }
                self.v6.insert(p, route);
            }
        }
    }

    /// Removes the route for exactly `prefix`.
    pub fn remove(&mut self, prefix: IpNet) -> Option<CryptoKeyRoute> {
        match prefix.trunc() {
            IpNet::V4(p) => {
                if p.prefix_len() == 32 {
                    self.hosts_v4.remove(&p.addr());
                }
                self.v4.remove(&p)
            }
            IpNet::V6(p) => {
                if p.prefix_len() == 128 {
                    self.hosts_v6.remove(&p.addr());
                }
                self.v6.remove(&p)
            }
        }
    }

    /// The route covering `addr` (longest prefix match).
    pub fn lookup(&self, addr: IpAddr) -> Option<CryptoKeyRoute> {
        match addr {
            IpAddr::V4(a) => match self.hosts_v4.get(&a) {
                Some(r) => Some(*r),
                None => self.v4.get_lpm(&Ipv4Net::from(a)).map(|(_, r)| *r),
            },
            IpAddr::V6(a) => match self.hosts_v6.get(&a) {
                Some(r) => Some(*r),
                None => self.v6.get_lpm(&Ipv6Net::from(a)).map(|(_, r)| *r),
            },
        }
    }

    /// True when a packet from `source` may come from `peer`: the longest
    /// match for the source names the peer as preferred or backup.
    pub fn allows_source(&self, source: IpAddr, peer: PeerId) -> bool {
        self.lookup(source).is_some_and(|r| r.has(peer))
    }

    /// Forgets `peer`: routes where it is the backup lose their backup,
    /// routes where it is preferred fall to their backup or are removed.
    pub fn remove_peer(&mut self, peer: PeerId) {
        fn fix(route: &mut CryptoKeyRoute, peer: PeerId) -> bool {
            if route.backup == Some(peer) {
                route.backup = None;
            }
            if route.preferred == peer {
                match route.backup.take() {
                    Some(b) => route.preferred = b,
                    None => return false,
                }
            }
            true
        }
        let dead4: Vec<Ipv4Net> = self
            .v4
            .iter_mut()
            .filter_map(|(p, r)| (!fix(r, peer)).then_some(p))
            .collect();
        for p in dead4 {
            self.v4.remove(&p);
        }
        let dead6: Vec<Ipv6Net> = self
            .v6
            .iter_mut()
            .filter_map(|(p, r)| (!fix(r, peer)).then_some(p))
            .collect();
        for p in dead6 {
            self.v6.remove(&p);
        }
        // Rare (a peer removed): rebuild the host tables from the tries.
        self.hosts_v4 = self
            .v4
            .iter()
            .filter(|(p, _)| p.prefix_len() == 32)
            .map(|(p, r)| (p.addr(), *r))
            .collect();
        self.hosts_v6 = self
            .v6
            .iter()
            .filter(|(p, _)| p.prefix_len() == 128)
            .map(|(p, r)| (p.addr(), *r))
            .collect();
    }

    /// Every route, IPv4 first.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, CryptoKeyRoute)> + '_ {
        self.v4
            .iter()
            .map(|(p, r)| (IpNet::V4(p), *r))
            .chain(self.v6.iter().map(|(p, r)| (IpNet::V6(p), *r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    fn route(preferred: u32, backup: Option<u32>) -> CryptoKeyRoute {
        CryptoKeyRoute {
            preferred: PeerId(preferred),
            backup: backup.map(PeerId),
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = CryptoKeyRoutes::new();
        t.insert(net("10.0.0.0/8"), route(1, None));
        t.insert(net("10.1.0.0/16"), route(2, None));
        t.insert(net("fd00::/64"), route(3, None));
        assert_eq!(t.lookup("10.1.2.3".parse().unwrap()), Some(route(2, None)));
        assert_eq!(t.lookup("10.2.2.3".parse().unwrap()), Some(route(1, None)));
        assert_eq!(t.lookup("fd00::1".parse().unwrap()), Some(route(3, None)));
        assert_eq!(t.lookup("192.0.2.1".parse().unwrap()), None);
    }

    #[test]
    fn backup_is_used_only_while_preferred_is_down_and_backup_is_not() {
        let r = route(1, Some(2));
        assert_eq!(r.select(|_| false), PeerId(1));
        assert_eq!(r.select(|p| p == PeerId(1)), PeerId(2));
        assert_eq!(r.select(|_| true), PeerId(1));
        assert_eq!(route(1, None).select(|_| true), PeerId(1));
    }

    #[test]
    fn source_check_accepts_preferred_and_backup_only() {
        let mut t = CryptoKeyRoutes::new();
        t.insert(net("10.9.0.0/24"), route(1, Some(2)));
        let src = "10.9.0.7".parse().unwrap();
        assert!(t.allows_source(src, PeerId(1)));
        assert!(t.allows_source(src, PeerId(2)));
        assert!(!t.allows_source(src, PeerId(3)));
        assert!(!t.allows_source("10.8.0.1".parse().unwrap(), PeerId(1)));
    }

    #[test]
    fn removing_a_peer_promotes_the_backup_or_drops_the_route() {
        let mut t = CryptoKeyRoutes::new();
        t.insert(net("10.0.0.0/24"), route(1, Some(2)));
        t.insert(net("10.0.1.0/24"), route(1, None));
        t.insert(net("10.0.2.0/24"), route(3, Some(1)));
        t.remove_peer(PeerId(1));
        assert_eq!(t.lookup("10.0.0.1".parse().unwrap()), Some(route(2, None)));
        assert_eq!(t.lookup("10.0.1.1".parse().unwrap()), None);
        assert_eq!(t.lookup("10.0.2.1".parse().unwrap()), Some(route(3, None)));
    }

    #[test]
    fn host_routes_answer_from_the_exact_table_and_follow_removals() {
        let mut t = CryptoKeyRoutes::new();
        t.insert(net("10.9.0.0/16"), route(1, None));
        t.insert(net("10.9.0.7/32"), route(2, Some(3)));
        t.insert(net("fd00::7/128"), route(2, None));
        assert_eq!(
            t.lookup("10.9.0.7".parse().unwrap()),
            Some(route(2, Some(3)))
        );
        assert_eq!(t.lookup("10.9.0.8".parse().unwrap()), Some(route(1, None)));
        assert_eq!(t.lookup("fd00::7".parse().unwrap()), Some(route(2, None)));
        t.remove_peer(PeerId(2));
        assert_eq!(t.lookup("10.9.0.7".parse().unwrap()), Some(route(3, None)));
        assert_eq!(t.lookup("fd00::7".parse().unwrap()), None);
        t.remove(net("10.9.0.7/32"));
        assert_eq!(t.lookup("10.9.0.7".parse().unwrap()), Some(route(1, None)));
    }
}
