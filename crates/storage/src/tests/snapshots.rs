//! The snapshot files (`snapshot_store`): replacing, streaming in and out, what a crash leaves,
//! damage, and the move of an earlier version's snapshot out of sled.

use openraft::testing::log_id;
use openraft::{BasicNode, SnapshotMeta, StoredMembership};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::fixture::TestConfig;
use crate::error::Corruption;
use crate::{StorageError, Store};

fn meta_at(i: u64) -> SnapshotMeta<u64, BasicNode> {
    SnapshotMeta {
        last_log_id: Some(log_id(1, 0, i)),
        last_membership: StoredMembership::default(),
        snapshot_id: format!("s{i}"),
    }
}

fn open(dir: &std::path::Path) -> Store<TestConfig> {
    Store::open(dir, 1 << 20).unwrap()
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(crate::snapshot_store::DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_new_snapshot_replaces_the_old_one_and_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let snaps = store.snapshot_store();
    assert!(snaps.load_blocking().unwrap().is_none());
    snaps.save_blocking(&meta_at(3), b"three").unwrap();
    snaps.save_blocking(&meta_at(5), b"five").unwrap();
    assert_eq!(files(dir.path()), ["current", "snap-2.data"]);
    let s = snaps.load_blocking().unwrap().unwrap();
    assert_eq!((s.meta, s.data), (meta_at(5), b"five".to_vec()));
    drop((snaps, store));
    let s = open(dir.path())
        .snapshot_store()
        .load_blocking()
        .unwrap()
        .unwrap();
    assert_eq!((s.meta, s.data), (meta_at(5), b"five".to_vec()));
}

/// A build that finishes after a newer snapshot was installed must not replace it.
#[test]
fn an_older_snapshot_committed_late_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let snaps = store.snapshot_store();
    let mut late = snaps.create_blocking().unwrap();
    std::io::Write::write_all(&mut late.file, b"old").unwrap();
    let late = snaps.seal_blocking(late).unwrap();
    snaps.save_blocking(&meta_at(9), b"new").unwrap();
    assert!(!snaps.commit_blocking(late, &meta_at(4)).unwrap());
    assert_eq!(snaps.current_meta(), Some(meta_at(9)));
    assert_eq!(files(dir.path()), ["current", "snap-2.data"]);
    assert_eq!(snaps.load_blocking().unwrap().unwrap().data, b"new");
}

/// What a crash leaves in the directory (a half-written build, a pointer being replaced) is
/// removed at open; the current snapshot is untouched.
#[test]
fn leftovers_of_a_crash_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .snapshot_store()
            .save_blocking(&meta_at(3), b"kept")
            .unwrap();
        let half = store.snapshot_store().create_blocking().unwrap();
        // The process dies: nothing removes the half-written file.
        std::mem::forget(half);
    }
    let snaps_dir = dir.path().join(crate::snapshot_store::DIR);
    std::fs::write(snaps_dir.join("current.tmp"), b"torn").unwrap();
    assert_eq!(
        files(dir.path()),
        ["current", "current.tmp", "snap-1.data", "snap-2.data"]
    );
    let store = open(dir.path());
    assert_eq!(files(dir.path()), ["current", "snap-1.data"]);
    let snaps = store.snapshot_store();
    assert_eq!(snaps.load_blocking().unwrap().unwrap().data, b"kept");
    // New files do not reuse the current one's name.
    snaps.save_blocking(&meta_at(4), b"next").unwrap();
    assert_eq!(files(dir.path()), ["current", "snap-2.data"]);
}

#[test]
fn damaged_data_or_pointer_is_a_corrupt_record_error() {
    let dir = tempfile::tempdir().unwrap();
    let snaps_dir = dir.path().join(crate::snapshot_store::DIR);
    {
        let store = open(dir.path());
        store
            .snapshot_store()
            .save_blocking(&meta_at(3), b"some snapshot bytes")
            .unwrap();
    }
    let data = snaps_dir.join("snap-1.data");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[4] ^= 0x10;
    std::fs::write(&data, &bytes).unwrap();
    match open(dir.path()).snapshot_store().load_blocking() {
        Err(StorageError::CorruptRecord {
            reason: Corruption::ChecksumMismatch { .. },
            ..
        }) => {}
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    let pointer = snaps_dir.join("current");
    let mut bytes = std::fs::read(&pointer).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    std::fs::write(&pointer, &bytes).unwrap();
    match Store::<TestConfig>::open(dir.path(), 1 << 20) {
        Err(StorageError::CorruptRecord { keyspace, key, .. }) => {
            assert_eq!((keyspace, key.as_str()), ("snapshots", "current"))
        }
        Err(e) => panic!("expected a corrupt pointer, got {e}"),
        Ok(_) => panic!("a damaged snapshot pointer was accepted"),
    }
}

/// openraft writes a received snapshot chunk by chunk (seeking to each chunk's offset) and
/// reads a snapshot to send the same way; an abandoned transfer's file goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_stream_in_and_out_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let snaps = store.snapshot_store();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();

    let abandoned = snaps.receive().await.unwrap();
    assert_eq!(files(dir.path()), ["snap-1.data"]);
    drop(abandoned);
    assert!(files(dir.path()).is_empty());

    let mut incoming = snaps.receive().await.unwrap();
    for (i, chunk) in data.chunks(1 << 20).enumerate().rev() {
        incoming
            .seek(std::io::SeekFrom::Start((i << 20) as u64))
            .await
            .unwrap();
        incoming.write_all(chunk).await.unwrap();
    }
    let (mut received, sealed) = incoming.into_received().await.unwrap();
    // Handed over at its start, to be decoded from.
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut received, &mut back).unwrap();
    assert!(back == data);
    assert_eq!(sealed.len(), data.len() as u64);
    assert_eq!(sealed.crc32(), crc32fast::hash(&data));
    assert!(snaps.commit_blocking(sealed, &meta_at(7)).unwrap());

    let (meta, mut outgoing) = snaps.open_current().await.unwrap().unwrap();
    assert_eq!(meta, meta_at(7));
    assert_eq!(
        outgoing.seek(std::io::SeekFrom::End(0)).await.unwrap(),
        data.len() as u64
    );
    outgoing.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    let mut sent = Vec::new();
    outgoing.read_to_end(&mut sent).await.unwrap();
    assert!(sent == data);
    assert!(
        outgoing.write_all(b"x").await.is_err(),
        "a stored snapshot was written to"
    );

    // Replacing the snapshot while it is being sent leaves the sender's file readable.
    let (_, mut sending) = snaps.open_current().await.unwrap().unwrap();
    snaps.save(&meta_at(8), b"newer").await.unwrap();
    let mut rest = Vec::new();
    sending.read_to_end(&mut rest).await.unwrap();
    assert!(rest == data);
}

/// Versions up to session 15 kept the snapshot as one sled record; opening such a store moves
/// it into the files and removes the record.
#[test]
fn a_snapshot_kept_in_sled_by_an_earlier_version_is_moved_to_files() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(crate::layout::TREE_SNAPSHOT).unwrap();
        let record = crate::snapshot_store::encode_legacy::<TestConfig>(&meta_at(6), b"from sled");
        tree.insert(crate::layout::KEY_SNAPSHOT, record).unwrap();
        db.flush().unwrap();
    }
    {
        let store = open(dir.path());
        let s = store.snapshot_store().load_blocking().unwrap().unwrap();
        assert_eq!((s.meta, s.data), (meta_at(6), b"from sled".to_vec()));
        assert_eq!(files(dir.path()), ["current", "snap-1.data"]);
    }
    let store = open(dir.path());
    assert_eq!(files(dir.path()), ["current", "snap-1.data"]);
    let s = store.snapshot_store().load_blocking().unwrap().unwrap();
    assert_eq!(s.data, b"from sled");
    drop(store);
    let db = super::corruption::raw_open(dir.path());
    let tree = db.open_tree(crate::layout::TREE_SNAPSHOT).unwrap();
    assert!(tree.get(crate::layout::KEY_SNAPSHOT).unwrap().is_none());
}

/// A snapshot encoded through the paced writer (synced every `SNAPSHOT_SYNC_EVERY_BYTES`, with a
/// length filled in after the data, as the state machine does) is stored byte for byte.
#[test]
fn a_snapshot_written_through_the_paced_writer_is_stored_exactly() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let snaps = store.snapshot_store();
    let body: Vec<u8> = (0..(crate::SNAPSHOT_SYNC_EVERY_BYTES as usize * 2 + 12345))
        .map(|i| (i % 253) as u8)
        .collect();
    let mut new = snaps.create_blocking().unwrap();
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, new.paced());
        w.write_all(&0u64.to_le_bytes()).unwrap();
        for piece in body.chunks(256 * 1024) {
            w.write_all(piece).unwrap();
        }
        let end = w.stream_position().unwrap();
        w.seek(SeekFrom::Start(0)).unwrap();
        w.write_all(&(body.len() as u64).to_le_bytes()).unwrap();
        w.seek(SeekFrom::Start(end)).unwrap();
        w.flush().unwrap();
    }
    let sealed = snaps.seal_blocking(new).unwrap();
    assert_eq!(sealed.len(), body.len() as u64 + 8);
    assert!(snaps.commit_blocking(sealed, &meta_at(2)).unwrap());
    let stored = snaps.load_blocking().unwrap().unwrap().data;
    assert_eq!(stored[..8], (body.len() as u64).to_le_bytes());
    assert!(stored[8..] == body[..]);
}

/// A snapshot received in chunks (as openraft writes one: a seek and a write per chunk) is
/// synced as it arrives, every `SNAPSHOT_SYNC_EVERY_BYTES`, and sealed byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_snapshot_is_synced_as_it_arrives_and_sealed_exactly() {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let snaps = store.snapshot_store();
    let every = crate::SNAPSHOT_SYNC_EVERY_BYTES as usize;
    let body: Vec<u8> = (0..(every * 3 + 777)).map(|i| (i % 251) as u8).collect();
    let mut file = snaps.receive().await.unwrap();
    let mut offset = 0u64;
    for chunk in body.chunks(3 * 1024 * 1024) {
        file.seek(std::io::SeekFrom::Start(offset)).await.unwrap();
        file.write_all(chunk).await.unwrap();
        offset += chunk.len() as u64;
        // As a transfer does: the next chunk comes after a network round, not at once.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    file.shutdown().await.unwrap();
    let syncs = file.writeback_syncs();
    assert!(
        (1..=3).contains(&syncs),
        "{syncs} syncs started while receiving {} bytes",
        body.len()
    );
    let (mut received, sealed) = file.into_received().await.unwrap();
    assert_eq!(sealed.len(), body.len() as u64);
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut received, &mut back).unwrap();
    assert!(back == body);
    assert!(snaps.commit_blocking(sealed, &meta_at(3)).unwrap());
    assert!(snaps.load_blocking().unwrap().unwrap().data == body);
}
