//! TUN devices through `tun-rs` (see docs/benchmarks.md for why not
//! `tun-tap`): layer 3, no packet-information header, non-blocking; and
//! the batches a forwarding loop reads and writes them with, offload
//! (TSO/GRO super-packets) included.

use std::io;

use ipnet::IpNet;
use tun_rs::{DeviceBuilder, ExpandBuffer, GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use super::tun_read::{TunRead, read_offload};

/// A TUN device opened by [`open_tun`] (tun-rs's blocking-capable device,
/// used non-blocking here).
pub use tun_rs::SyncDevice;

use super::underlay::BATCH_SIZE;

/// The largest packet a TUN device with offload hands over or takes: a
/// TSO/GRO super-packet of up to 64 KiB behind its virtio-net header.
pub const TUN_SUPER_PACKET: usize = VIRTIO_NET_HDR_LEN + 65535;

/// How many packets a TUN queue holds for its reader by default (the
/// TUN's `txqueuelen`; the kernel's default for a TUN is 500, for an
/// Ethernet NIC 1000). The queue carries the reader across the moments
/// it waits for a CPU: with 500, 64-byte packets through `wg_peer` were
/// dropped at the full queue while the reader waited, and 1000 carried
/// 12 % more of them (docs/benchmarks.md, issue 14).
pub const TUN_QUEUE_LEN: u32 = 1000;

/// Creates (or, when `persist` was set earlier, re-attaches to) the TUN
/// device `name` with `address`, `mtu`, up, non-blocking. With `offload`
/// the device exchanges TSO/GRO super-packets behind a virtio-net header
/// (IFF_VNET_HDR), so one read or write carries up to 64 KiB of a flow.
pub fn open_tun(name: &str, address: IpNet, mtu: u16, offload: bool) -> io::Result<SyncDevice> {
    let builder = DeviceBuilder::new().name(name).mtu(mtu).with(|b| {
        b.offload(offload);
    });
    let builder = match address {
        IpNet::V4(a) => builder.ipv4(a.addr(), a.prefix_len(), None),
        IpNet::V6(a) => builder.ipv6(a.addr(), a.prefix_len()),
    };
    let dev = builder.build_sync()?;
    dev.set_nonblocking(true)?;
    Ok(dev)
}

/// Packets read from the TUN device: with offload one read returns either
/// one packet, used where it was read, or a super-packet cut into
/// MTU-sized packets (GSO in software, as wireguard-go does); without,
/// one packet per read.
pub struct TunReadBatch {
    read_buf: Vec<u8>,
    offload: bool,
    last: TunRead,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
}

impl TunReadBatch {
    /// Room for one read from a TUN opened with `offload` (or without): a
    /// super-packet and the packets it splits into, each at most
    /// `packet_len` bytes. Allocates every buffer now.
    pub fn new(packet_len: usize, offload: bool) -> TunReadBatch {
        TunReadBatch {
            read_buf: vec![0; TUN_SUPER_PACKET],
            offload,
            last: TunRead::Segments(0),
            bufs: vec![vec![0; packet_len]; IDEAL_BATCH_SIZE],
            sizes: vec![0; IDEAL_BATCH_SIZE],
        }
    }

    /// One read from `tun`: returns how many packets it held (see
    /// [`packet`](Self::packet)). `WouldBlock` when nothing waits,
    /// `InvalidInput` for a read whose header the packet contradicts (see
    /// [`split_read`](super::tun_read::split_read)).
    pub fn read(&mut self, tun: &SyncDevice) -> io::Result<usize> {
        // A failed read leaves no packet behind.
        self.last = TunRead::Segments(0);
        self.last = if self.offload {
            read_offload(tun, &mut self.read_buf, &mut self.bufs, &mut self.sizes)?
        } else {
            TunRead::Packet(0..tun.recv(&mut self.read_buf)?)
        };
        Ok(match &self.last {
            TunRead::Packet(_) => 1,
            TunRead::Segments(n) => *n,
        })
    }

    /// Packet `i` of the last read.
    pub fn packet(&self, i: usize) -> &[u8] {
        match &self.last {
            TunRead::Packet(range) => &self.read_buf[range.clone()],
            TunRead::Segments(_) => &self.bufs[i][..self.sizes[i]],
        }
    }
}

/// Packets on their way to a TUN device (decrypted, decapsulated): with
/// offload, tun-rs coalesces consecutive TCP/UDP segments of a flow (GRO)
/// into one write.
/// Each buffer keeps room for the virtio-net header in front and for a
/// coalesced super-packet behind, so coalescing never allocates.
pub struct TunWriteBatch {
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
    /// A batch of [`BATCH_SIZE`] packets; allocates every buffer now.
    pub fn new() -> TunWriteBatch {
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

    /// The payload area of the next buffer (behind the header room); a
    /// full batch is written to `tun` first.
    pub fn next(&mut self, tun: &SyncDevice) -> &mut [u8] {
        if self.count == self.bufs.len() {
            self.flush(tun);
        }
        &mut self.bufs[self.count].bytes[VIRTIO_NET_HDR_LEN..]
    }

    /// The next buffer holds a packet of `len` bytes.
    pub fn commit(&mut self, len: usize) {
        self.bufs[self.count].len = VIRTIO_NET_HDR_LEN + len;
        self.count += 1;
    }

    /// Writes the batch to `tun`, coalescing what it can; a refused write
    /// loses the batch and counts in [`errors`](Self::errors).
    pub fn flush(&mut self, tun: &SyncDevice) {
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

    /// Write batches the device refused.
    pub fn errors(&self) -> u64 {
        self.errors
    }
}

impl Default for TunWriteBatch {
    fn default() -> Self {
        TunWriteBatch::new()
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
