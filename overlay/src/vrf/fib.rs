//! The compiled forwarding table of a VRF: a poptrie (Asai and Ohara,
//! "Poptrie: A Compressed Trie with Population Count for Fast and Scalable
//! Software IP Routing Table Lookup", SIGCOMM 2015), built from the VRF's
//! `prefix_trie` maps.
//!
//! The routing table (`prefix_trie::PrefixMap`) is the place to insert and
//! remove routes; walking it costs a node per 5 bits of the address. The
//! forwarding table answers lookups only: the first 16 bits index an array
//! directly, then 64-way nodes are walked 6 bits at a time, each child and
//! leaf found by a population count over a bitmap, with runs of equal leaves
//! stored once. A 100k-route IPv4 table takes a few megabytes and a lookup
//! touches three or four cache lines. It is rebuilt whole from the routing
//! table ([`crate::vrf::Vrf::commit`]), which the agent does once per batch
//! of route changes; lookups never allocate.

use num_key::Key;

/// Bits resolved by the direct-indexed first level.
const DIRECT_BITS: u32 = 16;
/// Bits resolved per node below it: a node has 64 slots, one `u64` bitmap.
const STRIDE: u32 = 6;
/// A first-level entry with this bit set names a node; otherwise a leaf.
const NODE_FLAG: u32 = 1 << 31;
/// The leaf value of "no route".
pub(crate) const NO_ROUTE: u32 = NODE_FLAG - 1;

/// One 64-way node.
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    /// Bit v set: slot v is a child node.
    children: u64,
    /// Bit v set: slot v is a leaf that starts a run of a new value.
    leaf_runs: u64,
    /// Index of the node's first child in `nodes` (children are contiguous).
    first_child: u32,
    /// Index of the node's first leaf in `leaves` (leaves are contiguous).
    first_leaf: u32,
}

/// A route as the builder sees it: key, prefix length, value (an index into
/// the VRF's next-hop list).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<K> {
    pub key: K,
    pub len: u32,
    pub value: u32,
}

/// A poptrie over keys of type `K` (`u32` for IPv4, `u128` for IPv6).
#[derive(Debug, Clone)]
pub(crate) struct Poptrie<K> {
    direct: Vec<u32>,
    nodes: Vec<Node>,
    leaves: Vec<u32>,
    _key: std::marker::PhantomData<K>,
}

impl<K: Key> Poptrie<K> {
    /// Builds from `entries` (any order; prefixes with host bits set are
    /// masked; for duplicate prefixes the last one wins).
    pub fn build(entries: &[Entry<K>]) -> Poptrie<K> {
        let mut sorted: Vec<Entry<K>> = entries
            .iter()
            .map(|e| Entry {
                key: e.key.mask(e.len),
                ..*e
            })
            .collect();
        // By address, then shorter first: a prefix precedes those it contains.
        sorted.sort_by(|a, b| a.key.cmp(&b.key).then(a.len.cmp(&b.len)));
        let mut trie = Poptrie {
            direct: Vec::new(),
            nodes: Vec::new(),
            leaves: Vec::new(),
            _key: std::marker::PhantomData,
        };
        let (values, children) = resolve_slots(&sorted, 0, DIRECT_BITS, NO_ROUTE);
        trie.direct = values.clone();
        for (v, routes) in children {
            let index = trie.nodes.len() as u32;
            trie.nodes.push(Node::default());
            trie.fill_node(index, &routes, DIRECT_BITS, values[v]);
            trie.direct[v] = NODE_FLAG | index;
        }
        trie
    }

    /// Fills node `index`, which resolves bits `depth..depth+STRIDE` of
    /// the routes in `routes` (all longer than `depth`, all inside the node's
    /// prefix); `inherited` is the best route of length `depth` or less.
    fn fill_node(&mut self, index: u32, routes: &[Entry<K>], depth: u32, inherited: u32) {
        let (values, children) = resolve_slots(routes, depth, STRIDE, inherited);
        let mut node = Node {
            first_child: self.nodes.len() as u32,
            first_leaf: self.leaves.len() as u32,
            ..Node::default()
        };
        for (v, _) in &children {
            node.children |= 1 << v;
        }
        // A leaf slot starts a run when its value differs from the previous
        // leaf slot's (child slots in between do not break a run).
        let mut last_leaf = None;
        for (v, value) in values.iter().enumerate() {
            if node.children & (1 << v) == 0 && last_leaf != Some(*value) {
                node.leaf_runs |= 1 << v;
                self.leaves.push(*value);
                last_leaf = Some(*value);
            }
        }
        // Reserve the children's block first so that it is contiguous; the
        // grandchildren go after it.
        let first_child = node.first_child;
        self.nodes
            .resize(self.nodes.len() + children.len(), Node::default());
        self.nodes[index as usize] = node;
        for (i, (v, routes)) in children.into_iter().enumerate() {
            self.fill_node(first_child + i as u32, &routes, depth + STRIDE, values[v]);
        }
    }

    /// The value of the longest prefix containing `key`, or [`NO_ROUTE`].
    #[inline]
    pub fn lookup(&self, key: K) -> u32 {
        let Some(&entry) = self.direct.get(key.chunk(0, DIRECT_BITS)) else {
            return NO_ROUTE;
        };
        if entry & NODE_FLAG == 0 {
            return entry;
        }
        let mut node = match self.nodes.get((entry & !NODE_FLAG) as usize) {
            Some(n) => n,
            None => return NO_ROUTE,
        };
        let mut depth = DIRECT_BITS;
        loop {
            let v = key.chunk(depth, STRIDE) as u32;
            // Bits 0..=v of a bitmap.
            let upto = u64::MAX >> (63 - v);
            if node.children & (1 << v) != 0 {
                let i = node.first_child + (node.children & upto).count_ones() - 1;
                node = match self.nodes.get(i as usize) {
                    Some(n) => n,
                    None => return NO_ROUTE,
                };
                depth += STRIDE;
            } else {
                let i = node.first_leaf + (node.leaf_runs & upto).count_ones() - 1;
                return self.leaves.get(i as usize).copied().unwrap_or(NO_ROUTE);
            }
        }
    }

    /// Bytes of memory the table holds.
    pub fn memory(&self) -> usize {
        self.direct.len() * 4
            + self.nodes.len() * std::mem::size_of::<Node>()
            + self.leaves.len() * 4
    }
}

/// Resolves the `2^stride` slots at `depth` for `routes` (sorted by
/// address then length; all longer than `depth` and inside one prefix):
/// each slot's best route of length `depth + stride` or less (`inherited`
/// where none), and, for slots that need a child node, the longer routes
/// that fall in them.
#[allow(clippy::type_complexity)]
fn resolve_slots<K: Key>(
    routes: &[Entry<K>],
    depth: u32,
    stride: u32,
    inherited: u32,
) -> (Vec<u32>, Vec<(usize, Vec<Entry<K>>)>) {
    let mut values = vec![inherited; 1 << stride];
    // In sorted order a route comes after every route that contains it, so
    // a longer route overwrites the slots of the shorter one it lies in.
    for r in routes.iter().filter(|r| r.len <= depth + stride) {
        let first = r.key.chunk(depth, stride);
        let count = 1usize << (depth + stride - r.len);
        values[first..first + count].fill(r.value);
    }
    let mut children: Vec<(usize, Vec<Entry<K>>)> = Vec::new();
    for r in routes.iter().filter(|r| r.len > depth + stride) {
        let v = r.key.chunk(depth, stride);
        match children.last_mut() {
            Some((last, group)) if *last == v => group.push(*r),
            _ => children.push((v, vec![*r])),
        }
    }
    (values, children)
}

mod num_key {
    /// An address as an unsigned integer, most significant bit first.
    pub trait Key: Copy + Ord + std::fmt::Debug {
        /// Bits `depth..depth+width` as an index; bits past the end read as 0.
        fn chunk(self, depth: u32, width: u32) -> usize;
        /// The key with bits from `len` on cleared.
        fn mask(self, len: u32) -> Self;
    }

    impl Key for u32 {
        #[inline]
        fn chunk(self, depth: u32, width: u32) -> usize {
            (self.checked_shl(depth).unwrap_or(0) >> (Self::BITS - width)) as usize
        }
        fn mask(self, len: u32) -> u32 {
            if len == 0 {
                0
            } else {
                self & (u32::MAX << (Self::BITS - len.min(Self::BITS)))
            }
        }
    }

    impl Key for u128 {
        #[inline]
        fn chunk(self, depth: u32, width: u32) -> usize {
            (self.checked_shl(depth).unwrap_or(0) >> (Self::BITS - width)) as usize
        }
        fn mask(self, len: u32) -> u128 {
            if len == 0 {
                0
            } else {
                self & (u128::MAX << (Self::BITS - len.min(Self::BITS)))
            }
        }
    }
}
