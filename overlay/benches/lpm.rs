//! Longest-prefix match on a VRF of 100,000 routes, IPv4 and IPv6.
//!
//! `cargo bench -p pisek-overlay --bench lpm`. The routes have a prefix
//! length mix like a provider's table (most IPv4 routes /24, most IPv6
//! routes /48, some host routes) and are drawn from a fixed-seed generator,
//! so runs compare. Each iteration looks up a batch of 1024 destinations
//! that fall inside the table's routes (plus some misses); criterion
//! reports lookups per second. Both structures are measured: the
//! `prefix_trie` routing table and the compiled poptrie forwarding table
//! (`Vrf::commit`), whose build time and size are printed.

#[path = "support/cpu_time.rs"]
mod cpu_time;

use cpu_time::CpuTime;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use pisek_overlay::packet::{Encapsulation, Label};
use pisek_overlay::vrf::{NextHop, TenantId, Vrf};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

const ROUTES: usize = 100_000;
const BATCH: usize = 1024;

/// xorshift64*: a fixed-seed generator, so every run builds the same table.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn v4_len(r: u64) -> u8 {
    match r % 100 {
        0..=59 => 24,
        60..=79 => 16 + (r / 100 % 8) as u8,
        80..=94 => 25 + (r / 100 % 7) as u8,
        _ => 32,
    }
}

fn v6_len(r: u64) -> u8 {
    match r % 100 {
        0..=49 => 48,
        50..=79 => 32 + (r / 100 % 16) as u8,
        80..=94 => 49 + (r / 100 % 16) as u8,
        _ => 128,
    }
}

fn next_hop(rng: &mut Rng) -> NextHop {
    let r = rng.next();
    NextHop::Tunnel {
        endpoint: IpAddr::V4(Ipv4Addr::new(100, 64, (r >> 8) as u8, r as u8)),
        label: Label::for_vrf(16 + (r % 1000) as u32).expect("label"),
        encap: Encapsulation::MplsOverUdp,
    }
}

/// A VRF with `ROUTES` IPv4 routes and the destinations to look up.
fn v4_table() -> (Vrf, Vec<Ipv4Addr>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut vrf = Vrf::new(TenantId(1), Label::for_vrf(100).expect("label")).expect("vrf");
    let mut prefixes = Vec::with_capacity(ROUTES);
    while vrf.len() < ROUTES {
        let r = rng.next();
        let net = Ipv4Net::new(Ipv4Addr::from((r >> 32) as u32), v4_len(r))
            .expect("prefix")
            .trunc();
        let nh = next_hop(&mut rng);
        if vrf.insert(IpNet::V4(net), nh).is_none() {
            prefixes.push(net);
        }
    }
    let destinations = (0..BATCH)
        .map(|i| {
            let r = rng.next();
            if i % 16 == 0 {
                return Ipv4Addr::from(r as u32); // mostly a miss
            }
            let net = prefixes[(r % ROUTES as u64) as usize];
            let host = (r >> 32) as u32 & !u32::from(net.netmask());
            Ipv4Addr::from(u32::from(net.network()) | host)
        })
        .collect();
    (vrf, destinations)
}

fn v6_table() -> (Vrf, Vec<Ipv6Addr>) {
    let mut rng = Rng(0xd1b5_4a32_d192_ed03);
    let mut vrf = Vrf::new(TenantId(1), Label::for_vrf(100).expect("label")).expect("vrf");
    let mut prefixes = Vec::with_capacity(ROUTES);
    while vrf.len() < ROUTES {
        let r = rng.next();
        // Global unicast 2000::/3, as a real table.
        let bits = (u128::from(rng.next()) << 64 | u128::from(rng.next())) >> 3 | (1u128 << 125);
        let net = Ipv6Net::new(Ipv6Addr::from(bits), v6_len(r))
            .expect("prefix")
            .trunc();
        let nh = next_hop(&mut rng);
        if vrf.insert(IpNet::V6(net), nh).is_none() {
            prefixes.push(net);
        }
    }
    let destinations = (0..BATCH)
        .map(|i| {
            let r = u128::from(rng.next()) << 64 | u128::from(rng.next());
            if i % 16 == 0 {
                return Ipv6Addr::from(r);
            }
            let net = prefixes[(r % ROUTES as u128) as usize];
            let host = r & !u128::from(net.netmask());
            Ipv6Addr::from(u128::from(net.network()) | host)
        })
        .collect();
    (vrf, destinations)
}

/// Compiles the VRF, printing how long that took and the table's size.
fn commit(name: &str, mut vrf: Vrf) -> Vrf {
    let start = Instant::now();
    vrf.commit();
    eprintln!(
        "{name}: {} routes compiled in {:.1} ms, forwarding table {:.1} MiB",
        vrf.len(),
        start.elapsed().as_secs_f64() * 1e3,
        vrf.forwarding_table_memory() as f64 / (1 << 20) as f64
    );
    vrf
}

fn lpm(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("lpm_100k");
    group.throughput(Throughput::Elements(BATCH as u64));

    // "trie": the prefix_trie routing table (before commit); "poptrie": the
    // compiled forwarding table the forwarder uses.
    let (trie, destinations) = v4_table();
    let compiled = commit("ipv4", trie.clone());
    for (name, vrf) in [("ipv4_trie", &trie), ("ipv4_poptrie", &compiled)] {
        group.bench_function(BenchmarkId::new(name, ROUTES), |b| {
            b.iter(|| {
                let mut found = 0usize;
                for d in &destinations {
                    found += usize::from(vrf.lookup_v4(black_box(*d)).is_some());
                }
                black_box(found)
            })
        });
    }

    let (trie, destinations) = v6_table();
    let compiled = commit("ipv6", trie.clone());
    for (name, vrf) in [("ipv6_trie", &trie), ("ipv6_poptrie", &compiled)] {
        group.bench_function(BenchmarkId::new(name, ROUTES), |b| {
            b.iter(|| {
                let mut found = 0usize;
                for d in &destinations {
                    found += usize::from(vrf.lookup_v6(black_box(*d)).is_some());
                }
                black_box(found)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = lpm
}
criterion_main!(benches);
