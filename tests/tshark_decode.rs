//! tshark, an independent decoder, reads the library's MPLS-in-UDP output
//! as IP / UDP / MPLS / IP with the label we pushed, over IPv4 and IPv6.
//!
//! The test writes a pcap file by hand (the format is a 24-byte file header
//! and a 16-byte header per packet; LINKTYPE_RAW means each packet starts at
//! its IP header) and runs `tshark -d udp.port==6635,mpls` on it, because
//! Wireshark does not bind MPLS-in-UDP to port 6635 by default.

use pisek_overlay::packet::{Encap, Label, MplsOverUdp};
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

/// LINKTYPE_RAW: the packet begins with an IPv4 or IPv6 header.
const LINKTYPE_RAW: u32 = 101;

fn write_pcap(path: &Path, packets: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic, microseconds
    out.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// An inner IPv4 UDP packet 10.1.0.5:40000 -> 10.2.0.9:5001 with a payload.
fn inner_v4() -> Vec<u8> {
    let payload = b"sensor co2=612";
    let mut p = vec![
        0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 63, 17, 0, 0, 10, 1, 0, 5, 10, 2, 0, 9,
    ];
    let total = (20 + 8 + payload.len()) as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    let c = pisek_overlay::packet::checksum::Sum::new()
        .add_bytes(&p)
        .checksum();
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&5001u16.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]); // no UDP checksum (IPv4 allows it)
    p.extend_from_slice(payload);
    p
}

/// An inner IPv6 UDP packet fd10::5 -> fd20::9.
fn inner_v6() -> Vec<u8> {
    let payload = b"sensor temp=21.5";
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[17, 63]);
    p.extend_from_slice(&"fd10::5".parse::<std::net::Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&"fd20::9".parse::<std::net::Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&40001u16.to_be_bytes());
    p.extend_from_slice(&5001u16.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

fn encapsulate(source: &str, destination: &str, label: u32, inner: &[u8]) -> Vec<u8> {
    let source: IpAddr = source.parse().unwrap();
    let destination: IpAddr = destination.parse().unwrap();
    let encap = Encap::new(source, destination, Label::for_vrf(label).unwrap());
    let headroom = MplsOverUdp::HEADROOM_V6;
    let mut buf = vec![0u8; headroom + inner.len()];
    buf[headroom..].copy_from_slice(inner);
    let end = buf.len();
    let range = MplsOverUdp::encapsulate(&encap, &mut buf, headroom..end).expect("encapsulate");
    buf[range].to_vec()
}

/// tshark's fields for each packet, one line per packet.
fn tshark_fields(pcap: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap);
    cmd.args([
        "-d",
        "udp.port==6635,mpls",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

#[test]
fn tshark_decodes_mpls_over_udp_with_the_pushed_label() {
    if !pisek_lab::require(
        "tshark_decodes_mpls_over_udp_with_the_pushed_label",
        &["tshark"],
    ) {
        return;
    }
    let dir = pisek_lab::TempDir::new("tshark");
    let pcap = dir.path.join("mpls-udp.pcap");
    let v4_in_v4 = encapsulate("100.64.0.1", "100.64.0.2", 1000, &inner_v4());
    let v6_in_v6 = encapsulate("fd99::1", "fd99::2", 524_287, &inner_v6());
    write_pcap(&pcap, &[v4_in_v4, v6_in_v6]);

    let rows = tshark_fields(
        &pcap,
        &[
            "frame.protocols",
            "ip.src",
            "ipv6.src",
            "udp.dstport",
            "udp.srcport",
            "mpls.label",
            "mpls.bottom",
            "mpls.ttl",
        ],
    );
    assert_eq!(rows.len(), 2, "{rows:?}");

    // Packet 1: IPv4 / UDP / MPLS / IPv4 / UDP.
    let r = &rows[0];
    assert!(
        r[0].starts_with("raw:ip:udp:mpls:ip:udp"),
        "protocols {:?}",
        r[0]
    );
    assert_eq!(r[1], "100.64.0.1,10.1.0.5", "outer then inner source");
    assert_eq!(r[3], "6635,5001");
    let entropy: u16 = r[4].split(',').next().unwrap().parse().unwrap();
    assert!(entropy >= 49152, "entropy port {entropy}");
    assert_eq!(r[5], "1000");
    assert_eq!(r[6], "1");
    assert_eq!(r[7], "255");

    // Packet 2: IPv6 / UDP / MPLS / IPv6 / UDP, the largest label.
    let r = &rows[1];
    assert!(
        r[0].starts_with("raw:ipv6:udp:mpls:ipv6:udp"),
        "protocols {:?}",
        r[0]
    );
    assert_eq!(r[2], "fd99::1,fd10::5");
    assert_eq!(r[5], "524287");
}

#[test]
fn tshark_finds_the_ipv6_udp_checksum_correct() {
    if !pisek_lab::require("tshark_finds_the_ipv6_udp_checksum_correct", &["tshark"]) {
        return;
    }
    let dir = pisek_lab::TempDir::new("tshark6");
    let pcap = dir.path.join("mpls-udp6.pcap");
    write_pcap(&pcap, &[encapsulate("fd99::1", "fd99::2", 77, &inner_v4())]);
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-o", "udp.check_checksum:TRUE", "-d", "udp.port==6635,mpls"])
        .args([
            "-T",
            "fields",
            "-e",
            "udp.checksum.status",
            "-e",
            "ip.checksum.status",
        ])
        .args(["-o", "ip.check_checksum:TRUE"])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Wireshark's checksum status: 0 bad, 1 good, 2 unverified, 3 not
    // present. The outer UDP checksum (over IPv6) is good, the inner UDP
    // has none, the inner IPv4 header checksum is good.
    assert_eq!(text.trim(), "1,3\t1", "tshark checksum status: {text:?}");
}
