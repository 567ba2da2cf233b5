//! The whole forwarding pipeline per packet: batches of 32 tenant packets
//! of 1400 bytes through egress (anti-spoofing, VRF lookup, TTL, MTU check,
//! MPLS encap in place, WireGuard encryption into the underlay batch) and
//! through ingress (WireGuard decryption, decap, label, VRF lookup, copy
//! into the tenant TUN batch), between two gateway pipelines with a
//! session up.
//!
//! `cargo bench -p pisek-overlay --bench forward`. Anchor in the same run:
//! the fabric TUN path, which is WireGuard alone (encrypt a 1432-byte
//! packet, the size of the encapsulated tenant packet; decrypt it and
//! copy it out), so the ratio is what the vRouter adds to the crypto.
//! Times are thread CPU time (`support/cpu_time.rs`); only the pipeline
//! call is timed, not refilling the input batch (the TUN read).

#[path = "support/cpu_time.rs"]
mod cpu_time;
#[path = "support/forward_pair.rs"]
mod forward_pair;

use cpu_time::CpuTime;
use criterion::measurement::Measurement;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use forward_pair::{Pair, packet};
use pisek_overlay::forward::PacketBatch;
use pisek_overlay::packet::Encapsulation;
use std::hint::black_box;
use std::net::SocketAddr;

const BATCH: usize = 32;
const PACKET: usize = 1400;
/// The encapsulated size of a 1400-byte packet over an IPv4 tunnel.
const ENCAPSULATED: usize = PACKET + 32;

fn gw1_underlay() -> SocketAddr {
    "192.0.2.1:51820".parse().expect("address")
}

/// Encrypts one batch on gw1 and loads the datagrams into `to_gw2`.
fn encrypt_batch(
    pair: &mut Pair,
    input: &mut PacketBatch,
    fresh: &PacketBatch,
    to_gw2: &mut PacketBatch,
) {
    refill(input, fresh);
    pair.out.clear();
    pair.egress(1, input);
    to_gw2.clear();
    for (d, _) in pair.out.underlay.datagrams() {
        to_gw2.push_datagram(d, gw1_underlay());
    }
    pair.out.clear();
}

fn refill(input: &mut PacketBatch, fresh: &PacketBatch) {
    input.clear();
    for p in fresh.packets() {
        input.push(p);
    }
}

fn pipeline(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("forward");
    group.throughput(Throughput::Elements(BATCH as u64));
    for encap in [Encapsulation::MplsOverUdp, Encapsulation::MplsOverGre] {
        let mut pair = Pair::new(encap);
        let fresh = pair.egress_batch_of(1, BATCH, PACKET);
        let mut input = pair.gw1.egress_input(BATCH);
        let mut to_gw2 = pair.gw2.ingress_input(BATCH);

        group.bench_function(BenchmarkId::new(format!("egress_{encap}"), PACKET), |b| {
            b.iter_custom(|iters| {
                let mut total = 0;
                for _ in 0..iters {
                    refill(&mut input, &fresh);
                    pair.out.clear();
                    let start = CpuTime.start();
                    pair.egress(1, &mut input);
                    total += CpuTime.end(start);
                    assert_eq!(pair.out.underlay.len(), BATCH);
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new(format!("ingress_{encap}"), PACKET), |b| {
            b.iter_custom(|iters| {
                let mut total = 0;
                for _ in 0..iters {
                    encrypt_batch(&mut pair, &mut input, &fresh, &mut to_gw2);
                    let now = pair.now;
                    let start = CpuTime.start();
                    pair.gw2
                        .ingress_batch(black_box(&to_gw2), now, &mut pair.out);
                    total += CpuTime.end(start);
                    assert_eq!(pair.out.local.len(), BATCH);
                }
                total
            })
        });
    }
    group.finish();
}

/// The anchor: the fabric TUN path, WireGuard and nothing else.
fn wireguard_only(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("anchor");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut pair = Pair::new(Encapsulation::MplsOverUdp);
    // gw1's kernel to gw2's tunnel address, the size of an encapsulated
    // tenant packet.
    let mut fabric = PacketBatch::new(BATCH, 1500, 0);
    let mut p = packet(1, ENCAPSULATED);
    p[12..20].copy_from_slice(&[100, 64, 0, 1, 100, 64, 0, 2]);
    for _ in 0..BATCH {
        fabric.push(&p);
    }
    let mut to_gw2 = pair.gw2.ingress_input(BATCH);
    group.bench_function(BenchmarkId::new("wireguard_encrypt", ENCAPSULATED), |b| {
        b.iter_custom(|iters| {
            let mut total = 0;
            for _ in 0..iters {
                pair.out.clear();
                let now = pair.now;
                let start = CpuTime.start();
                pair.gw1
                    .egress_fabric_batch(black_box(&fabric), now, &mut pair.out);
                total += CpuTime.end(start);
                assert_eq!(pair.out.underlay.len(), BATCH);
            }
            total
        })
    });
    group.bench_function(BenchmarkId::new("wireguard_decrypt", ENCAPSULATED), |b| {
        b.iter_custom(|iters| {
            let mut total = 0;
            for _ in 0..iters {
                pair.out.clear();
                let now = pair.now;
                pair.gw1.egress_fabric_batch(&fabric, now, &mut pair.out);
                to_gw2.clear();
                for (d, _) in pair.out.underlay.datagrams() {
                    to_gw2.push_datagram(d, gw1_underlay());
                }
                pair.out.clear();
                let start = CpuTime.start();
                pair.gw2
                    .ingress_batch(black_box(&to_gw2), now, &mut pair.out);
                total += CpuTime.end(start);
                assert_eq!(pair.out.local.len(), BATCH);
            }
            total
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = pipeline, wireguard_only
}
criterion_main!(benches);
