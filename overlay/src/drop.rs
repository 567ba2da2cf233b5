//! Why the data path dropped a packet, and how often: every drop has a
//! reason and a counter, as the Tungsten Fabric vRouter's dropstats, so an
//! operator can tell a routing hole from a spoofing pod (`pisekctl drops`).
//!
//! [`DropCounters`] is a plain array indexed by [`DropReason`]: counting is
//! one add, with no hashing and no allocation. A forwarder thread keeps its
//! own counters and the agent merges them for display.

use std::fmt;
use std::ops::Index;

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// The VRF has no route for the destination.
    NoRoute,
    /// The matching route is a discard (blackhole) route.
    DiscardRoute,
    /// The inner TTL or hop limit ran out (RFC 1812 §5.3.1).
    TtlExpired,
    /// The MPLS label is reserved, not bound to a VRF, or the label stack
    /// is not the single VRF entry the overlay uses.
    BadLabel,
    /// A header is truncated or holds forbidden values.
    Malformed,
    /// An IPv4 header, UDP or GRE checksum does not verify.
    BadChecksum,
    /// The packet exceeds the path MTU (an ICMP "too big" may have been sent).
    TooBig,
    /// A workload sent a packet whose source address is not its own.
    SpoofedSource,
    /// The packet's addresses keep it on the link it was sent on: a
    /// multicast, broadcast or link-local destination, or (from a tenant
    /// TUN) an IPv6 unspecified or link-local source that is no workload's
    /// (an IPv4 link-local source there is [`DropReason::SpoofedSource`]). No router forwards it (RFC 4291 §2.5.6,
    /// RFC 3927 §7, RFC 1812 §5.3.7), and the overlay routes unicast only,
    /// so multicast of any scope stays on its link too. Mostly the kernel's
    /// own IPv6 chatter on a TUN (MLD reports, router solicitations, DAD),
    /// never a workload lying about its address: that is
    /// [`DropReason::SpoofedSource`].
    LinkScoped,
    /// The outer packet is a fragment; the overlay does not reassemble.
    Fragmented,
    /// The packet came from an interface or tenant the agent does not know.
    UnknownTenant,
    /// The tunnel endpoint of the next hop has no WireGuard peer.
    NoPeer,
    /// A WireGuard packet failed authentication or decryption.
    DecryptFailed,
    /// A decapsulated packet was addressed to another tunnel endpoint.
    NotForThisNode,
    /// A queue towards an interface or the underlay was full.
    QueueFull,
}

impl DropReason {
    /// The number of reasons: the length of a counter array.
    pub const COUNT: usize = 15;

    /// Every reason, in display order (the order of the enum).
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::NoRoute,
        DropReason::DiscardRoute,
        DropReason::TtlExpired,
        DropReason::BadLabel,
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::TooBig,
        DropReason::SpoofedSource,
        DropReason::LinkScoped,
        DropReason::Fragmented,
        DropReason::UnknownTenant,
        DropReason::NoPeer,
        DropReason::DecryptFailed,
        DropReason::NotForThisNode,
        DropReason::QueueFull,
    ];

    /// The reason's index into a counter array.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short stable name in kebab case, for tables, metrics labels and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::NoRoute => "no-route",
            DropReason::DiscardRoute => "discard-route",
            DropReason::TtlExpired => "ttl-expired",
            DropReason::BadLabel => "bad-label",
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad-checksum",
            DropReason::TooBig => "too-big",
            DropReason::SpoofedSource => "spoofed-source",
            DropReason::LinkScoped => "link-scoped",
            DropReason::Fragmented => "fragmented",
            DropReason::UnknownTenant => "unknown-tenant",
            DropReason::NoPeer => "no-peer",
            DropReason::DecryptFailed => "decrypt-failed",
            DropReason::NotForThisNode => "not-for-this-node",
            DropReason::QueueFull => "queue-full",
        }
    }

    /// The reason whose [`DropReason::name`] is `name`.
    pub fn from_name(name: &str) -> Option<DropReason> {
        DropReason::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One counter per [`DropReason`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl Default for DropCounters {
    fn default() -> DropCounters {
        DropCounters::new()
    }
}

impl DropCounters {
    /// All counters at zero.
    pub const fn new() -> DropCounters {
        DropCounters {
            counts: [0; DropReason::COUNT],
        }
    }

    /// Counts one dropped packet.
    #[inline]
    pub fn record(&mut self, reason: DropReason) {
        self.record_many(reason, 1);
    }

    /// Counts `packets` dropped packets (a whole batch).
    #[inline]
    pub fn record_many(&mut self, reason: DropReason, packets: u64) {
        let c = &mut self.counts[reason.index()];
        *c = c.wrapping_add(packets);
    }

    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.wrapping_add(*c))
    }

    /// Adds another set of counters (another forwarder thread's) to this one.
    pub fn merge(&mut self, other: &DropCounters) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine = mine.wrapping_add(theirs);
        }
    }

    /// Every reason with its count, zeros included, in display order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.into_iter().map(|r| (r, self.get(r)))
    }
}

impl Index<DropReason> for DropCounters {
    type Output = u64;

    fn index(&self, reason: DropReason) -> &u64 {
        &self.counts[reason.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_at_its_index() {
        for (i, r) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(r.index(), i, "{r}");
            assert_eq!(DropReason::from_name(r.name()), Some(r));
        }
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn counters_count_per_reason_and_merge() {
        let mut a = DropCounters::new();
        a.record(DropReason::NoRoute);
        a.record(DropReason::NoRoute);
        a.record_many(DropReason::SpoofedSource, 5);
        let mut b = DropCounters::new();
        b.record(DropReason::NoRoute);
        a.merge(&b);
        assert_eq!(a[DropReason::NoRoute], 3);
        assert_eq!(a.get(DropReason::SpoofedSource), 5);
        assert_eq!(a.total(), 8);
        let nonzero: Vec<_> = a.iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(
            nonzero,
            [(DropReason::NoRoute, 3), (DropReason::SpoofedSource, 5)]
        );
    }
}
