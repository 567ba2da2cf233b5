//! The pipeline's [`WgOutput`]: WireGuard writes datagrams straight into the
//! caller's underlay batch and decrypted packets into the pipeline's
//! scratch buffer. When the batch is full, the datagram lands in an
//! overflow buffer and is counted as dropped (`QueueFull`), never blocked
//! on: the caller sizes its batches, the pipeline does not wait.

use super::batch::{Interface, PacketBatch};
use crate::wg::{PeerId, WgOutput};
use std::net::SocketAddr;

pub(crate) struct WgSink<'a> {
    pub underlay: &'a mut PacketBatch,
    pub overflow: &'a mut [u8],
    pub tunnel: &'a mut [u8],
    /// The packet WireGuard decrypted into `tunnel`: length and sender.
    pub delivered: Option<(usize, PeerId)>,
    /// Datagrams that found the batch full.
    pub overflowed: u64,
}

impl<'a> WgSink<'a> {
    pub fn new(
        underlay: &'a mut PacketBatch,
        overflow: &'a mut [u8],
        tunnel: &'a mut [u8],
    ) -> WgSink<'a> {
        WgSink {
            underlay,
            overflow,
            tunnel,
            delivered: None,
            overflowed: 0,
        }
    }
}

impl WgOutput for WgSink<'_> {
    fn datagram_buffer(&mut self) -> &mut [u8] {
        match self.underlay.free_slot() {
            Some(slot) => slot,
            None => self.overflow,
        }
    }

    fn send_datagram(&mut self, len: usize, endpoint: SocketAddr) {
        if !self.underlay.commit_entry(len, endpoint, Interface::Fabric) {
            self.overflowed += 1;
        }
    }

    fn tunnel_buffer(&mut self) -> &mut [u8] {
        self.tunnel
    }

    fn deliver_to_tunnel(&mut self, len: usize, peer: PeerId) {
        self.delivered = Some((len, peer));
    }
}
