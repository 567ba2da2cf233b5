use super::*;
use crate::ipam::WorkloadKey;

struct Dir(PathBuf);

/// Opens the store with its runtime directory inside `d`.
fn open(d: &Dir) -> Result<StateStore, StateError> {
    StateStore::open(&d.0.join("state"), &d.0.join("run"))
}

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

fn label(store: &mut StateStore, tenant: u32) -> Result<(), TestError> {
    store.update(|s| {
        s.labels
            .label_for(tenant)
            .map(|_| ())
            .map_err(|_| TestError::Refused)
    })
}

fn has_lease(store: &StateStore, container: &str) -> bool {
    store
        .state()
        .leases
        .get(&WorkloadKey::new(container, "eth0"))
        .is_some()
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
    let store = open(&d).expect("open");
    assert_eq!(store.state(), &AgentState::default());
    for dir in ["state", "run"] {
        let mode = std::fs::metadata(d.0.join(dir))
            .expect("stat")
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
    }
}

#[test]
fn update_survives_reopen() {
    let d = Dir::new("reopen");
    {
        let mut store = open(&d).expect("open");
        lease(&mut store, "c1").expect("lease");
        label(&mut store, 1).expect("label");
    }
    let store = open(&d).expect("reopen");
    assert!(has_lease(&store, "c1"));
    assert_eq!(store.state().labels.get(1).map(|l| l.value()), Some(16));
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let d = Dir::new("lock");
    let _first = open(&d).expect("open");
    assert!(matches!(open(&d), Err(StateError::Locked(_))));
}

#[test]
fn refused_change_writes_nothing() {
    let d = Dir::new("refused");
    let mut store = open(&d).expect("open");
    lease(&mut store, "c1").expect("lease");
    let before = std::fs::read(store.runtime_path()).expect("read");
    let r: Result<(), TestError> = store.update(|s| {
        s.leases.release(&WorkloadKey::new("c1", "eth0"));
        Err(TestError::Refused)
    });
    assert!(matches!(r, Err(TestError::Refused)));
    assert_eq!(std::fs::read(store.runtime_path()).expect("read"), before);
    assert_eq!(store.state().leases.len(), 1);
}

#[test]
fn failed_write_leaves_memory_and_disk_unchanged() {
    let d = Dir::new("failwrite");
    let mut store = open(&d).expect("open");
    lease(&mut store, "c1").expect("lease");
    let before = store.state().clone();
    // Make the replacement fail, as a full disk would: a non-empty directory
    // in place of the temporary file cannot be opened for writing.
    let temp = atomic::temp_path(&store.runtime_path());
    std::fs::create_dir_all(temp.join("x")).expect("blocker");
    assert!(matches!(lease(&mut store, "c2"), Err(TestError::State)));
    assert_eq!(store.state(), &before);
    std::fs::remove_dir_all(&temp).expect("unblock");
    drop(store);
    let store = open(&d).expect("reopen");
    assert_eq!(store.state(), &before, "disk holds the last good state");
}

#[test]
fn leftover_temp_file_is_removed_and_state_file_wins() {
    let d = Dir::new("leftover");
    {
        let mut store = open(&d).expect("open");
        lease(&mut store, "c1").expect("lease");
        std::fs::write(atomic::temp_path(&store.runtime_path()), b"{ half a docu").expect("write");
        std::fs::write(atomic::temp_path(&store.path()), b"{ half a docu").expect("write");
    }
    let store = open(&d).expect("reopen");
    assert_eq!(store.state().leases.len(), 1);
    assert!(!atomic::temp_path(&store.runtime_path()).exists());
    assert!(!atomic::temp_path(&store.path()).exists());
}

/// Writes `contents` as `file` in `d`'s subdirectory `sub`.
fn write_file(d: &Dir, sub: &str, file: &str, contents: &[u8]) {
    std::fs::create_dir_all(d.0.join(sub)).expect("mkdir");
    std::fs::write(d.0.join(sub).join(file), contents).expect("write");
}

#[test]
fn corrupt_state_file_refuses_to_open() {
    let d = Dir::new("corrupt");
    write_file(&d, "state", STATE_FILE, b"{\"version\": 1, \"leases\": [");
    let err = open(&d).expect_err("corrupt");
    assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
    write_file(&d, "state", STATE_FILE, b"{\"version\": 1, \"labels\": {}}");
    write_file(&d, "run", ATTACHMENTS_FILE, b"{\"version\": 1, \"le");
    let err = open(&d).expect_err("corrupt");
    assert!(
        matches!(&err, StateError::Corrupt { path, .. } if path.ends_with(ATTACHMENTS_FILE)),
        "{err}"
    );
}

#[test]
fn labels_go_to_the_state_directory_and_endpoints_to_the_runtime_directory() {
    let d = Dir::new("split");
    let mut store = open(&d).expect("open");
    lease(&mut store, "c1").expect("lease");
    label(&mut store, 1).expect("label");
    let durable = std::fs::read_to_string(store.path()).expect("state.json");
    let runtime = std::fs::read_to_string(store.runtime_path()).expect("attachments.json");
    assert!(
        durable.contains("labels") && !durable.contains("c1/eth0"),
        "{durable}"
    );
    assert!(
        runtime.contains("c1/eth0") && !runtime.contains("labels"),
        "{runtime}"
    );
    // A reboot clears the runtime directory: the labels stay, the leases go.
    drop(store);
    std::fs::remove_dir_all(d.0.join("run")).expect("reboot");
    let store = open(&d).expect("reopen");
    assert!(store.state().leases.is_empty());
    assert_eq!(store.state().labels.get(1).map(|l| l.value()), Some(16));
}

#[test]
fn endpoints_an_older_agent_kept_in_state_json_move_to_the_runtime_directory() {
    let d = Dir::new("migrate");
    {
        let mut store = open(&d).expect("open");
        lease(&mut store, "c1").expect("lease");
        // What an agent before the split wrote: everything in state.json.
        let old = serde_json::to_vec(store.state()).expect("encode");
        std::fs::write(store.path(), old).expect("write");
        std::fs::remove_file(store.runtime_path()).expect("rm");
    }
    let store = open(&d).expect("reopen");
    assert!(has_lease(&store, "c1"));
    let durable = std::fs::read_to_string(store.path()).expect("state.json");
    assert!(!durable.contains("c1/eth0"), "{durable}");
    let runtime = std::fs::read_to_string(store.runtime_path()).expect("attachments.json");
    assert!(runtime.contains("c1/eth0"), "{runtime}");
}

#[test]
fn one_runtime_directory_serves_one_agent() {
    let d = Dir::new("runlock");
    let _first = open(&d).expect("open");
    let other = StateStore::open(&d.0.join("state2"), &d.0.join("run"));
    assert!(matches!(other, Err(StateError::Locked(p)) if p.ends_with("run")));
}
