//! The queue's record framing, free of I/O so it can be fuzzed and tested alone.
//!
//! ```text
//! +----------------+----------------+------------------+
//! | length u32 LE  | crc32 u32 LE   | payload (length) |
//! +----------------+----------------+------------------+
//! crc32 (IEEE) covers the four length bytes and the payload.
//! ```
//! A record is valid only when it is complete and its checksum matches, so a
//! write torn by a crash or power cut (a short tail, a zeroed tail, a length
//! that points past the end) is found on open and cut off.

/// Bytes before the payload.
pub const HEADER_LEN: usize = 8;

/// The largest payload a record may carry (one message's Graphite lines).
pub const MAX_PAYLOAD: usize = 4 * 1024 * 1024;

mod field {
    use std::ops::Range;
    pub const LENGTH: Range<usize> = 0..4;
    pub const CRC: Range<usize> = 4..8;
}

/// What is at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A valid record: its payload is `buf[HEADER_LEN..HEADER_LEN + payload_len]`.
    Complete {
        /// The payload's length.
        payload_len: usize,
    },
    /// The buffer ends inside a record (a torn tail, or read more).
    Incomplete,
    /// The bytes are not a valid record (bad checksum or impossible length).
    Corrupt,
}

impl Frame {
    /// The whole record's length, header included, if complete.
    pub fn record_len(&self) -> Option<usize> {
        match self {
            Frame::Complete { payload_len } => Some(HEADER_LEN + payload_len),
            _ => None,
        }
    }
}

fn checksum(length: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(length);
    h.update(payload);
    h.finalize()
}

/// Appends one record carrying `payload` to `out`.
///
/// # Panics
/// If `payload` is longer than [`MAX_PAYLOAD`]; callers check first.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= MAX_PAYLOAD, "record payload too large");
    let length = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&checksum(&length, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Looks at the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Frame {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Frame::Incomplete;
    };
    let length = &header[field::LENGTH];
    let payload_len = u32::from_le_bytes([length[0], length[1], length[2], length[3]]) as usize;
    if payload_len > MAX_PAYLOAD {
        return Frame::Corrupt;
    }
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + payload_len) else {
        return Frame::Incomplete;
    };
    let crc = &header[field::CRC];
    if u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) != checksum(length, payload) {
        return Frame::Corrupt;
    }
    Frame::Complete { payload_len }
}

/// The length of the longest prefix of `buf` made of valid records, and how
/// many records it holds. Everything after it is a torn or corrupt tail.
pub fn valid_prefix(buf: &[u8]) -> (usize, usize) {
    let (mut at, mut records) = (0, 0);
    while let Some(len) = decode(&buf[at..]).record_len() {
        at += len;
        records += 1;
    }
    (at, records)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "a 1 2\n" as a record: length 6, crc32 of 06 00 00 00 'a 1 2\n'.
    fn fixture() -> Vec<u8> {
        let mut v = Vec::new();
        encode(b"a 1 2\n", &mut v);
        v
    }

    #[test]
    fn round_trips_a_record() {
        let rec = fixture();
        assert_eq!(rec.len(), HEADER_LEN + 6);
        assert_eq!(&rec[..4], &[6, 0, 0, 0]);
        assert_eq!(decode(&rec), Frame::Complete { payload_len: 6 });
        assert_eq!(&rec[HEADER_LEN..], b"a 1 2\n");
    }

    #[test]
    fn a_torn_tail_is_incomplete_at_every_cut() {
        let rec = fixture();
        for cut in 0..rec.len() {
            assert_eq!(decode(&rec[..cut]), Frame::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let rec = fixture();
        for byte in 0..rec.len() {
            for bit in 0..8 {
                let mut bad = rec.clone();
                bad[byte] ^= 1 << bit;
                assert_ne!(
                    decode(&bad),
                    Frame::Complete { payload_len: 6 },
                    "flip {byte}:{bit}"
                );
            }
        }
    }

    #[test]
    fn valid_prefix_stops_at_the_first_bad_record() {
        let mut log = Vec::new();
        encode(b"one\n", &mut log);
        encode(b"two\n", &mut log);
        let good = log.len();
        encode(b"three\n", &mut log);
        log.truncate(log.len() - 2);
        assert_eq!(valid_prefix(&log), (good, 2));
        log.truncate(good);
        log.extend_from_slice(&[0; 32]);
        // A zeroed tail (a file extended but never written) is a zero-length
        // record with a wrong checksum.
        assert_eq!(valid_prefix(&log), (good, 2));
    }

    #[test]
    fn an_impossible_length_is_corrupt() {
        let mut rec = fixture();
        rec[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&rec), Frame::Corrupt);
    }
}
