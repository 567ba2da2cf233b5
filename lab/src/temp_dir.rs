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
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
