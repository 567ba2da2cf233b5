//! Fuzzes the BGP message decoder and the speaker behind it.
//!
//! The first byte picks what the rest of the input meets:
//! - 0: `Message::decode` under both contexts; whatever decodes must
//!   re-encode to messages that decode to the same routes;
//! - 1: a speaker whose session is established, fed the bytes as a stream;
//! - 2: a speaker that has just sent its OPEN (OpenSent), fed the bytes.
//!
//! No input may panic.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pisek_overlay::bgp::packet::message::frame_len;
use pisek_overlay::bgp::packet::{Capability, Family, Message, Open, SessionContext};
use pisek_overlay::bgp::speaker::{ConnId, NeighborConfig, Speaker, SpeakerConfig};

fn speaker() -> Speaker {
    Speaker::new(SpeakerConfig {
        local_as: 65000,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        next_hop: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        hold_time: 90,
        connect_retry: Duration::from_secs(1),
        connect_retry_max: Duration::from_secs(8),
        mrai: Duration::ZERO,
        graceful_restart: None,
        stale_routes_time: Duration::from_secs(60),
        selection_deferral_time: Duration::from_secs(30),
        cluster_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
        families: vec![Family::VPNV4, Family::VPNV6],
    })
}

fn open_bytes() -> Vec<u8> {
    let open = Open {
        my_as: 65000,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(10, 0, 0, 2),
        capabilities: vec![
            Capability::Multiprotocol(Family::VPNV4),
            Capability::Multiprotocol(Family::VPNV6),
            Capability::FourOctetAs(65000),
        ],
    };
    let mut out = Vec::new();
    Message::Open(open).encode(&SessionContext::default(), &mut out);
    Message::Keepalive.encode(&SessionContext::default(), &mut out);
    out
}

fn decode_round_trip(data: &[u8]) {
    for four_octet_as in [false, true] {
        let ctx = SessionContext { four_octet_as, external: false };
        let Ok(m) = Message::decode(data, &ctx) else { continue };
        let Message::Update(u) = &m else { continue };
        if u.treat_as_withdraw.is_some() || u.attributes.next_hop.is_none() {
            continue;
        }
        let mut bytes = Vec::new();
        m.encode(&ctx, &mut bytes);
        let (mut announced, mut withdrawn) = (Vec::new(), Vec::new());
        let mut rest = &bytes[..];
        while let Ok(Some(len)) = frame_len(rest) {
            let Ok(Message::Update(again)) = Message::decode(&rest[..len], &ctx) else {
                panic!("re-encoded UPDATE does not decode");
            };
            announced.extend(again.announced);
            withdrawn.extend(again.withdrawn.into_iter().map(|n| n.prefix));
            rest = &rest[len..];
        }
        assert_eq!(announced, u.announced);
        assert_eq!(withdrawn, u.withdrawn.iter().map(|n| n.prefix).collect::<Vec<_>>());
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else { return };
    let now = Instant::now();
    match mode % 3 {
        0 => decode_round_trip(data),
        mode => {
            let mut s = speaker();
            let peer = s
                .add_peer(NeighborConfig { address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), rr_client: true, passive: true, remote_as: None }, now)
                .expect("one peer");
            s.connected(peer, ConnId(1), false, now);
            if mode == 1 {
                s.received(ConnId(1), &open_bytes(), now);
            }
            // Feed in two pieces to exercise reassembly.
            let cut = data.len() / 2;
            s.received(ConnId(1), &data[..cut], now);
            s.received(ConnId(1), &data[cut..], now);
            s.poll_timers(now + Duration::from_secs(200));
            while s.poll_output().is_some() {}
        }
    }
});
