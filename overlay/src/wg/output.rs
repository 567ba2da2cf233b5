//! Where the WireGuard layer puts what it produces.
//!
//! The caller owns every buffer: the layer asks for the next free one, lets
//! boringtun write into it, and commits the length. A batching caller hands
//! out the slots of its `sendmmsg` / TUN batch here, so a packet is written
//! once, in place, and nothing is allocated per packet.

use std::net::SocketAddr;

use super::PeerId;

/// The smallest buffer boringtun accepts for any output (a handshake
/// initiation is 148 bytes; whitepaper §5.4.2).
pub const MIN_BUFFER_LEN: usize = 148;

/// Bytes WireGuard adds to a tunnel packet: 16 header + 16 Poly1305 tag
/// (whitepaper §5.4.6). The underlay adds its UDP/IP headers on top.
pub const DATA_OVERHEAD: usize = 32;

/// The caller's side of the WireGuard layer: buffers for datagrams to the
/// underlay and for decrypted packets to the tunnel side.
pub trait WgOutput {
    /// A free buffer for the next underlay datagram. It must hold the
    /// largest tunnel packet plus [`DATA_OVERHEAD`], and at least
    /// [`MIN_BUFFER_LEN`] bytes.
    fn datagram_buffer(&mut self) -> &mut [u8];

    /// The first `len` bytes of the buffer last returned by
    /// [`datagram_buffer`](Self::datagram_buffer) go to `endpoint`.
    fn send_datagram(&mut self, len: usize, endpoint: SocketAddr);

    /// A free buffer for the next decrypted packet, as large as the largest
    /// datagram the caller receives.
    fn tunnel_buffer(&mut self) -> &mut [u8];

    /// The first `len` bytes of the buffer last returned by
    /// [`tunnel_buffer`](Self::tunnel_buffer) are an IP packet that `peer`
    /// sent through the tunnel (its source is already checked).
    fn deliver_to_tunnel(&mut self, len: usize, peer: PeerId);
}
