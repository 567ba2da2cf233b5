//! A temporary directory of a test's own, removed on drop.

use crate::netns::unique_tag;
use std::path::PathBuf;

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir {
    /// Where it is.
    pub path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/pisek-test-<unique tag>`; panics if it cannot.
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("pisek-test-{}", unique_tag(tag)));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// Like [`TempDir::new`], on a tmpfs (`/dev/shm`) where there is one:
    /// for what a node keeps on its tmpfs `/run` (the agent's runtime
    /// directory), measured as it runs there, not on this machine's disk.
    pub fn new_on_tmpfs(tag: &str) -> TempDir {
        let shm = std::path::Path::new("/dev/shm");
        if !shm.is_dir() {
            return TempDir::new(tag);
        }
        let path = shm.join(format!("pisek-test-{}", unique_tag(tag)));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
