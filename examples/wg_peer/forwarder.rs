//! The WireGuard forwarding loop of `wg_peer`: TUN ⇄ `WgInterface` ⇄
//! underlay UDP, on one thread with `poll`, built from the agent's data
//! plane types (batched UDP socket, TUN read/write batches, poll set).
//!
//! Each turn: commands → timers (every [`TICK`]) → poll → underlay batch
//! (recvmmsg → decrypt → TUN writes, replies batched) → TUN packets (read →
//! encrypt → batched) → one sendmmsg per batch.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use pisek_agent::dataplane::tun::{SyncDevice, TunReadBatch, TunWriteBatch};
use pisek_agent::dataplane::{BATCH_SIZE, DatagramBatch, GRO_SLOT_LEN, PollSet, UdpBatchSocket};
use pisek_overlay::wg::{PeerId, PeerStatus, WgDropCounters, WgInterface, WgOutput};

/// How often the WireGuard timers run. boringtun rounds its timers to this
/// kind of granularity; wireguard-go's are similar.
pub const TICK: Duration = Duration::from_millis(100);

/// Room for the largest datagram we carry (an Ethernet jumbo frame).
const SLOT_LEN: usize = 9216;

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
    /// The underlay socket (0) and the TUN device (1).
    ready: PollSet,
}

impl WgForwarder {
    /// Joins `wg` to `tun` (opened with `offload` or without) and `udp`;
    /// allocates every buffer now.
    pub fn new(
        wg: WgInterface,
        tun: SyncDevice,
        mut udp: UdpBatchSocket,
        offload: bool,
    ) -> WgForwarder {
        // The receive batch has GRO-sized slots: the kernel may hand over
        // a burst of a flow as one message (split by recv_batch).
        udp.enable_gro();
        let ready = PollSet::new([udp.as_raw_fd(), tun.as_raw_fd()]);
        WgForwarder {
            wg,
            tun,
            udp,
            from_underlay: DatagramBatch::new(BATCH_SIZE, GRO_SLOT_LEN),
            to_underlay: DatagramBatch::new(BATCH_SIZE, SLOT_LEN),
            from_tun: TunReadBatch::new(SLOT_LEN, offload),
            to_tun: TunWriteBatch::new(),
            ready,
        }
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
                    tun_write_errors: self.to_tun.errors(),
                });
            }
        }
    }

    /// Waits for either side, at most until `deadline`.
    fn poll(&mut self, deadline: Instant) -> io::Result<(bool, bool)> {
        self.ready.wait(deadline)?;
        Ok((self.ready.is_ready(0), self.ready.is_ready(1)))
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
            if !self.from_underlay.is_full() {
                break;
            }
        }
        Ok(())
    }

    /// TUN reads → encrypt → sendmmsg, a batch at a time.
    fn encrypt_tun_packets(&mut self) -> io::Result<()> {
        let now = Instant::now();
        for _ in 0..BATCH_SIZE {
            let n = match self.from_tun.read(&self.tun) {
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
                let packet = self.from_tun.packet(i);
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
