//! The durable on-disk queue: a checksummed, append-only segment log.
//!
//! ```text
//! <dir>/00000000000000000000.seg   records [0, 8 MiB)
//! <dir>/00000000000008388619.seg   records from byte 8388619 of the stream on
//! <dir>/ack                        position up to which Graphite has the data
//! ```
//! Positions are byte offsets in one endless stream; a segment file is named
//! by the position of its first record. Records never span segments.
//!
//! Durability (see docs/collector.md):
//! - [`DurableQueue::append`] only buffers; [`DurableQueue::commit`] writes
//!   and `fdatasync`s the head segment. The MQTT side acknowledges a message
//!   only after the commit that holds it returned: group commit, one fsync per
//!   burst of messages.
//! - A segment is fsynced before the next one is created, and the directory
//!   is fsynced after a segment is created, so only the head segment can have
//!   a torn tail. [`DurableQueue::open`] finds it by checksum and truncates it.
//! - The ack position is rewritten in place (12 bytes with a checksum) without
//!   fsync: losing it in a crash only resends points Graphite already has,
//!   which overwrite themselves (same path and timestamp). A damaged ack file
//!   falls back to the oldest segment.
//! - Segments wholly before the ack position are deleted.
//! - The queue is bounded: [`DurableQueue::append`] refuses with
//!   [`QueueError::Full`] once unacknowledged bytes would pass `max_bytes`, and
//!   the MQTT side stops acknowledging until Graphite drains it.

pub mod record;
pub mod shared;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where and how big the queue is.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// The queue's own directory (created if missing).
    pub dir: PathBuf,
    /// Unacknowledged bytes at most (the full-queue limit).
    pub max_bytes: u64,
    /// Size at which a new segment is started.
    pub segment_bytes: u64,
}

/// Why an append or an I/O step failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue holds `max_bytes` of data Graphite has not taken yet.
    #[error("queue is full")]
    Full,
    /// The payload is larger than one record may be.
    #[error("record of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// The file system failed.
    #[error("queue I/O in {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> QueueError + '_ {
    move |source| QueueError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`DurableQueue::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segments found.
    pub segments: usize,
    /// Bytes of a torn or corrupt tail that were cut off the head segment.
    pub truncated_bytes: u64,
    /// Unacknowledged bytes waiting to be sent.
    pub pending_bytes: u64,
    /// True when the ack file was missing or damaged.
    pub ack_reset: bool,
}

struct Segment {
    start: u64,
    path: PathBuf,
}

/// The queue. Not thread-safe by itself: the collector keeps it in a mutex.
pub struct DurableQueue {
    opts: QueueOptions,
    /// Oldest first; the last one is the head that appends go to.
    segments: VecDeque<Segment>,
    head: File,
    /// Appended records not yet written to the head file.
    pending: Vec<u8>,
    /// Stream position of the end of the written (not necessarily synced) data.
    written: u64,
    /// Stream position after the last appended record.
    end: u64,
    ack: u64,
    ack_file: File,
    /// The reader's open segment: (start, file).
    reader: Option<(u64, File)>,
    /// Records the reader skipped because their checksum failed.
    corrupt_skips: u64,
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}.seg"))
}

fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl DurableQueue {
    /// Opens (or creates) the queue in `opts.dir`, cutting off a torn tail.
    pub fn open(opts: QueueOptions) -> Result<(DurableQueue, Recovery), QueueError> {
        let dir = opts.dir.clone();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut starts: Vec<u64> = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(start) = name.strip_suffix(".seg").and_then(|s| s.parse().ok()) {
                starts.push(start);
            }
        }
        starts.sort_unstable();
        let mut recovery = Recovery {
            segments: starts.len(),
            ..Recovery::default()
        };

        let ack_path = dir.join("ack");
        let ack_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&ack_path)
            .map_err(io_err(&ack_path))?;
        let stored_ack = read_ack(&ack_file);

        if starts.is_empty() {
            // A fresh queue continues the stream where the ack says, so a
            // queue whose segments were removed by hand starts cleanly.
            let start = stored_ack.unwrap_or(0);
            let path = segment_path(&dir, start);
            File::create(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&path))?;
            sync_dir(&dir)?;
            starts.push(start);
        }
        let segments: VecDeque<Segment> = starts
            .iter()
            .map(|&start| Segment {
                start,
                path: segment_path(&dir, start),
            })
            .collect();

        // Only the head can be torn (older segments were synced before the
        // next was created): keep its valid prefix.
        let head_seg = segments.back().expect("at least one segment");
        // O_APPEND: every write lands at the end, also after a truncation.
        let head = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&head_seg.path)
            .map_err(io_err(&head_seg.path))?;
        let file_len = head.metadata().map_err(io_err(&head_seg.path))?.len();
        let valid = valid_length(&head).map_err(io_err(&head_seg.path))?;
        if valid < file_len {
            recovery.truncated_bytes = file_len - valid;
            head.set_len(valid)
                .and_then(|()| head.sync_all())
                .map_err(io_err(&head_seg.path))?;
        }
        let end = head_seg.start + valid;
        let first = segments.front().expect("at least one segment").start;
        let ack = match stored_ack {
            Some(a) if a >= first && a <= end => a,
            Some(a) if a > end => end,
            _ => {
                recovery.ack_reset = true;
                first
            }
        };
        recovery.pending_bytes = end - ack;
        let mut queue = DurableQueue {
            opts,
            segments,
            head,
            pending: Vec::new(),
            written: end,
            end,
            ack,
            ack_file,
            reader: None,
            corrupt_skips: 0,
        };
        queue.write_ack()?;
        queue.delete_acked_segments();
        Ok((queue, recovery))
    }

    /// Buffers one record; it is durable after the next [`commit`](Self::commit).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), QueueError> {
        if payload.len() > record::MAX_PAYLOAD {
            return Err(QueueError::TooLarge(payload.len()));
        }
        let len = (record::HEADER_LEN + payload.len()) as u64;
        if self.end + len - self.ack > self.opts.max_bytes {
            return Err(QueueError::Full);
        }
        let head_start = self.segments.back().map_or(0, |s| s.start);
        if self.end > head_start && self.end - head_start + len > self.opts.segment_bytes {
            self.rotate()?;
        }
        record::encode(payload, &mut self.pending);
        self.end += len;
        Ok(())
    }

    /// Writes the buffered records to the head segment, without fsync; the
    /// reader sees them after this.
    pub fn flush(&mut self) -> Result<(), QueueError> {
        if !self.pending.is_empty() {
            let path = &self.segments.back().expect("head").path;
            self.head.write_all(&self.pending).map_err(io_err(path))?;
            self.pending.clear();
            self.written = self.end;
        }
        Ok(())
    }

    /// Writes and fsyncs everything appended so far. After it returns, the
    /// records survive a crash or power loss.
    pub fn commit(&mut self) -> Result<(), QueueError> {
        self.flush()?;
        let path = &self.segments.back().expect("head").path;
        self.head.sync_data().map_err(io_err(path))
    }

    fn rotate(&mut self) -> Result<(), QueueError> {
        self.commit()?;
        let path = segment_path(&self.opts.dir, self.end);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        sync_dir(&self.opts.dir)?;
        self.head = file;
        self.segments.push_back(Segment {
            start: self.end,
            path,
        });
        Ok(())
    }

    /// Reads whole records from stream position `from` (a record boundary,
    /// at or after the ack position), appending their payloads to `out`:
    /// about `max_bytes` at most (always at least one record if there is one).
    /// Returns the position after the last record read; equal to `from` when
    /// nothing new has been written.
    pub fn read(
        &mut self,
        from: u64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<u64, QueueError> {
        let mut pos = from.max(self.ack);
        let mut chunk = Vec::new();
        let limit = out.len().saturating_add(max_bytes);
        while pos < self.written && out.len() < limit {
            let Some(i) = self.segments.iter().rposition(|s| s.start <= pos) else {
                break;
            };
            let seg_start = self.segments[i].start;
            let seg_end = self
                .segments
                .get(i + 1)
                .map_or(self.written, |next| next.start);
            if pos >= seg_end {
                pos = seg_end;
                continue;
            }
            if self.reader.as_ref().is_none_or(|(s, _)| *s != seg_start) {
                let path = &self.segments[i].path;
                let file = File::open(path).map_err(io_err(path))?;
                self.reader = Some((seg_start, file));
            }
            let (_, file) = self.reader.as_ref().expect("just opened");
            let want = (seg_end - pos).min((limit - out.len()).max(64 * 1024) as u64) as usize;
            chunk.resize(want, 0);
            let got = read_at_most(file, &mut chunk, pos - seg_start)
                .map_err(io_err(&self.segments[i].path))?;
            let mut at = 0;
            loop {
                match record::decode(&chunk[at..got]) {
                    record::Frame::Complete { payload_len } => {
                        let body = at + record::HEADER_LEN;
                        out.extend_from_slice(&chunk[body..body + payload_len]);
                        at = body + payload_len;
                        if out.len() >= limit {
                            break;
                        }
                    }
                    record::Frame::Incomplete if at > 0 => break,
                    record::Frame::Incomplete if got < want => {
                        // The file is shorter than the stream says: an older
                        // segment lost its tail. Go on with the next one.
                        self.corrupt_skips += 1;
                        at = (seg_end - pos) as usize;
                        break;
                    }
                    record::Frame::Incomplete => {
                        // One record larger than the chunk: read it whole.
                        let len = u32::from_le_bytes(chunk[..4].try_into().expect("4 bytes"));
                        chunk.resize(record::HEADER_LEN + len as usize, 0);
                        let n = read_at_most(file, &mut chunk, pos - seg_start)
                            .map_err(io_err(&self.segments[i].path))?;
                        if let record::Frame::Complete { payload_len } = record::decode(&chunk[..n])
                        {
                            out.extend_from_slice(
                                &chunk[record::HEADER_LEN..record::HEADER_LEN + payload_len],
                            );
                            at = record::HEADER_LEN + payload_len;
                        } else {
                            self.corrupt_skips += 1;
                            at = (seg_end - pos) as usize;
                        }
                        break;
                    }
                    record::Frame::Corrupt => {
                        // Bit rot inside a synced segment: skip the rest of it
                        // (counted and reported; never a crash).
                        self.corrupt_skips += 1;
                        at = (seg_end - pos) as usize;
                        break;
                    }
                }
            }
            pos += at as u64;
            if at == 0 {
                break;
            }
        }
        Ok(pos)
    }

    /// Marks everything before stream position `pos` as delivered: the ack
    /// file is rewritten and wholly delivered segments are deleted.
    pub fn ack(&mut self, pos: u64) -> Result<(), QueueError> {
        if pos <= self.ack {
            return Ok(());
        }
        self.ack = pos.min(self.end);
        self.write_ack()?;
        self.delete_acked_segments();
        Ok(())
    }

    fn write_ack(&mut self) -> Result<(), QueueError> {
        let mut buf = [0u8; 12];
        buf[..8].copy_from_slice(&self.ack.to_le_bytes());
        let crc = crc32fast::hash(&buf[..8]);
        buf[8..].copy_from_slice(&crc.to_le_bytes());
        self.ack_file
            .write_all_at(&buf, 0)
            .map_err(io_err(&self.opts.dir.join("ack")))
    }

    fn delete_acked_segments(&mut self) {
        while self.segments.len() > 1 && self.segments[1].start <= self.ack {
            let old = self.segments.pop_front().expect("len > 1");
            if self.reader.as_ref().is_some_and(|(s, _)| *s == old.start) {
                self.reader = None;
            }
            // A segment that cannot be removed is sent again after a
            // restart, which is harmless; it must not stop the queue.
            let _ = fs::remove_file(&old.path);
        }
    }

    /// The stream position up to which Graphite has the data.
    pub fn ack_position(&self) -> u64 {
        self.ack
    }

    /// The stream position after the last appended record.
    pub fn end_position(&self) -> u64 {
        self.end
    }

    /// Bytes appended and not yet acknowledged.
    pub fn depth_bytes(&self) -> u64 {
        self.end - self.ack
    }

    /// The full-queue limit.
    pub fn max_bytes(&self) -> u64 {
        self.opts.max_bytes
    }

    /// Segment files currently on disk.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Records skipped by the reader because they failed their checksum.
    pub fn corrupt_skips(&self) -> u64 {
        self.corrupt_skips
    }
}

/// The length of the segment's prefix of valid records, read in a stream
/// (a segment is never held in memory whole).
fn valid_length(file: &File) -> io::Result<u64> {
    let mut reader = io::BufReader::with_capacity(64 * 1024, file);
    let mut rec = Vec::new();
    let mut valid = 0u64;
    loop {
        rec.clear();
        rec.resize(record::HEADER_LEN, 0);
        if read_full(&mut reader, &mut rec)? < record::HEADER_LEN {
            return Ok(valid);
        }
        let len = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]) as usize;
        if len > record::MAX_PAYLOAD {
            return Ok(valid);
        }
        rec.resize(record::HEADER_LEN + len, 0);
        if read_full(&mut reader, &mut rec[record::HEADER_LEN..])? < len {
            return Ok(valid);
        }
        match record::decode(&rec).record_len() {
            Some(n) => valid += n as u64,
            None => return Ok(valid),
        }
    }
}

/// Reads until `buf` is full or the end of the stream; returns the bytes read.
fn read_full(reader: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_ack(file: &File) -> Option<u64> {
    let mut buf = [0u8; 12];
    file.read_exact_at(&mut buf, 0).ok()?;
    let pos = u64::from_le_bytes(buf[..8].try_into().ok()?);
    let crc = u32::from_le_bytes(buf[8..].try_into().ok()?);
    (crc32fast::hash(&buf[..8]) == crc).then_some(pos)
}

/// Fills `buf` from `offset` as far as the file goes; returns the bytes read.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests;
