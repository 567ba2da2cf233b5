//! Reads points back from carbon's whisper files, so the lab can show what
//! reached Graphite without starting a Python interpreter per file.
//!
//! The format (graphite's `whisper.py`, all fields big-endian):
//! ```text
//! metadata      aggregation u32 | max_retention u32 | x_files_factor f32 | archive_count u32
//! archive info  offset u32 | seconds_per_point u32 | points u32         (archive_count times)
//! archive data  timestamp u32 | value f64                               (points times, a ring)
//! ```
//! Only the first archive (the finest precision) is read: the lab's
//! carbon keeps one, at one second. A slot whose timestamp is 0 was never
//! written; a slot older than the retention is a leftover of an earlier
//! lap of the ring (whisper's own `fetch` skips those the same way).

use std::collections::BTreeMap;
use std::path::Path;

mod field {
    use std::ops::Range;
    pub const MAX_RETENTION: Range<usize> = 4..8;
    pub const ARCHIVE_COUNT: Range<usize> = 12..16;
    pub const METADATA_LEN: usize = 16;
    pub const ARCHIVE_OFFSET: Range<usize> = 0..4;
    pub const ARCHIVE_STEP: Range<usize> = 4..8;
    pub const ARCHIVE_POINTS: Range<usize> = 8..12;
    pub const ARCHIVE_INFO_LEN: usize = 12;
    pub const POINT_TIMESTAMP: Range<usize> = 0..4;
    pub const POINT_VALUE: Range<usize> = 4..12;
    pub const POINT_LEN: usize = 12;
}

/// A whisper file that is not one.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// Shorter than its header says.
    #[error("truncated whisper file")]
    Truncated,
    /// No archive at all.
    #[error("whisper file without archives")]
    NoArchive,
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn be_u32(bytes: &[u8], at: std::ops::Range<usize>) -> Result<u32, WhisperError> {
    let b = bytes.get(at).ok_or(WhisperError::Truncated)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The points stored in a whisper file's finest archive, by timestamp,
/// from `since` on (inclusive) and no older than the retention at `now`.
pub fn parse_points(
    bytes: &[u8],
    since: i64,
    now: i64,
) -> Result<BTreeMap<i64, f64>, WhisperError> {
    let max_retention = i64::from(be_u32(bytes, field::MAX_RETENTION)?);
    if be_u32(bytes, field::ARCHIVE_COUNT)? == 0 {
        return Err(WhisperError::NoArchive);
    }
    let info = bytes
        .get(field::METADATA_LEN..field::METADATA_LEN + field::ARCHIVE_INFO_LEN)
        .ok_or(WhisperError::Truncated)?;
    let offset = be_u32(info, field::ARCHIVE_OFFSET)? as usize;
    let step = i64::from(be_u32(info, field::ARCHIVE_STEP)?.max(1));
    let count = be_u32(info, field::ARCHIVE_POINTS)? as usize;
    let data = bytes
        .get(offset..offset + count * field::POINT_LEN)
        .ok_or(WhisperError::Truncated)?;
    let oldest = since.max(now - max_retention);
    let mut points = BTreeMap::new();
    for slot in data.chunks_exact(field::POINT_LEN) {
        let ts = i64::from(be_u32(slot, field::POINT_TIMESTAMP)?);
        if ts == 0 || ts < oldest || ts % step != 0 {
            continue;
        }
        let v = &slot[field::POINT_VALUE];
        let value = f64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
        points.insert(ts, value);
    }
    Ok(points)
}

/// [`parse_points`] of a file.
pub fn read_points(path: &Path, since: i64, now: i64) -> Result<BTreeMap<i64, f64>, WhisperError> {
    parse_points(&std::fs::read(path)?, since, now)
}

/// Every metric under `dir` (a directory of carbon's whisper tree) with its
/// points, named as Graphite names it: `prefix` and the path's levels
/// joined by `.`. A directory that does not exist holds no metric.
pub fn read_tree(
    dir: &Path,
    prefix: &str,
    since: i64,
    now: i64,
) -> Result<BTreeMap<String, BTreeMap<i64, f64>>, WhisperError> {
    let mut metrics = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(metrics),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() {
            metrics.extend(read_tree(&path, &format!("{prefix}.{name}"), since, now)?);
        } else if let Some(leaf) = name.strip_suffix(".wsp") {
            // carbon creates the file before it writes the header: a file
            // caught in between is simply not there yet.
            match read_points(&path, since, now) {
                Ok(points) => {
                    metrics.insert(format!("{prefix}.{leaf}"), points);
                }
                Err(WhisperError::Truncated | WhisperError::NoArchive) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file as `whisper.create(path, [(1, 4)])` writes it, then points at
    /// 1000 and 1001 (slots 0 and 1 of the ring) and an old lap in slot 3.
    fn fixture() -> Vec<u8> {
        let mut f = Vec::new();
        for word in [1u32, 4] {
            f.extend_from_slice(&word.to_be_bytes());
        }
        f.extend_from_slice(&0.5f32.to_be_bytes());
        f.extend_from_slice(&1u32.to_be_bytes());
        for word in [28u32, 1, 4] {
            f.extend_from_slice(&word.to_be_bytes());
        }
        for (ts, value) in [(1000u32, 21.5f64), (1001, 22.25), (0, 0.0), (7, 9.0)] {
            f.extend_from_slice(&ts.to_be_bytes());
            f.extend_from_slice(&value.to_be_bytes());
        }
        f
    }

    #[test]
    fn reads_written_slots_and_skips_empty_and_stale_ones() {
        let points = parse_points(&fixture(), 0, 1002).unwrap();
        assert_eq!(points, BTreeMap::from([(1000, 21.5), (1001, 22.25)]));
    }

    #[test]
    fn since_cuts_older_points() {
        let points = parse_points(&fixture(), 1001, 1002).unwrap();
        assert_eq!(points, BTreeMap::from([(1001, 22.25)]));
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_panic() {
        let f = fixture();
        for len in 0..f.len() {
            assert!(parse_points(&f[..len], 0, 1002).is_err(), "{len} bytes");
        }
    }
}
