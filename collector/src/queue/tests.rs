use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "pisek-queue-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        Dir(path)
    }

    fn opts(&self, max_bytes: u64, segment_bytes: u64) -> QueueOptions {
        QueueOptions {
            dir: self.0.clone(),
            max_bytes,
            segment_bytes,
        }
    }

    fn head(&self) -> PathBuf {
        let mut segs: Vec<_> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        segs.sort();
        segs.pop().unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn read_all(q: &mut DurableQueue, from: u64) -> (String, u64) {
    let mut out = Vec::new();
    let end = q.read(from, usize::MAX, &mut out).unwrap();
    (String::from_utf8(out).unwrap(), end)
}

#[test]
fn committed_records_survive_reopen_in_order() {
    let dir = Dir::new();
    {
        let (mut q, rec) = DurableQueue::open(dir.opts(1 << 20, 1 << 20)).unwrap();
        assert_eq!(rec.pending_bytes, 0);
        q.append(b"a 1 1\n").unwrap();
        q.append(b"b 2 2\n").unwrap();
        // Appended records are not visible before they are written.
        assert_eq!(read_all(&mut q, 0).0, "");
        q.commit().unwrap();
    }
    let (mut q, rec) = DurableQueue::open(dir.opts(1 << 20, 1 << 20)).unwrap();
    assert_eq!(rec.truncated_bytes, 0);
    assert_eq!(rec.pending_bytes, 28);
    assert_eq!(read_all(&mut q, 0), ("a 1 1\nb 2 2\n".to_string(), 28));
}

#[test]
fn a_torn_tail_is_cut_off_on_open_at_every_length() {
    let dir = Dir::new();
    {
        let (mut q, _) = DurableQueue::open(dir.opts(1 << 20, 1 << 20)).unwrap();
        q.append(b"kept 1 1\n").unwrap();
        q.append(b"torn 2 2\n").unwrap();
        q.commit().unwrap();
    }
    let full = fs::read(dir.head()).unwrap();
    let first = record::HEADER_LEN + 9;
    for cut in first..full.len() {
        fs::write(dir.head(), &full[..cut]).unwrap();
        let (mut q, rec) = DurableQueue::open(dir.opts(1 << 20, 1 << 20)).unwrap();
        assert_eq!(rec.truncated_bytes, (cut - first) as u64);
        assert_eq!(read_all(&mut q, 0).0, "kept 1 1\n");
        // New records go right after the valid prefix.
        q.append(b"next 3 3\n").unwrap();
        q.commit().unwrap();
        assert_eq!(read_all(&mut q, 0).0, "kept 1 1\nnext 3 3\n");
        drop(q);
        fs::write(dir.head(), &full).unwrap();
    }
}

#[test]
fn garbage_after_the_last_record_is_cut_off() {
    let dir = Dir::new();
    {
        let (mut q, _) = DurableQueue::open(dir.opts(1 << 20, 1 << 20)).unwrap();
        q.append(b"x 1 1\n").unwrap();
        q.commit().unwrap();
    }
    let mut bytes = fs::read(dir.head()).unwrap();
    bytes.extend_from_slice(&[0; 4096]);
    fs::write(dir.head(), &bytes).unwrap();
    let (mut q, rec) = DurableQueue::open(dir.opts(1 << 20, 1 << 20)).unwrap();
    assert_eq!(rec.truncated_bytes, 4096);
    assert_eq!(read_all(&mut q, 0).0, "x 1 1\n");
}

#[test]
fn the_ack_position_persists_and_delivered_segments_are_deleted() {
    let dir = Dir::new();
    let line = b"some.metric 1 1700000000\n";
    let rec_len = (record::HEADER_LEN + line.len()) as u64;
    let mut acked = 0;
    {
        // Three records per segment.
        let (mut q, _) = DurableQueue::open(dir.opts(1 << 20, 3 * rec_len)).unwrap();
        for _ in 0..10 {
            q.append(line).unwrap();
        }
        q.commit().unwrap();
        assert_eq!(q.segment_count(), 4);
        let mut out = Vec::new();
        // Read seven records and ack them.
        while out.len() < 7 * line.len() {
            acked = q.read(acked, line.len(), &mut out).unwrap();
        }
        q.ack(acked).unwrap();
        assert_eq!(acked, 7 * rec_len);
        assert_eq!(q.segment_count(), 2, "the first two segments are delivered");
    }
    let (mut q, rec) = DurableQueue::open(dir.opts(1 << 20, 3 * rec_len)).unwrap();
    assert!(!rec.ack_reset);
    assert_eq!(rec.pending_bytes, 3 * rec_len);
    assert_eq!(q.ack_position(), acked);
    let (rest, end) = read_all(&mut q, 0);
    assert_eq!(rest.len(), 3 * line.len());
    assert_eq!(end, 10 * rec_len);
}

#[test]
fn a_damaged_ack_file_resends_from_the_oldest_segment() {
    let dir = Dir::new();
    {
        let (mut q, _) = DurableQueue::open(dir.opts(1 << 20, 1 << 20)).unwrap();
        q.append(b"a 1 1\n").unwrap();
        q.commit().unwrap();
        q.ack(14).unwrap();
    }
    fs::write(dir.0.join("ack"), b"garbage!garb").unwrap();
    let (mut q, rec) = DurableQueue::open(dir.opts(1 << 20, 1 << 20)).unwrap();
    assert!(rec.ack_reset);
    assert_eq!(read_all(&mut q, 0).0, "a 1 1\n");
}

#[test]
fn a_full_queue_refuses_until_acked() {
    let dir = Dir::new();
    let (mut q, _) = DurableQueue::open(dir.opts(100, 1 << 20)).unwrap();
    let line = [b'x'; 42]; // 50 bytes with the header
    q.append(&line).unwrap();
    q.append(&line).unwrap();
    assert!(matches!(q.append(&line), Err(QueueError::Full)));
    q.commit().unwrap();
    let mut out = Vec::new();
    let pos = q.read(0, 1, &mut out).unwrap();
    q.ack(pos).unwrap();
    q.append(&line).unwrap();
    assert_eq!(q.depth_bytes(), 100);
}

#[test]
fn reads_resume_at_the_position_returned() {
    let dir = Dir::new();
    let (mut q, _) = DurableQueue::open(dir.opts(1 << 20, 64)).unwrap();
    let mut expected = String::new();
    for i in 0..50 {
        let l = format!("m{i} {i} {i}\n");
        q.append(l.as_bytes()).unwrap();
        expected.push_str(&l);
    }
    q.flush().unwrap();
    let mut got = Vec::new();
    let mut pos = 0;
    loop {
        let next = q.read(pos, 20, &mut got).unwrap();
        if next == pos {
            break;
        }
        pos = next;
    }
    assert_eq!(String::from_utf8(got).unwrap(), expected);
    assert_eq!(pos, q.end_position());
}

#[test]
fn an_oversized_record_is_refused() {
    let dir = Dir::new();
    let (mut q, _) = DurableQueue::open(dir.opts(u64::MAX, 1 << 20)).unwrap();
    let big = vec![b'x'; record::MAX_PAYLOAD + 1];
    assert!(matches!(q.append(&big), Err(QueueError::TooLarge(_))));
}
