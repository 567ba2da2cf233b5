//! Atomic replacement of a small file: a reader (or the agent after a crash)
//! sees either the old content or the new, never a mix, and never an empty
//! file after a power cut.
//!
//! The sequence is the one every careful store uses (SQLite's journal, etcd's
//! snapshots): write a temporary file in the same directory, `fsync` it, rename
//! it over the target (atomic within a filesystem, rename(2)), then `fsync` the
//! directory so the rename itself is durable. [`replace_unsynced`] leaves out
//! both fsyncs, for files on a tmpfs that a power cut clears anyway. If any
//! step fails (a full disk fails the write or the fsync), the temporary file
//! is removed and the old file is untouched.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The temporary file used while replacing `target`.
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.tmp"))
}

/// Replaces `target` with `contents` atomically and durably; the file gets
/// mode 0600 (it names every workload of the node).
pub fn write_atomically(target: &Path, contents: &[u8]) -> std::io::Result<()> {
    replace(target, contents, true)?;
    sync_dir(target.parent().unwrap_or(Path::new(".")))
}

/// Replaces `target` with `contents` atomically, without an fsync: a reader,
/// or the process restarted after a crash, sees the old content or the new,
/// never a mix. Not after a power cut; for files in a runtime directory
/// (`/run`, a tmpfs), which a power cut clears together with what they
/// describe.
pub fn replace_unsynced(target: &Path, contents: &[u8]) -> std::io::Result<()> {
    replace(target, contents, false)
}

fn replace(target: &Path, contents: &[u8], sync: bool) -> std::io::Result<()> {
    let temp = temp_path(target);
    let result = write_then_rename(&temp, target, contents, sync);
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn write_then_rename(
    temp: &Path,
    target: &Path,
    contents: &[u8],
    sync: bool,
) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temp)?;
    file.write_all(contents)?;
    if sync {
        file.sync_all()?;
    }
    drop(file);
    std::fs::rename(temp, target)
}

/// Makes a directory's entries (a rename, a new file) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pisek-atomic-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let d = dir("replace");
        let target = d.join("state.json");
        write_atomically(&target, b"one").expect("write");
        write_atomically(&target, b"two").expect("write");
        assert_eq!(std::fs::read(&target).expect("read"), b"two");
        assert!(!temp_path(&target).exists());
        let mode = std::fs::metadata(&target).expect("stat").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn failed_replace_keeps_the_old_content_and_removes_the_temp_file() {
        let d = dir("fail");
        let target = d.join("state.json");
        // A non-empty directory at the target makes the rename fail, as a
        // full disk makes the write fail: either way the old data must stay.
        std::fs::create_dir_all(target.join("blocker")).expect("mkdir");
        assert!(write_atomically(&target, b"new").is_err());
        assert!(target.join("blocker").is_dir());
        assert!(!temp_path(&target).exists());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
