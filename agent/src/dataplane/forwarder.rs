//! The WireGuard forwarding loop: TUN ⇄ `WgInterface` ⇄ underlay UDP, on
//! one thread with `poll`.
//!
//! Each turn: commands → timers (every [`TICK`]) → poll → underlay batch
//! (recvmmsg → decrypt → TUN writes, replies batched) → TUN packets (read →
//! encrypt → batched) → one sendmmsg per batch.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use pisek_overlay::wg::{PeerId, PeerStatus, WgDropCounters, WgInterface, WgOutput};
use tun_rs::{ExpandBuffer, GROTable, IDEAL_BATCH_SIZE, SyncDevice, VIRTIO_NET_HDR_LEN};

use super::udp::{BATCH_SIZE, DatagramBatch, UdpBatchSocket};

/// How often the WireGuard timers run. boringtun rounds its timers to this
/// kind of granularity; wireguard-go's are similar.
pub const TICK: Duration = Duration::from_millis(100);

/// Room for the largest datagram we carry (an Ethernet jumbo frame).
const SLOT_LEN: usize = 9216;

/// The largest packet a TUN device with offload hands over or takes: a
/// TSO/GRO super-packet of up to 64 KiB behind its virtio-net header.
const TUN_SUPER_PACKET: usize = VIRTIO_NET_HDR_LEN + 65535;

/// What the owner of a running forwarder can ask of it.
pub enum ForwarderCommand {
    /// Forget every session so that each peer rekeys on its next packet.
    ExpireSessions,
    /// Send back a snapshot of peers and drops.
    Status(Sender<InterfaceStatus>),
}

/// A snapshot of the interface for display.
#[derive(Debug, Clone)]
pub struct InterfaceStatus {
    /// Every peer.
    pub peers: Vec<PeerStatus>,
    /// Drops that belong to no peer.
    pub drops: WgDropCounters,
    /// TUN write batches the device refused.
    pub tun_write_errors: u64,
}

/// The forwarder's [`Output`] over its own fields, borrowed apart from
/// `self.wg` so both can be used at once.
macro_rules! output {
    ($fwd:ident) => {
        Output {
            udp: &$fwd.udp,
            tx: &mut $fwd.to_underlay,
            tun: &$fwd.tun,
            to_tun: &mut $fwd.to_tun,
        }
    };
}

/// A WireGuard interface wired to a TUN device and an underlay socket.
pub struct WgForwarder {
    wg: WgInterface,
    tun: SyncDevice,
    udp: UdpBatchSocket,
    from_underlay: DatagramBatch,
    to_underlay: DatagramBatch,
    from_tun: TunReadBatch,
    to_tun: TunWriteBatch,
}

/// Packets read from the TUN device: with offload one read returns a
/// super-packet that tun-rs splits into MTU-sized packets (GSO in software,
/// as wireguard-go does); without, one packet per read.
struct TunReadBatch {
    super_packet: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
}

/// Decrypted packets on their way to the TUN device: with offload, tun-rs
/// coalesces consecutive TCP/UDP segments of a flow (GRO) into one write.
/// Each buffer keeps room for the virtio-net header in front and for a
/// coalesced super-packet behind, so coalescing never allocates.
struct TunWriteBatch {
    bufs: Vec<TunPacketBuf>,
    count: usize,
    gro: GROTable,
    errors: u64,
}

/// A packet buffer whose bytes are initialised once: its length is a
/// number, so reusing it costs no memset (a `Vec` truncated and resized
/// would zero up to 64 KiB per packet).
struct TunPacketBuf {
    bytes: Vec<u8>,
    len: usize,
}

impl AsRef<[u8]> for TunPacketBuf {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl AsMut<[u8]> for TunPacketBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }
}

impl ExpandBuffer for TunPacketBuf {
    fn buf_capacity(&self) -> usize {
        self.bytes.len()
    }

    fn buf_resize(&mut self, new_len: usize, value: u8) {
        if new_len > self.bytes.len() {
            self.bytes.resize(new_len, value);
        }
        if new_len > self.len {
            self.bytes[self.len..new_len].fill(value);
        }
        self.len = new_len;
    }

    fn buf_extend_from_slice(&mut self, src: &[u8]) {
        let end = self.len + src.len();
        if end > self.bytes.len() {
            self.bytes.resize(end, 0);
        }
        self.bytes[self.len..end].copy_from_slice(src);
        self.len = end;
    }
}

impl TunWriteBatch {
    fn new() -> TunWriteBatch {
        TunWriteBatch {
            bufs: (0..BATCH_SIZE)
                .map(|_| TunPacketBuf {
                    bytes: vec![0; TUN_SUPER_PACKET],
                    len: 0,
                })
                .collect(),
            count: 0,
            gro: GROTable::new(),
            errors: 0,
        }
    }

    /// The payload area of the next buffer (behind the header room).
    fn next(&mut self, tun: &SyncDevice) -> &mut [u8] {
        if self.count == self.bufs.len() {
            self.flush(tun);
        }
        &mut self.bufs[self.count].bytes[VIRTIO_NET_HDR_LEN..]
    }

    fn commit(&mut self, len: usize) {
        self.bufs[self.count].len = VIRTIO_NET_HDR_LEN + len;
        self.count += 1;
    }

    fn flush(&mut self, tun: &SyncDevice) {
        if self.count == 0 {
            return;
        }
        let bufs = &mut self.bufs[..self.count];
        if tun
            .send_multiple(&mut self.gro, bufs, VIRTIO_NET_HDR_LEN)
            .is_err()
        {
            self.errors += 1;
        }
        self.count = 0;
    }
}

impl WgForwarder {
    /// Joins `wg` to `tun` and `udp`; allocates every buffer now.
    pub fn new(wg: WgInterface, tun: SyncDevice, udp: UdpBatchSocket) -> WgForwarder {
        WgForwarder {
            wg,
            tun,
            udp,
            from_underlay: DatagramBatch::new(BATCH_SIZE, SLOT_LEN),
            to_underlay: DatagramBatch::new(BATCH_SIZE, SLOT_LEN),
            from_tun: TunReadBatch {
                super_packet: vec![0; TUN_SUPER_PACKET],
                bufs: vec![vec![0; SLOT_LEN]; IDEAL_BATCH_SIZE],
                sizes: vec![0; IDEAL_BATCH_SIZE],
            },
            to_tun: TunWriteBatch::new(),
        }
    }

    /// The WireGuard interface (for status and configuration).
    pub fn interface(&mut self) -> &mut WgInterface {
        &mut self.wg
    }

    /// Runs until `stop` is set, serving `commands` between batches.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        commands: &Receiver<ForwarderCommand>,
    ) -> io::Result<()> {
        let mut next_tick = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            while let Ok(cmd) = commands.try_recv() {
                self.command(cmd);
            }
            let now = Instant::now();
            if now >= next_tick {
                let mut out = output!(self);
                self.wg.update_timers(now, &mut out);
                self.flush()?;
                next_tick = now + TICK;
            }
            let (underlay_ready, tun_ready) = self.poll(next_tick)?;
            if underlay_ready {
                self.decrypt_underlay_batch()?;
            }
            if tun_ready {
                self.encrypt_tun_packets()?;
            }
        }
        Ok(())
    }

    fn command(&mut self, cmd: ForwarderCommand) {
        match cmd {
            ForwarderCommand::ExpireSessions => {
                let ids: Vec<PeerId> = self.wg.peers().map(|p| p.id).collect();
                for id in ids {
                    let _ = self.wg.expire_sessions(id);
                }
            }
            ForwarderCommand::Status(reply) => {
                let _ = reply.send(InterfaceStatus {
                    peers: self.wg.peers().collect(),
                    drops: self.wg.drops().clone(),
                    tun_write_errors: self.to_tun.errors,
                });
            }
        }
    }

    /// Waits for either side, at most until `deadline`.
    fn poll(&self, deadline: Instant) -> io::Result<(bool, bool)> {
        let mut fds = [
            libc::pollfd {
                fd: self.udp.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.tun.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timeout = deadline.saturating_duration_since(Instant::now());
        let timeout_ms = timeout.as_millis().clamp(0, 1000) as libc::c_int;
        // SAFETY: two live pollfds.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok((false, false));
            }
            return Err(err);
        }
        Ok((fds[0].revents != 0, fds[1].revents != 0))
    }

    /// recvmmsg → decrypt → TUN, until the socket is drained (bounded, so
    /// the TUN side gets its turn).
    fn decrypt_underlay_batch(&mut self) -> io::Result<()> {
        for _ in 0..4 {
            let n = self.udp.recv_batch(&mut self.from_underlay)?;
            if n == 0 {
                break;
            }
            let now = Instant::now();
            let mut out = output!(self);
            for i in 0..n {
                let (datagram, from) = self.from_underlay.get(i);
                // Drops are counted inside the interface.
                let _ = self.wg.receive(datagram, from, now, &mut out);
            }
            self.to_tun.flush(&self.tun);
            self.flush()?;
            if n < self.from_underlay.capacity() {
                break;
            }
        }
        Ok(())
    }

    /// TUN reads → encrypt → sendmmsg, a batch at a time.
    fn encrypt_tun_packets(&mut self) -> io::Result<()> {
        let now = Instant::now();
        for _ in 0..BATCH_SIZE {
            let read = &mut self.from_tun;
            let n = match self.tun.recv_multiple(
                &mut read.super_packet,
                &mut read.bufs,
                &mut read.sizes,
                0,
            ) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A super-packet tun-rs cannot split: drop it, carry on.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput || e.raw_os_error().is_none() => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut out = output!(self);
            for i in 0..n {
                let packet = &self.from_tun.bufs[i][..self.from_tun.sizes[i]];
                let _ = self.wg.send(packet, now, &mut out);
            }
        }
        self.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.to_underlay.is_empty() {
            self.udp.send_batch(&mut self.to_underlay)?;
        }
        Ok(())
    }
}

/// The forwarder's buffers as the interface sees them: datagrams go into
/// the send batch, decrypted packets into the TUN write batch (each flushed
/// when full and after every underlay batch).
struct Output<'a> {
    udp: &'a UdpBatchSocket,
    tx: &'a mut DatagramBatch,
    tun: &'a SyncDevice,
    to_tun: &'a mut TunWriteBatch,
}

impl WgOutput for Output<'_> {
    fn datagram_buffer(&mut self) -> &mut [u8] {
        if self.tx.is_full() {
            // A send error here is the same loss as a full socket buffer.
            let _ = self.udp.send_batch(self.tx);
        }
        self.tx.next_slot()
    }

    fn send_datagram(&mut self, len: usize, endpoint: std::net::SocketAddr) {
        self.tx.commit(len, endpoint);
    }

    fn tunnel_buffer(&mut self) -> &mut [u8] {
        self.to_tun.next(self.tun)
    }

    fn deliver_to_tunnel(&mut self, len: usize, _peer: PeerId) {
        self.to_tun.commit(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_tun_buffer_shows_only_its_length_and_grows_like_a_vec() {
        let mut b = TunPacketBuf {
            bytes: vec![7; 8],
            len: 0,
        };
        assert!(b.as_ref().is_empty());
        b.buf_resize(3, 1);
        assert_eq!(b.as_ref(), &[1, 1, 1]);
        b.buf_extend_from_slice(&[2, 3]);
        assert_eq!(b.as_ref(), &[1, 1, 1, 2, 3]);
        b.buf_resize(2, 0);
        assert_eq!(b.as_ref(), &[1, 1]);
        // Past the initial bytes it grows.
        b.buf_extend_from_slice(&[9; 10]);
        assert_eq!(b.as_ref().len(), 12);
        assert_eq!(b.buf_capacity(), 12);
        assert_eq!(&b.as_ref()[2..], &[9; 10]);
    }
}
