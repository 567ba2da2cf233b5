//! Encapsulation and decapsulation cost per packet, for MPLS-in-UDP and
//! MPLS-in-GRE over IPv4 and IPv6, at 64, 512 and 1400-byte inner packets.
//!
//! `cargo bench -p pisek-overlay --bench encap`. Encapsulation runs in place
//! on a buffer with headroom, as the forwarder does; the inner packet is
//! never copied, so its size only matters where a checksum covers it (the
//! IPv6 UDP checksum). The anchor in the same run is one copy of the inner
//! packet. Times are thread CPU time (see `support/cpu_time.rs`).

#[path = "support/cpu_time.rs"]
mod cpu_time;

use cpu_time::CpuTime;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pisek_overlay::packet::{Encap, Encapsulation, Label, RxChecksum};
use std::hint::black_box;
use std::net::IpAddr;

const SIZES: [usize; 3] = [64, 512, 1400];

/// An inner IPv4/UDP packet of `len` bytes.
fn inner_packet(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[..20].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 5, 10, 2, 0, 9,
    ]);
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[20..24].copy_from_slice(&[0x9c, 0x40, 0x13, 0x89]);
    p
}

fn cases() -> Vec<(&'static str, Encapsulation, Encap)> {
    let label = Label::for_vrf(1000).expect("label");
    let v4 = |s: &str| -> IpAddr { s.parse().expect("address") };
    let e4 = Encap::new(v4("100.64.0.1"), v4("100.64.0.2"), label);
    let e6 = Encap::new(v4("fd99::1"), v4("fd99::2"), label);
    vec![
        ("mpls_udp_v4", Encapsulation::MplsOverUdp, e4),
        ("mpls_udp_v6", Encapsulation::MplsOverUdp, e6),
        ("mpls_gre_v4", Encapsulation::MplsOverGre, e4),
    ]
}

fn encap(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("encap");
    for (name, encapsulation, params) in cases() {
        for size in SIZES {
            let headroom = Encapsulation::MAX_HEADROOM;
            let mut buf = vec![0u8; headroom + size];
            buf[headroom..].copy_from_slice(&inner_packet(size));
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
                b.iter(|| {
                    let range = encapsulation
                        .encapsulate(black_box(&params), &mut buf, headroom..headroom + size)
                        .expect("encapsulate");
                    black_box(range)
                })
            });
        }
    }
    group.finish();
}

fn decap(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("decap");
    for (name, encapsulation, params) in cases() {
        for size in SIZES {
            let headroom = Encapsulation::MAX_HEADROOM;
            let mut buf = vec![0u8; headroom + size];
            buf[headroom..].copy_from_slice(&inner_packet(size));
            let range = encapsulation
                .encapsulate(&params, &mut buf, headroom..headroom + size)
                .expect("encapsulate");
            let packet = &buf[range];
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| {
                    let d = encapsulation
                        .decapsulate(black_box(packet), RxChecksum::Verify)
                        .expect("decapsulate");
                    black_box(d.inner.len())
                })
            });
        }
    }
    group.finish();
}

/// The anchor: copying the inner packet once, the least an encapsulator
/// that does not work in place pays on top of writing headers.
fn copy_anchor(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("anchor");
    for size in SIZES {
        let inner = inner_packet(size);
        let mut out = vec![0u8; Encapsulation::MAX_HEADROOM + size];
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("copy_payload", size), &size, |b, _| {
            b.iter(|| {
                out[Encapsulation::MAX_HEADROOM..].copy_from_slice(black_box(&inner));
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = encap, decap, copy_anchor
}
criterion_main!(benches);
