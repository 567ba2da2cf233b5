//! The WireGuard incoming-datagram path: any bytes from the underlay, to an
//! interface with one peer and an established session, must be dropped with
//! a reason or accepted, never panic.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use pisek_overlay::wg::{PeerConfig, PeerId, PublicKey, StaticSecret, WgInterface, WgOutput, WgSettings};

struct Sink {
    buf: Vec<u8>,
}

impl WgOutput for Sink {
    fn datagram_buffer(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    fn send_datagram(&mut self, len: usize, _endpoint: SocketAddr) {
        assert!(len <= self.buf.len());
    }
    fn tunnel_buffer(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    fn deliver_to_tunnel(&mut self, len: usize, _peer: PeerId) {
        assert!(len <= self.buf.len());
    }
}

fn interface() -> WgInterface {
    let mut wg = WgInterface::new(StaticSecret::from([2; 32]), WgSettings::default());
    let peer = wg
        .add_peer(PeerConfig {
            public_key: PublicKey::from(&StaticSecret::from([1; 32])),
            preshared_key: None,
            endpoint: Some("192.0.2.1:51820".parse().unwrap()),
            persistent_keepalive: None,
        })
        .unwrap();
    wg.add_route("0.0.0.0/0".parse().unwrap(), peer, None).unwrap();
    wg
}

/// A valid handshake initiation from the known peer, so the fuzzer can start
/// from real messages as well as noise.
fn initiation() -> &'static [u8] {
    static INIT: OnceLock<Vec<u8>> = OnceLock::new();
    INIT.get_or_init(|| {
        let mut peer = WgInterface::new(StaticSecret::from([1; 32]), WgSettings::default());
        let id = peer
            .add_peer(PeerConfig {
                public_key: PublicKey::from(&StaticSecret::from([2; 32])),
                preshared_key: None,
                endpoint: Some("192.0.2.2:51820".parse().unwrap()),
                persistent_keepalive: None,
            })
            .unwrap();
        let mut sink = Sink { buf: vec![0; 2048] };
        let mut ip = vec![0u8; 28];
        ip[0] = 0x45;
        ip[3] = 28;
        let _ = peer.send_to_peer(id, &ip, Instant::now(), &mut sink);
        sink.buf[..148].to_vec()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut wg = interface();
    let mut sink = Sink { buf: vec![0; 2048] };
    let from: SocketAddr = "192.0.2.1:51820".parse().unwrap();
    let now = Instant::now();
    // First byte picks: raw bytes, or a real initiation with fuzzed bytes
    // patched in (so the DH and MAC paths are reached too).
    match data.split_first() {
        Some((0, rest)) => {
            let mut init = initiation().to_vec();
            for (i, b) in rest.iter().enumerate().take(init.len()) {
                init[i] ^= b;
            }
            let _ = wg.receive(&init, from, now, &mut sink);
        }
        _ => {
            for chunk in data.split(|b| *b == 0xa5) {
                let _ = wg.receive(chunk, from, now, &mut sink);
            }
        }
    }
    wg.update_timers(now, &mut sink);
});
