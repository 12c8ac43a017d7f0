//! Damaged records, written deliberately into the log's segment files or through sled, are
//! detected when the store is opened (or the record is read); `repair` truncates only a
//! damaged tail.

use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{BasicNode, RaftLogReader, SnapshotMeta};
use serde_json::json;

use super::fixture::{normal_entry, TestConfig};
use crate::layout::{
    self, KEY_LAST_PURGED, KEY_VOTE, TREE_LOG, TREE_META, TREE_RAFT_STATE, TREE_SNAPSHOT,
};
use crate::log_files;
use crate::{record, Corruption, StorageError, Store, StoreOptions};

const CACHE: u64 = 1 << 20;

/// A store holding entries 0..=9 (term 1), with `committed` persisted.
async fn populate(dir: &Path, committed: Option<u64>) {
    let store = Store::<TestConfig>::open(dir, CACHE).unwrap();
    let mut log = store.log_store().unwrap();
    let entries: Vec<_> = (0..10).map(|i| normal_entry(1, i, "k", json!(i))).collect();
    log.blocking_append(entries).await.unwrap();
    log.save_vote(&openraft::Vote::new_committed(1, 0))
        .await
        .unwrap();
    log.save_committed(committed.map(|i| log_id(1, 0, i)))
        .await
        .unwrap();
}

/// Edits the database with sled directly, behind the store's back.
fn with_raw_tree(dir: &Path, tree: &str, edit: impl FnOnce(&sled::Tree)) {
    let db = raw_open(dir);
    edit(&db.open_tree(tree).unwrap());
    db.flush().unwrap();
}

/// sled without the store; like the store's own open, it waits for the lock
/// that a just-dropped store's background I/O may still hold for a moment.
pub(super) fn raw_open(dir: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + crate::store::DEFAULT_LOCK_WAIT;
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("could not acquire lock"), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }
}

/// The one segment file of a small log.
fn segment_path(dir: &Path) -> std::path::PathBuf {
    let segments = log_files::list_segments(&dir.join(log_files::DIR)).unwrap();
    assert_eq!(segments.len(), 1, "{segments:?}");
    segments[0].1.clone()
}

/// Rewrites the log's segment behind the store's back: `edit` gets its frames as
/// (index in the frame header, sealed record).
fn with_raw_log(dir: &Path, edit: impl FnOnce(&mut Vec<(u64, Vec<u8>)>)) {
    let path = segment_path(dir);
    let scan = log_files::scan_segment(&path).unwrap();
    let mut frames: Vec<_> = scan
        .frames
        .into_iter()
        .map(|f| (f.index, f.record))
        .collect();
    edit(&mut frames);
    let mut bytes = Vec::new();
    for (index, record) in &frames {
        log_files::encode_frame(&mut bytes, *index, record);
    }
    std::fs::write(&path, bytes).unwrap();
}

fn record_of(frames: &mut [(u64, Vec<u8>)], index: u64) -> &mut Vec<u8> {
    &mut frames.iter_mut().find(|(i, _)| *i == index).unwrap().1
}

fn flip_frame(frames: &mut [(u64, Vec<u8>)], index: u64, at: usize) {
    let r = record_of(frames, index);
    let at = at.min(r.len() - 1);
    r[at] ^= 0x40;
}

fn remove_frame(frames: &mut Vec<(u64, Vec<u8>)>, index: u64) {
    frames.retain(|(i, _)| *i != index);
}

fn flip_byte(tree: &sled::Tree, key: &[u8], at: usize) {
    let mut v = tree.get(key).unwrap().unwrap().to_vec();
    let at = at.min(v.len() - 1);
    v[at] ^= 0x40;
    tree.insert(key, v).unwrap();
}

fn open(dir: &Path) -> Result<Store<TestConfig>, StorageError> {
    Store::open(dir, CACHE)
}

fn open_repair(dir: &Path) -> Result<Store<TestConfig>, StorageError> {
    Store::open_with(
        dir,
        &StoreOptions {
            cache_capacity_bytes: CACHE,
            repair: true,
            ..StoreOptions::default()
        },
    )
}

async fn last_index(store: &Store<TestConfig>) -> Option<u64> {
    let mut log = store.log_store().unwrap();
    log.get_log_state()
        .await
        .unwrap()
        .last_log_id
        .map(|l| l.index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_last_entry_refuses_to_open_and_repair_truncates_it() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), Some(5)).await;
    with_raw_log(dir.path(), |f| flip_frame(f, 9, 20));

    let err = open(dir.path())
        .err()
        .expect("open must refuse a corrupt tail");
    match &err {
        StorageError::CorruptLogTail {
            index: 9,
            last_good: Some(8),
            count: 1,
            committed: false,
            reason: Corruption::ChecksumMismatch { .. },
        } => {}
        other => panic!("unexpected error: {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("from index 9") && msg.contains("repair"),
        "{msg}"
    );
    // Refusing changed nothing: it refuses again.
    assert!(matches!(
        open(dir.path()),
        Err(StorageError::CorruptLogTail { index: 9, .. })
    ));

    {
        let store = open_repair(dir.path()).unwrap();
        assert_eq!(store.log_check().repaired, 1);
        assert_eq!(store.log_check().last_index, Some(8));
        assert_eq!(last_index(&store).await, Some(8));
    }
    let store = open(dir.path()).expect("a repaired store opens normally");
    let mut log = store.log_store().unwrap();
    let entries = log.try_get_log_entries(..).await.unwrap();
    assert_eq!(entries.len(), 9);
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 0, 5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_of_several_entries_is_reported_from_its_first_index() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), None).await;
    with_raw_log(dir.path(), |f| {
        for i in [7u64, 8, 9] {
            let r = record_of(f, i);
            r.truncate(r.len() / 2);
        }
    });
    match open(dir.path()) {
        Err(StorageError::CorruptLogTail {
            index: 7,
            last_good: Some(6),
            count: 3,
            ..
        }) => {}
        other => panic!("unexpected: {:?}", other.err()),
    }
    let store = open_repair(dir.path()).unwrap();
    assert_eq!(store.log_check().repaired, 3);
    assert_eq!(last_index(&store).await, Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairing_into_committed_entries_lowers_the_committed_id() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), Some(8)).await;
    with_raw_log(dir.path(), |f| {
        flip_frame(f, 6, 0);
        remove_frame(f, 7);
        *record_of(f, 8) = b"x".to_vec();
        flip_frame(f, 9, 3);
    });
    let err = open(dir.path()).err().unwrap();
    assert!(
        matches!(
            err,
            StorageError::CorruptLogTail {
                index: 6,
                last_good: Some(5),
                count: 3,
                committed: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("committed"), "{err}");
    let store = open_repair(dir.path()).unwrap();
    let mut log = store.log_store().unwrap();
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 0, 5)));
    assert_eq!(
        log.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 0, 5))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_entry_in_the_middle_is_refused_even_with_repair() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), None).await;
    with_raw_log(dir.path(), |f| flip_frame(f, 4, 30));
    for result in [open(dir.path()), open_repair(dir.path())] {
        match result {
            Err(StorageError::CorruptLogEntry {
                index: 4,
                reason: Corruption::ChecksumMismatch { .. },
            }) => {}
            other => panic!("unexpected: {:?}", other.err()),
        }
    }
    // Nothing was truncated by the refused repair.
    let scan = log_files::scan_segment(&segment_path(dir.path())).unwrap();
    assert_eq!(scan.frames.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_entry_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), None).await;
    with_raw_log(dir.path(), |f| remove_frame(f, 5));
    for result in [open(dir.path()), open_repair(dir.path())] {
        assert!(
            matches!(result, Err(StorageError::LogGap { after: 4, next: 6 })),
            "{:?}",
            result.err()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_record_under_the_wrong_index_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), None).await;
    // Same bytes, other key: the checksum covers the key.
    with_raw_log(dir.path(), |f| {
        let v = record_of(f, 3).clone();
        *record_of(f, 9) = v;
    });
    assert!(matches!(
        open(dir.path()),
        Err(StorageError::CorruptLogTail {
            index: 9,
            reason: Corruption::ChecksumMismatch { .. },
            ..
        })
    ));
    // A well-sealed record whose entry claims another index.
    with_raw_log(dir.path(), |f| {
        let key = layout::log_key(9);
        *record_of(f, 9) =
            record::encode(&key, &normal_entry(1, 3, "k", json!(3)), "test").unwrap();
    });
    assert!(matches!(
        open(dir.path()),
        Err(StorageError::CorruptLogTail {
            index: 9,
            reason: Corruption::IndexMismatch { key: 9, entry: 3 },
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_vote_is_refused_and_never_repaired() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), None).await;
    with_raw_tree(dir.path(), TREE_RAFT_STATE, |t| flip_byte(t, KEY_VOTE, 10));
    for result in [open(dir.path()), open_repair(dir.path())] {
        match result {
            Err(StorageError::CorruptRecord {
                keyspace: "raft_state",
                ref key,
                ..
            }) if key == "vote" => {}
            other => panic!("unexpected: {:?}", other.err()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_purge_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), None).await;
    // The purge marker was written, the crash came before the entries went.
    with_raw_tree(dir.path(), TREE_RAFT_STATE, |t| {
        let rec = record::encode(KEY_LAST_PURGED, &log_id(1, 0, 3), "test").unwrap();
        t.insert(KEY_LAST_PURGED, rec).unwrap();
    });
    let store = open(dir.path()).unwrap();
    assert_eq!(store.log_check().finished_purge, 4);
    assert_eq!(store.log_check().first_index, Some(4));
    let mut log = store.log_store().unwrap();
    assert_eq!(log.try_get_log_entries(..).await.unwrap().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_snapshot_and_meta_records_are_typed_errors_on_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path()).unwrap();
        store.meta_store().put("sid", &7u64).await.unwrap();
    }
    // A damaged snapshot record of an earlier version (in sled): the open that would move it
    // into the files refuses it. (Damaged snapshot files: tests::snapshots.)
    let meta = SnapshotMeta::<u64, BasicNode> {
        last_log_id: Some(log_id(1, 0, 1)),
        last_membership: Default::default(),
        snapshot_id: "s".into(),
    };
    with_raw_tree(dir.path(), TREE_SNAPSHOT, |t| {
        let record = crate::snapshot_store::encode_legacy::<TestConfig>(&meta, b"state");
        t.insert(layout::KEY_SNAPSHOT, record).unwrap();
        flip_byte(t, layout::KEY_SNAPSHOT, 40)
    });
    assert!(matches!(
        open(dir.path()),
        Err(StorageError::CorruptRecord {
            keyspace: "snapshot",
            ..
        })
    ));
    with_raw_tree(dir.path(), TREE_SNAPSHOT, |t| {
        t.remove(layout::KEY_SNAPSHOT).unwrap();
    });
    with_raw_tree(dir.path(), TREE_META, |t| flip_byte(t, b"sid", 5));
    let store = open(dir.path()).unwrap();
    assert!(matches!(
        store.meta_store().get::<u64>("sid"),
        Err(StorageError::CorruptRecord {
            keyspace: "meta",
            ..
        })
    ));
    // Converted for openraft, the error keeps its explanation.
    let raft: openraft::StorageError<u64> =
        store.meta_store().get::<u64>("sid").unwrap_err().into();
    assert!(raft.to_string().contains("checksum mismatch"), "{raft}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_short_in_preallocated_space_is_cut_off_without_repair() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), Some(5)).await;
    {
        // A last entry of several sectors, as a large transaction is.
        let store = open(dir.path()).unwrap();
        let mut log = store.log_store().unwrap();
        log.blocking_append([normal_entry(1, 10, "k", json!("x".repeat(5000)))])
            .await
            .unwrap();
    }
    let path = segment_path(dir.path());
    let scan = log_files::scan_segment(&path).unwrap();
    let last = scan.frames.last().unwrap();
    let end = last.offset + (log_files::FRAME_HEADER + last.record.len()) as u64;
    // The process was killed during the write: the page holding the header and the start of
    // the record was written, the pages after it were not (they read as the preallocated
    // zeros).
    let cut = (last.offset + 700).next_multiple_of(4096).min(end - 1000);
    let cut = cut - cut % 512;
    assert!(cut > last.offset + log_files::FRAME_HEADER as u64 && cut < end);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &vec![0u8; (end - cut) as usize], cut).unwrap();
    drop(file);
    {
        let store = open(dir.path()).expect("a write cut short needs no repair");
        assert!(store.log_check().torn_write_cut);
        assert_eq!(store.log_check().repaired, 1);
        assert_eq!(last_index(&store).await, Some(9));
    }
    // Not so when the zeros do not start at a sector boundary: damage to written bytes.
    populate_over_last(dir.path()).await;
    let scan = log_files::scan_segment(&path).unwrap();
    let last = scan.frames.last().unwrap();
    let end = last.offset + (log_files::FRAME_HEADER + last.record.len()) as u64;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0u8; 100], end - 300).unwrap();
    drop(file);
    match open(dir.path()) {
        Err(StorageError::CorruptLogTail { index: 10, .. }) => {}
        other => panic!("unexpected: {:?}", other.err()),
    }
}

/// Appends entry 10 again (5000 bytes of value) after a store cut back to 9.
async fn populate_over_last(dir: &Path) {
    let store = open(dir).unwrap();
    let mut log = store.log_store().unwrap();
    log.blocking_append([normal_entry(1, 10, "k", json!("y".repeat(5000)))])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_short_past_the_end_of_the_file_is_cut_off_without_repair() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), Some(5)).await;
    let path = segment_path(dir.path());
    let scan = log_files::scan_segment(&path).unwrap();
    let last = scan.frames.last().unwrap();
    // The crash kept the header and part of the last entry's record.
    let cut = last.offset + log_files::FRAME_HEADER as u64 + 7;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(cut).unwrap();
    drop(file);
    {
        // A file that was not preallocated, or a hole left by an earlier truncation.
        let store = open(dir.path()).expect("a write cut short needs no repair");
        assert!(store.log_check().torn_write_cut);
        assert_eq!(store.log_check().repaired, 1);
        let mut log = store.log_store().unwrap();
        assert_eq!(last_index(&store).await, Some(8));
        // The log goes on from the cut.
        log.blocking_append([normal_entry(2, 9, "k", json!("again"))])
            .await
            .unwrap();
    }
    let store = open(dir.path()).unwrap();
    let mut log = store.log_store().unwrap();
    let entries = log.try_get_log_entries(..).await.unwrap();
    assert_eq!(entries.len(), 10);
    assert_eq!(entries[9].log_id, log_id(2, 0, 9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncation_leaves_nothing_of_the_removed_entries_behind() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), None).await;
    {
        let store = open(dir.path()).unwrap();
        let mut log = store.log_store().unwrap();
        log.truncate(log_id(1, 0, 5)).await.unwrap();
        // Shorter than the entries they replace: frames of the old 6..9 would line up after
        // them if the cut left their bytes.
        log.blocking_append([normal_entry(2, 5, "", json!(null))])
            .await
            .unwrap();
    }
    let store = open(dir.path()).unwrap();
    assert_eq!(store.log_check().last_index, Some(5));
    let mut log = store.log_store().unwrap();
    let entries = log.try_get_log_entries(..).await.unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[5].log_id, log_id(2, 0, 5));
}

/// A store written by a version that kept the log in sled's `raft_log` tree.
fn old_format_store(dir: &Path, entries: u64) {
    let db = raw_open(dir);
    let log = db.open_tree(TREE_LOG).unwrap();
    for i in 0..entries {
        let key = layout::log_key(i);
        let rec = record::encode(&key, &normal_entry(1, i, "k", json!(i)), "test").unwrap();
        log.insert(key, rec).unwrap();
    }
    db.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_kept_in_sled_by_an_earlier_version_moves_into_segments() {
    let dir = tempfile::tempdir().unwrap();
    old_format_store(dir.path(), 10);
    {
        let store = open(dir.path()).unwrap();
        assert_eq!(store.log_check().first_index, Some(0));
        assert_eq!(store.log_check().last_index, Some(9));
        let mut log = store.log_store().unwrap();
        let entries = log.try_get_log_entries(..).await.unwrap();
        assert_eq!(entries.len(), 10);
        assert_eq!(entries[3], normal_entry(1, 3, "k", json!(3)));
    }
    // The old tree is gone, the segments hold the log.
    let db = raw_open(dir.path());
    assert!(!db.tree_names().iter().any(|n| n == TREE_LOG.as_bytes()));
    drop(db);
    assert_eq!(
        log_files::scan_segment(&segment_path(dir.path()))
            .unwrap()
            .frames
            .len(),
        10
    );
    let store = open(dir.path()).unwrap();
    assert_eq!(store.log_check().last_index, Some(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_a_log_kept_in_sled_is_still_found_after_the_move() {
    let dir = tempfile::tempdir().unwrap();
    old_format_store(dir.path(), 10);
    with_raw_tree(dir.path(), TREE_LOG, |t| {
        flip_byte(t, &layout::log_key(9), 20)
    });
    assert!(matches!(
        open(dir.path()),
        Err(StorageError::CorruptLogTail {
            index: 9,
            last_good: Some(8),
            ..
        })
    ));
    // Moved once: the refusal is about the segment now, and repair works on it.
    assert!(dir.path().join(log_files::DIR).is_dir());
    let store = open_repair(dir.path()).unwrap();
    assert_eq!(store.log_check().last_index, Some(8));
}
