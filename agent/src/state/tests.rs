use super::*;
use crate::ipam::WorkloadKey;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("pisek-state-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug)]
enum TestError {
    State,
    Refused,
}

impl From<StateError> for TestError {
    fn from(_: StateError) -> Self {
        TestError::State
    }
}

fn lease(store: &mut StateStore, container: &str) -> Result<(), TestError> {
    store.update(|s| {
        s.leases
            .allocate(
                &WorkloadKey::new(container, "eth0"),
                "city",
                &["10.1.1.0/24".parse().expect("prefix")],
            )
            .map(|_| ())
            .map_err(|_| TestError::Refused)
    })
}

#[test]
fn empty_directory_opens_with_empty_state_and_mode_0700() {
    let d = Dir::new("empty");
    let store = StateStore::open(&d.0).expect("open");
    assert_eq!(store.state(), &AgentState::default());
    let mode = std::fs::metadata(&d.0).expect("stat").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o700
    );
}

#[test]
fn update_survives_reopen() {
    let d = Dir::new("reopen");
    {
        let mut store = StateStore::open(&d.0).expect("open");
        lease(&mut store, "c1").expect("lease");
        store
            .update(|s| {
                s.labels
                    .label_for(1)
                    .map(|_| ())
                    .map_err(|_| TestError::Refused)
            })
            .expect("label");
    }
    let store = StateStore::open(&d.0).expect("reopen");
    assert!(
        store
            .state()
            .leases
            .get(&WorkloadKey::new("c1", "eth0"))
            .is_some()
    );
    assert_eq!(store.state().labels.get(1).map(|l| l.value()), Some(16));
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let d = Dir::new("lock");
    let _first = StateStore::open(&d.0).expect("open");
    assert!(matches!(StateStore::open(&d.0), Err(StateError::Locked(_))));
}

#[test]
fn refused_change_writes_nothing() {
    let d = Dir::new("refused");
    let mut store = StateStore::open(&d.0).expect("open");
    lease(&mut store, "c1").expect("lease");
    let before = std::fs::read(store.path()).expect("read");
    let r: Result<(), TestError> = store.update(|s| {
        s.leases.release(&WorkloadKey::new("c1", "eth0"));
        Err(TestError::Refused)
    });
    assert!(matches!(r, Err(TestError::Refused)));
    assert_eq!(std::fs::read(store.path()).expect("read"), before);
    assert_eq!(store.state().leases.len(), 1);
}

#[test]
fn failed_write_leaves_memory_and_disk_unchanged() {
    let d = Dir::new("failwrite");
    let mut store = StateStore::open(&d.0).expect("open");
    lease(&mut store, "c1").expect("lease");
    let before = store.state().clone();
    // Make the replacement fail, as a full disk would: a non-empty directory
    // in place of the temporary file cannot be opened for writing.
    let temp = atomic::temp_path(&store.path());
    std::fs::create_dir_all(temp.join("x")).expect("blocker");
    assert!(matches!(lease(&mut store, "c2"), Err(TestError::State)));
    assert_eq!(store.state(), &before);
    std::fs::remove_dir_all(&temp).expect("unblock");
    drop(store);
    let store = StateStore::open(&d.0).expect("reopen");
    assert_eq!(store.state(), &before, "disk holds the last good state");
}

#[test]
fn leftover_temp_file_is_removed_and_state_file_wins() {
    let d = Dir::new("leftover");
    {
        let mut store = StateStore::open(&d.0).expect("open");
        lease(&mut store, "c1").expect("lease");
        std::fs::write(atomic::temp_path(&store.path()), b"{ half a docu").expect("write");
    }
    let store = StateStore::open(&d.0).expect("reopen");
    assert_eq!(store.state().leases.len(), 1);
    assert!(!atomic::temp_path(&store.path()).exists());
}

#[test]
fn corrupt_state_file_refuses_to_open() {
    let d = Dir::new("corrupt");
    std::fs::create_dir_all(&d.0).expect("mkdir");
    std::fs::write(d.0.join(STATE_FILE), b"{\"version\": 1, \"leases\": [").expect("write");
    let err = StateStore::open(&d.0).expect_err("corrupt");
    assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
}
