//! A hand-driven BGP peer on a raw TCP connection, for feeding Pisek
//! malformed messages (`tests/bgp_malformed.rs`).

use crate::bgp_speaker::{AS, common_poll};
use pisek_overlay::bgp::packet::Family;
use std::net::Ipv4Addr;
use std::time::Duration;

/// A hand-driven BGP peer on a raw TCP connection, for feeding Pisek
/// malformed messages. It listens on its address; Pisek connects to it.
pub struct RawPeer {
    /// The connection.
    pub stream: std::net::TcpStream,
    /// Bytes read but not yet returned as a message.
    pub buf: Vec<u8>,
}

impl RawPeer {
    /// Waits for Pisek's connection on `listener`.
    pub fn accept(listener: &std::net::TcpListener) -> RawPeer {
        listener.set_nonblocking(true).expect("nonblocking");
        let (stream, _) = common_poll("Pisek connects", || listener.accept().ok());
        stream.set_nonblocking(false).expect("blocking");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        RawPeer {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends raw bytes to Pisek.
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).expect("send to Pisek");
    }

    /// The next whole message, or None when Pisek closed the connection.
    pub fn read_message(&mut self) -> Option<Vec<u8>> {
        use std::io::Read;
        loop {
            if self.buf.len() >= 19 {
                let len = usize::from(u16::from_be_bytes([self.buf[16], self.buf[17]]));
                if self.buf.len() >= len {
                    return Some(self.buf.drain(..len).collect());
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until a NOTIFICATION and returns (code, subcode, data); then
    /// checks that Pisek closes the connection.
    pub fn expect_notification(&mut self) -> (u8, u8, Vec<u8>) {
        while let Some(m) = self.read_message() {
            if m[18] == 3 {
                let n = (m[19], m[20], m[21..].to_vec());
                assert!(
                    self.read_message().is_none(),
                    "Pisek closes the connection after a NOTIFICATION"
                );
                return n;
            }
        }
        panic!("connection closed without a NOTIFICATION");
    }

    /// Reads Pisek's OPEN and answers with `open` (raw bytes).
    pub fn exchange_open(&mut self, open: &[u8]) {
        let theirs = self.read_message().expect("Pisek's OPEN");
        assert_eq!(theirs[18], 1, "first message is an OPEN");
        self.send(open);
    }

    /// A full handshake with a well-formed OPEN from `router_id`.
    pub fn establish(&mut self, router_id: Ipv4Addr) {
        self.exchange_open(&raw_open(router_id, AS, 9, &[]));
        let ka = self.read_message().expect("KEEPALIVE");
        assert_eq!(ka[18], 4, "Pisek accepts the OPEN with a KEEPALIVE");
        self.send(&KEEPALIVE);
    }
}

/// A KEEPALIVE.
pub const KEEPALIVE: [u8; 19] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0, 19, 4,
];

/// An OPEN offering VPNv4 and VPNv6 with extra raw capabilities appended.
pub fn raw_open(router_id: Ipv4Addr, asn: u32, hold: u16, extra_caps: &[u8]) -> Vec<u8> {
    use pisek_overlay::bgp::packet::{Capability, Message, Open, SessionContext};
    let open = Open {
        my_as: u16::try_from(asn).unwrap_or(23456),
        hold_time: hold,
        bgp_id: router_id,
        capabilities: vec![
            Capability::Multiprotocol(Family::VPNV4),
            Capability::Multiprotocol(Family::VPNV6),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    };
    let mut out = Vec::new();
    Message::Open(open).encode(&SessionContext::default(), &mut out);
    if !extra_caps.is_empty() {
        // One more capabilities parameter; fix the lengths.
        out.push(2);
        out.push(extra_caps.len() as u8);
        out.extend_from_slice(extra_caps);
        out[28] += 2 + extra_caps.len() as u8;
        let len = out.len() as u16;
        out[16..18].copy_from_slice(&len.to_be_bytes());
    }
    out
}
