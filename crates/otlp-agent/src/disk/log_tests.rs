use super::*;
use std::path::Path;
use std::sync::atomic::AtomicUsize;

/// Scratch directory removed on drop (no tempfile crate).
pub struct TmpDir(pub PathBuf);

impl TmpDir {
    pub fn new(tag: &str) -> TmpDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        // A random part too: Miri runs several seeds of the tests at once
        // in one process.
        let salt = fastrand::u64(..);
        let p =
            std::env::temp_dir().join(format!("disklog-{}-{salt:x}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TmpDir(p)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn cfg(dir: &Path, segment_bytes: u64, max_bytes: u64) -> LogConfig {
    LogConfig {
        dir: dir.to_path_buf(),
        segment_bytes,
        max_bytes,
        fsync: Fsync::Always,
    }
}

fn payload(i: usize) -> Vec<u8> {
    format!("request-{i}-").repeat(i % 5 + 1).into_bytes()
}

fn append_n(log: &DiskLog, from: usize, n: usize) -> Vec<RecordId> {
    let ps: Vec<Vec<u8>> = (from..from + n).map(payload).collect();
    let batch: Vec<(&[u8], u64)> = ps
        .iter()
        .enumerate()
        .map(|(k, p)| (p.as_slice(), (from + k) as u64))
        .collect();
    log.append(&batch).unwrap()
}

fn seg_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn reopen_returns_unacked_in_order_and_deletes_acked_segments() {
    let tmp = TmpDir::new("reopen");
    let (log, rec) = DiskLog::open(cfg(&tmp.0, 200, 1 << 20)).unwrap();
    assert!(rec.records.is_empty());
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.extend(append_n(&log, i * 2, 2));
    }
    let first_seg = ids[0].segment;
    assert!(
        ids.last().unwrap().segment > first_seg + 2,
        "rolled several times"
    );
    // Ack every record of the first segment plus every third record overall.
    let acked: BTreeSet<RecordId> = ids
        .iter()
        .enumerate()
        .filter(|(i, id)| id.segment == first_seg || i % 3 == 0)
        .map(|(_, id)| *id)
        .collect();
    log.ack(&acked.iter().copied().collect::<Vec<_>>()).unwrap();
    assert!(
        !seg_path(&tmp.0, first_seg).exists(),
        "fully acked segment deleted"
    );
    assert!(!ack_path(&tmp.0, first_seg).exists());
    let used = log.used_bytes();
    drop(log);

    let (log, rec) = DiskLog::open(cfg(&tmp.0, 200, 1 << 20)).unwrap();
    let want: Vec<(RecordId, u64, Vec<u8>)> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| !acked.contains(id))
        .map(|(i, id)| (*id, i as u64, payload(i)))
        .collect();
    let got: Vec<RecordId> = rec.records.iter().map(|r| r.0).collect();
    let read: Vec<Vec<u8>> = log.read(&got).into_iter().map(Result::unwrap).collect();
    let got: Vec<(RecordId, u64, Vec<u8>)> = rec
        .records
        .iter()
        .zip(read)
        .map(|(&(id, items, len), payload)| {
            assert_eq!(len as usize, payload.len());
            (id, items, payload)
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!((rec.truncated_bytes, rec.corrupt_records), (0, 0));
    assert_eq!(log.used_bytes(), used);
}

#[test]
fn torn_tail_at_every_offset() {
    let (seg_bytes, max) = (1 << 20, 1 << 20);
    // Reference run to learn the layout.
    let tmp = TmpDir::new("torn");
    let (log, _) = DiskLog::open(cfg(&tmp.0, seg_bytes, max)).unwrap();
    let ids = append_n(&log, 0, 4);
    drop(log);
    let path = seg_path(&tmp.0, ids[0].segment);
    let full = fs::read(&path).unwrap();
    let last_start = ids[3].offset as usize;
    for cut in (last_start..full.len()).step_by(if cfg!(miri) { 25 } else { 1 }) {
        let tmp = TmpDir::new("torn-cut");
        let p = seg_path(&tmp.0, ids[0].segment);
        fs::write(&p, &full[..cut]).unwrap();
        let (log, rec) = DiskLog::open(cfg(&tmp.0, seg_bytes, max)).unwrap();
        let got: Vec<RecordId> = rec.records.iter().map(|r| r.0).collect();
        assert_eq!(got, ids[..3], "cut at {cut}");
        assert_eq!(rec.truncated_bytes, (cut - last_start) as u64);
        assert_eq!(rec.corrupt_records, 0);
        assert_eq!(fs::metadata(&p).unwrap().len(), last_start as u64);
        let more = append_n(&log, 10, 2);
        drop(log);
        let (_log, rec) = DiskLog::open(cfg(&tmp.0, seg_bytes, max)).unwrap();
        let got: Vec<RecordId> = rec.records.iter().map(|r| r.0).collect();
        assert_eq!(got, [&ids[..3], &more[..]].concat());
        assert_eq!(rec.truncated_bytes, 0);
    }
}

#[test]
fn flipped_byte_in_closed_segment_is_skipped() {
    let tmp = TmpDir::new("flip");
    let (log, _) = DiskLog::open(cfg(&tmp.0, 1 << 20, 1 << 20)).unwrap();
    let ids = append_n(&log, 0, 5);
    drop(log);
    let path = seg_path(&tmp.0, ids[0].segment);
    for at in [0usize, 5, 9, 17, HEADER + 1] {
        let mut bytes = fs::read(&path).unwrap();
        let tmp2 = TmpDir::new("flip-copy");
        bytes[ids[2].offset as usize + at] ^= 0x5a;
        fs::write(seg_path(&tmp2.0, ids[0].segment), &bytes).unwrap();
        // A newer segment makes this one closed (not the torn-tail candidate).
        fs::write(seg_path(&tmp2.0, ids[0].segment + 5), b"").unwrap();
        let (_log, rec) = DiskLog::open(cfg(&tmp2.0, 1 << 20, 1 << 20)).unwrap();
        let got: Vec<RecordId> = rec.records.iter().map(|r| r.0).collect();
        assert_eq!(got, [ids[0], ids[1], ids[3], ids[4]], "flip at +{at}");
        assert_eq!(rec.corrupt_records, 1);
        let want_at = (seg_path(&tmp2.0, ids[0].segment), ids[2].offset);
        assert_eq!(rec.corrupt_at, vec![want_at]);
        assert_eq!(rec.truncated_bytes, 0);
    }
}

#[test]
fn hostile_segments_do_not_panic_or_hang() {
    let tmp = TmpDir::new("hostile");
    let mut garbage = vec![0u8; 10_000];
    let mut x = 12345u32;
    for b in &mut garbage {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let magic = record::MAGIC.to_le_bytes().repeat(3000);
    fs::write(seg_path(&tmp.0, 1), &garbage).unwrap();
    fs::write(seg_path(&tmp.0, 2), b"").unwrap();
    fs::write(seg_path(&tmp.0, 3), &magic).unwrap();
    fs::write(ack_path(&tmp.0, 3), &garbage[..1001]).unwrap();
    fs::write(seg_path(&tmp.0, 4), &magic).unwrap();
    fs::write(tmp.0.join("README"), b"not a segment").unwrap();
    let (log, rec) = DiskLog::open(cfg(&tmp.0, 1 << 20, 1 << 20)).unwrap();
    assert!(rec.records.is_empty());
    assert_eq!(rec.corrupt_records, 2, "segments 1 and 3");
    assert_eq!(
        rec.truncated_bytes,
        magic.len() as u64,
        "segment 4 is the tail"
    );
    let ids = append_n(&log, 0, 3);
    assert_eq!(ids[0].segment, 5);
    drop(log);
    let (_log, rec) = DiskLog::open(cfg(&tmp.0, 1 << 20, 1 << 20)).unwrap();
    assert_eq!(rec.records.len(), 3);
    assert_eq!(rec.corrupt_records, 0, "all-corrupt segments were removed");
}

#[test]
fn second_open_is_locked_until_drop() {
    let tmp = TmpDir::new("lock");
    let (log, _) = DiskLog::open(cfg(&tmp.0, 1 << 20, 1 << 20)).unwrap();
    match DiskLog::open(cfg(&tmp.0, 1 << 20, 1 << 20)) {
        Err(LogError::Locked { dir }) => assert_eq!(dir, tmp.0),
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    drop(log);
    DiskLog::open(cfg(&tmp.0, 1 << 20, 1 << 20)).unwrap();
}

#[test]
fn max_bytes_refuses_then_recovers_after_acks() {
    let tmp = TmpDir::new("full");
    let rec_size = record::encoded_len(100);
    let (log, _) = DiskLog::open(cfg(&tmp.0, rec_size * 2, rec_size * 4)).unwrap();
    let p = [7u8; 100];
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.extend(log.append(&[(&p[..], 1)]).unwrap());
    }
    assert_eq!(log.used_bytes(), rec_size * 4);
    let before: Vec<Vec<u8>> = seg_files(&tmp.0)
        .iter()
        .map(|f| fs::read(f).unwrap())
        .collect();
    match log.append(&[(&p[..], 1)]) {
        Err(LogError::Full { needed, free: 0 }) => assert_eq!(needed, rec_size),
        other => panic!("expected Full, got {other:?}"),
    }
    let after: Vec<Vec<u8>> = seg_files(&tmp.0)
        .iter()
        .map(|f| fs::read(f).unwrap())
        .collect();
    assert_eq!(before, after, "nothing written");
    log.ack(&ids[..2]).unwrap();
    assert_eq!(log.used_bytes(), rec_size * 2);
    log.append(&[(&p[..], 1), (&p[..], 1)]).unwrap();
    let too_big = vec![0u8; (rec_size * 2) as usize];
    assert!(matches!(
        log.append(&[(&too_big[..], 1)]),
        Err(LogError::TooLarge { .. })
    ));
}

#[test]
fn drop_oldest_frees_space_and_spares_nothing_current() {
    let tmp = TmpDir::new("dropold");
    let rec_size = record::encoded_len(10);
    let (log, _) = DiskLog::open(cfg(&tmp.0, rec_size * 2, rec_size * 3)).unwrap();
    assert_eq!(log.drop_oldest_segment().unwrap(), None);
    let p = [1u8; 10];
    let a = log.append(&[(&p[..], 3), (&p[..], 4)]).unwrap();
    let b = log.append(&[(&p[..], 5)]).unwrap();
    assert!(log.append(&[(&p[..], 1)]).is_err());
    assert_eq!(log.drop_oldest_segment().unwrap(), Some((2, 7)));
    assert!(!seg_path(&tmp.0, a[0].segment).exists());
    // Only the current segment holds records now: drop rolls past it.
    assert_eq!(log.drop_oldest_segment().unwrap(), Some((1, 5)));
    assert!(!seg_path(&tmp.0, b[0].segment).exists());
    assert_eq!(log.used_bytes(), 0);
    let c = log.append(&[(&p[..], 9)]).unwrap();
    log.ack(&a).unwrap(); // stale ids are ignored
    drop(log);
    let (_log, rec) = DiskLog::open(cfg(&tmp.0, rec_size * 2, rec_size * 3)).unwrap();
    assert_eq!(rec.records.iter().map(|r| r.0).collect::<Vec<_>>(), c);
}

#[test]
fn concurrent_appends_and_acks() {
    let tmp = TmpDir::new("threads");
    let config = LogConfig {
        fsync: Fsync::Never,
        ..cfg(&tmp.0, 4096, 1 << 30)
    };
    let (log, _) = DiskLog::open(config.clone()).unwrap();
    let kept: Vec<RecordId> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let log = &log;
                s.spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..if cfg!(miri) { 10 } else { 100 } {
                        let ids = append_n(log, t * 1000 + i * 3, 3);
                        log.ack(&ids[..2]).unwrap();
                        kept.push(ids[2]);
                    }
                    kept
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    log.sync().unwrap();
    drop(log);
    let (_log, rec) = DiskLog::open(config).unwrap();
    let mut kept = kept;
    kept.sort();
    assert_eq!(rec.records.iter().map(|r| r.0).collect::<Vec<_>>(), kept);
}

#[test]
fn read_checks_each_record_and_reports_dropped_segments() {
    let tmp = TmpDir::new("read");
    let rec_size = record::encoded_len(10);
    let (log, _) = DiskLog::open(cfg(&tmp.0, rec_size * 2, 1 << 20)).unwrap();
    let ids = log
        .append(&[(b"0123456789", 1), (b"abcdefghij", 2), (b"ABCDEFGHIJ", 3)])
        .unwrap();
    let read = log.read(&ids);
    assert_eq!(read[0].as_deref().unwrap(), b"0123456789");
    assert_eq!(read[2].as_deref().unwrap(), b"ABCDEFGHIJ");
    // A byte changed on disk after the append: that record only is damaged.
    let path = seg_path(&tmp.0, ids[1].segment);
    let mut bytes = fs::read(&path).unwrap();
    bytes[(ids[1].offset + record::encoded_len(3)) as usize] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let read = log.read(&ids);
    assert!(read[0].is_ok() && read[2].is_ok());
    assert!(
        matches!(&read[1], Err(LogError::Damaged { offset, .. }) if *offset == ids[1].offset),
        "{:?}",
        read[1]
    );
    // A length over the segment size is not trusted (no huge allocation).
    bytes[(ids[1].offset + 4) as usize..][..4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        log.read(&ids[1..2])[0],
        Err(LogError::Damaged { .. })
    ));
    // The segment dropped: its records cannot be read any more.
    let dropped = log.drop_oldest_records().unwrap().unwrap();
    assert_eq!(dropped.len(), 3, "one append, one segment: {dropped:?}");
    assert!(matches!(
        &log.read(&ids[..1])[0],
        Err(LogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound
    ));
}
