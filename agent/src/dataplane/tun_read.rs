//! What one read from an offload TUN (IFF_VNET_HDR) holds: a virtio-net
//! header, then either one packet, whose checksum the reader may have to
//! complete, or a TSO/USO super-packet to cut into segments.
//!
//! tun-rs's `recv_multiple` does the same, but first checks every output
//! buffer, on every read, and copies a lone packet into the first: with
//! 64-byte packets, one per read, that was 5 % of a sending thread
//! (docs/benchmarks.md, issue 14). Here a lone packet stays where it was
//! read, and only a super-packet meets the output buffers.

use std::io;
use std::ops::Range;

use tun_rs::{SyncDevice, VIRTIO_NET_HDR_GSO_UDP_L4, VIRTIO_NET_HDR_LEN, VirtioNetHdr, gso_split};

/// `gso_type` of a packet that is not a super-packet (linux/virtio_net.h).
const GSO_NONE: u8 = 0;
/// The ECN bit of `gso_type`: the TCP super-packet carries CWR.
const GSO_ECN: u8 = 0x80;
/// `flags`: the transport checksum is partial (CHECKSUM_PARTIAL), to be
/// completed from `csum_start` on and stored at `csum_offset` past it.
const F_NEEDS_CSUM: u8 = 1;
/// A UDP header's length: a USO super-packet's headers end there.
const UDP_HEADER_LEN: u16 = 8;

/// The packets of one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunRead {
    /// One packet, complete, at this range of the read buffer.
    Packet(Range<usize>),
    /// A super-packet split into this many packets, in the output buffers.
    Segments(usize),
}

/// Reads once from `tun` (opened with offload) into `buf`, and splits
/// what came: see [`split_read`]. `WouldBlock` when nothing waits.
pub fn read_offload<B: AsRef<[u8]> + AsMut<[u8]>>(
    tun: &SyncDevice,
    buf: &mut [u8],
    segments: &mut [B],
    sizes: &mut [usize],
) -> io::Result<TunRead> {
    let len = tun.recv(buf)?;
    split_read(&mut buf[..len], segments, sizes)
}

/// Splits `read`, the bytes of one read from an offload TUN: a lone packet
/// gets its checksum completed in place; a super-packet is cut into
/// `segments` (their lengths in `sizes`), each with its own headers and
/// checksums. A header the packet contradicts is `InvalidInput`: the
/// caller drops that read and goes on.
pub fn split_read<B: AsRef<[u8]> + AsMut<[u8]>>(
    read: &mut [u8],
    segments: &mut [B],
    sizes: &mut [usize],
) -> io::Result<TunRead> {
    if read.len() <= VIRTIO_NET_HDR_LEN {
        return Err(invalid("a TUN read no longer than its virtio-net header"));
    }
    let (hdr, packet) = read.split_at_mut(VIRTIO_NET_HDR_LEN);
    let mut hdr = VirtioNetHdr::decode(hdr)?;
    if hdr.gso_type == GSO_NONE {
        if hdr.flags & F_NEEDS_CSUM != 0 {
            complete_checksum(packet, hdr.csum_start, hdr.csum_offset)?;
        }
        return Ok(TunRead::Packet(VIRTIO_NET_HDR_LEN..read.len()));
    }
    let is_v6 = match packet[0] >> 4 {
        4 => false,
        6 => true,
        _ => return Err(invalid("a super-packet that is neither IPv4 nor IPv6")),
    };
    // The kernel's hdr_len may span a whole first segment (on the forward
    // path): the headers' length is the transport header's, read here, as
    // wireguard-go and tun-rs do.
    let transport_len = if hdr.gso_type & !GSO_ECN == VIRTIO_NET_HDR_GSO_UDP_L4 {
        UDP_HEADER_LEN
    } else {
        let data_offset = packet
            .get(usize::from(hdr.csum_start) + 12)
            .ok_or_else(|| invalid("a TCP super-packet shorter than its header"))?;
        let len = u16::from(data_offset >> 4) * 4;
        if !(20..=60).contains(&len) {
            return Err(invalid(
                "a TCP super-packet with a header length out of range",
            ));
        }
        len
    };
    hdr.hdr_len = hdr
        .csum_start
        .checked_add(transport_len)
        .ok_or_else(|| invalid("a super-packet's headers longer than 64 KiB"))?;
    gso_split(packet, hdr, segments, sizes, 0, is_v6).map(TunRead::Segments)
}

/// Completes a partial transport checksum: the field holds the
/// pseudo-header's sum; the sum of everything from `start` on replaces it.
fn complete_checksum(packet: &mut [u8], start: u16, offset: u16) -> io::Result<()> {
    let start = usize::from(start);
    let at = start + usize::from(offset);
    if at + 2 > packet.len() || at < start {
        return Err(invalid("a partial checksum outside the packet"));
    }
    let initial = u16::from_be_bytes([packet[at], packet[at + 1]]);
    packet[at..at + 2].fill(0);
    let sum = tun_rs::checksum(&packet[start..], u64::from(initial));
    packet[at..at + 2].copy_from_slice(&(!sum).to_be_bytes());
    Ok(())
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ipv4Header, PacketBuilder, SlicedPacket, TransportSlice};

    /// A virtio-net header followed by `packet`.
    fn read_of(hdr: VirtioNetHdr, packet: &[u8]) -> Vec<u8> {
        let mut read = vec![0; VIRTIO_NET_HDR_LEN];
        hdr.encode(&mut read).expect("room for the header");
        read.extend_from_slice(packet);
        read
    }

    fn udp_packet(payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ipv4([10, 9, 0, 1], [10, 9, 0, 2], 64).udp(5201, 5201);
        let mut packet = Vec::new();
        builder.write(&mut packet, payload).expect("a packet");
        packet
    }

    fn udp_checksum(packet: &[u8]) -> u16 {
        match SlicedPacket::from_ip(packet).expect("IPv4").transport {
            Some(TransportSlice::Udp(udp)) => udp.checksum(),
            other => panic!("not UDP: {other:?}"),
        }
    }

    /// The sum over the pseudo-header, as the kernel leaves it in a
    /// CHECKSUM_PARTIAL packet's field.
    fn pseudo_header_sum(packet: &[u8]) -> u16 {
        let mut pseudo = packet[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&((packet.len() - 20) as u16).to_be_bytes());
        tun_rs::checksum(&pseudo, 0)
    }

    #[test]
    fn a_lone_packet_stays_in_place_with_its_partial_checksum_completed() {
        let whole = udp_packet(&[0x5a; 36]);
        let mut partial = whole.clone();
        let sum = pseudo_header_sum(&whole);
        partial[26..28].copy_from_slice(&sum.to_be_bytes());
        let hdr = VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 6,
            ..VirtioNetHdr::default()
        };
        let mut read = read_of(hdr, &partial);
        let mut segments = [[0u8; 0]; 0];
        let got = split_read(&mut read, &mut segments, &mut []).expect("a packet");
        assert_eq!(got, TunRead::Packet(VIRTIO_NET_HDR_LEN..read.len()));
        let TunRead::Packet(range) = got else {
            unreachable!()
        };
        assert_eq!(&read[range], &whole[..]);
        assert_eq!(
            udp_checksum(&read[VIRTIO_NET_HDR_LEN..]),
            udp_checksum(&whole)
        );
    }

    #[test]
    fn a_packet_with_a_complete_checksum_is_left_as_it_came() {
        let whole = udp_packet(b"sensor");
        let mut read = read_of(VirtioNetHdr::default(), &whole);
        let got = split_read::<Vec<u8>>(&mut read, &mut [], &mut []).expect("a packet");
        assert_eq!(got, TunRead::Packet(VIRTIO_NET_HDR_LEN..read.len()));
        assert_eq!(&read[VIRTIO_NET_HDR_LEN..], &whole[..]);
    }

    #[test]
    fn a_udp_super_packet_is_cut_into_datagrams_of_gso_size() {
        // Three datagrams of 100 bytes and one of 40 as the kernel hands
        // them over: one UDP header, a partial checksum, gso_size 100.
        let super_packet = udp_packet(&[7; 340]);
        let hdr = VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: VIRTIO_NET_HDR_GSO_UDP_L4,
            hdr_len: 1000, // untrusted: recomputed from the headers
            gso_size: 100,
            csum_start: 20,
            csum_offset: 6,
        };
        let mut read = read_of(hdr, &super_packet);
        let mut segments = vec![vec![0u8; 1500]; 8];
        let mut sizes = vec![0; 8];
        let got = split_read(&mut read, &mut segments, &mut sizes).expect("segments");
        assert_eq!(got, TunRead::Segments(4));
        assert_eq!(&sizes[..4], &[128, 128, 128, 68]);
        for (i, (segment, &len)) in segments.iter().zip(&sizes).take(4).enumerate() {
            // Each datagram its own IPv4 identification, as the kernel's
            // segmentation numbers them.
            let mut expect = udp_packet(&vec![7; len - 28]);
            let (mut ip, _) = Ipv4Header::from_slice(&expect).expect("IPv4");
            ip.identification = i as u16;
            ip.header_checksum = ip.calc_header_checksum();
            expect[..20].copy_from_slice(&ip.to_bytes());
            assert_eq!(
                &segment[..len],
                &expect[..],
                "headers, lengths and checksums"
            );
        }
    }

    #[test]
    fn headers_that_contradict_the_packet_are_invalid_input_not_a_panic() {
        let packet = udp_packet(b"x");
        let cases = [
            (
                "checksum past the end",
                VirtioNetHdr {
                    flags: F_NEEDS_CSUM,
                    csum_start: 20,
                    csum_offset: 200,
                    ..VirtioNetHdr::default()
                },
                packet.clone(),
            ),
            (
                "super-packet of another IP version",
                VirtioNetHdr {
                    gso_type: VIRTIO_NET_HDR_GSO_UDP_L4,
                    gso_size: 100,
                    csum_start: 20,
                    csum_offset: 6,
                    ..VirtioNetHdr::default()
                },
                vec![0x10; 40],
            ),
            (
                "TCP super-packet cut short",
                VirtioNetHdr {
                    gso_type: tun_rs::VIRTIO_NET_HDR_GSO_TCPV4,
                    gso_size: 100,
                    csum_start: 20,
                    csum_offset: 16,
                    ..VirtioNetHdr::default()
                },
                packet[..24].to_vec(),
            ),
            (
                "gso_size zero",
                VirtioNetHdr {
                    gso_type: VIRTIO_NET_HDR_GSO_UDP_L4,
                    csum_start: 20,
                    csum_offset: 6,
                    ..VirtioNetHdr::default()
                },
                packet.clone(),
            ),
        ];
        for (what, hdr, packet) in cases {
            let mut read = read_of(hdr, &packet);
            let mut segments = vec![vec![0u8; 1500]; 4];
            let err = split_read(&mut read, &mut segments, &mut [0; 4]).expect_err(what);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{what}: {err}");
        }
        let err = split_read::<Vec<u8>>(&mut [0; VIRTIO_NET_HDR_LEN], &mut [], &mut [])
            .expect_err("a bare header");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
