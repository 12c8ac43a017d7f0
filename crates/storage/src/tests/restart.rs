//! Reopening a store returns exactly what was written before it was closed.

use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{BasicNode, Membership, RaftLogReader, SnapshotMeta, StoredMembership, Vote};
use serde_json::json;

use super::fixture::{normal_entry, TestConfig};
use crate::{StorageError, Store, DEFAULT_CACHE_CAPACITY_BYTES};

fn entries() -> Vec<openraft::Entry<TestConfig>> {
    let mut v = vec![openraft::Entry::<TestConfig>::new_membership(
        log_id(1, 0, 0),
        Membership::new(vec![[0u64, 1, 2].into_iter().collect()], None),
    )];
    for i in 1..10 {
        v.push(normal_entry(
            1 + i / 5,
            i,
            &format!("k{i}"),
            json!({"ops": [{"op": "insert", "row": {"n": i, "r": 0.1 + i as f64, "s": "é\u{0}"}}]}),
        ));
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_reads_back_log_vote_committed_snapshot_and_meta() {
    let dir = tempfile::tempdir().unwrap();
    let snap_meta = SnapshotMeta::<u64, BasicNode> {
        last_log_id: Some(log_id(1, 0, 2)),
        last_membership: StoredMembership::new(
            Some(log_id(1, 0, 0)),
            Membership::new(vec![[0u64, 1, 2].into_iter().collect()], None),
        ),
        snapshot_id: "2-1".into(),
    };
    let snap_data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    {
        let store = Store::<TestConfig>::open(dir.path(), DEFAULT_CACHE_CAPACITY_BYTES).unwrap();
        let mut log = store.log_store().unwrap();
        log.blocking_append(entries()).await.unwrap();
        log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        log.save_committed(Some(log_id(2, 0, 7))).await.unwrap();
        log.purge(log_id(1, 0, 2)).await.unwrap();
        store
            .snapshot_store()
            .save(&snap_meta, &snap_data)
            .await
            .unwrap();
        let meta = store.meta_store();
        meta.put("cluster_id", "b1f4c0de-0000-4000-8000-000000000001")
            .await
            .unwrap();
        meta.put("server_id", &5u64).await.unwrap();
        meta.put("applied", &Some(log_id(2, 0, 7))).await.unwrap();
    }

    let store = Store::<TestConfig>::open(dir.path(), DEFAULT_CACHE_CAPACITY_BYTES).unwrap();
    assert_eq!(store.log_check().first_index, Some(3));
    assert_eq!(store.log_check().last_index, Some(9));
    let mut log = store.log_store().unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 0, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 0, 9)));
    assert_eq!(
        log.try_get_log_entries(0..).await.unwrap(),
        entries()[3..].to_vec()
    );
    assert_eq!(
        log.get_log_reader()
            .await
            .try_get_log_entries(4..=5)
            .await
            .unwrap(),
        entries()[4..=5].to_vec()
    );
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(2, 1))
    );
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 0, 7)));

    let snap = store.snapshot_store().load().await.unwrap().unwrap();
    assert_eq!(snap.meta, snap_meta);
    assert_eq!(snap.data, snap_data);

    let meta = store.meta_store();
    assert_eq!(
        meta.get::<String>("cluster_id").unwrap().as_deref(),
        Some("b1f4c0de-0000-4000-8000-000000000001")
    );
    assert_eq!(meta.get::<u64>("server_id").unwrap(), Some(5));
    assert_eq!(
        meta.get::<Option<openraft::LogId<u64>>>("applied").unwrap(),
        Some(Some(log_id(2, 0, 7)))
    );
    assert_eq!(meta.get::<u64>("absent").unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_and_a_replaced_snapshot_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let meta_at = |i: u64| SnapshotMeta::<u64, BasicNode> {
        last_log_id: Some(log_id(1, 0, i)),
        last_membership: StoredMembership::default(),
        snapshot_id: format!("{i}"),
    };
    {
        let store = Store::<TestConfig>::open(dir.path(), 1 << 20).unwrap();
        let mut log = store.log_store().unwrap();
        log.blocking_append(entries()).await.unwrap();
        log.truncate(log_id(1, 0, 6)).await.unwrap();
        let snaps = store.snapshot_store();
        snaps.save(&meta_at(3), b"old").await.unwrap();
        snaps.save_blocking(&meta_at(5), b"new").unwrap();
        store.meta_store().put("gone", &1u8).await.unwrap();
        store.meta_store().remove("gone").await.unwrap();
    }
    let store = Store::<TestConfig>::open(dir.path(), 1 << 20).unwrap();
    let mut log = store.log_store().unwrap();
    assert_eq!(
        log.try_get_log_entries(..).await.unwrap(),
        entries()[..6].to_vec()
    );
    let snap = store.snapshot_store().load_blocking().unwrap().unwrap();
    assert_eq!((snap.meta, snap.data), (meta_at(5), b"new".to_vec()));
    assert_eq!(store.meta_store().get::<u8>("gone").unwrap(), None);
}

#[test]
fn a_second_open_of_a_live_store_is_a_typed_lock_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::<TestConfig>::open(dir.path(), 1 << 20).unwrap();
    match Store::<TestConfig>::open(dir.path(), 1 << 20) {
        Err(StorageError::Locked { path, .. }) => {
            assert!(path.contains(&*dir.path().to_string_lossy()))
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second open of a live store succeeded"),
    }
}

/// sled's copy of the committed id is written only every `SLED_COMMITTED_EVERY` commits while
/// the high-water mark names each commit, and at once when the mark cannot (the entry not
/// synced here): a reopened store still reads back the last commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_id_comes_back_from_the_mark_between_sled_writes() {
    use crate::layout::KEY_COMMITTED;
    use crate::log_store::{read_state, SLED_COMMITTED_EVERY};

    let dir = tempfile::tempdir().unwrap();
    let sled_copy = |store: &Store<TestConfig>| -> Option<u64> {
        let saved: Option<openraft::LogId<u64>> =
            read_state(store.raft_state(), KEY_COMMITTED).unwrap();
        saved.map(|l| l.index)
    };
    let commits = SLED_COMMITTED_EVERY + 10;
    {
        let store = Store::<TestConfig>::open(dir.path(), DEFAULT_CACHE_CAPACITY_BYTES).unwrap();
        let mut log = store.log_store().unwrap();
        for i in 0..commits {
            log.blocking_append([normal_entry(1, i, &format!("k{i}"), json!(i))])
                .await
                .unwrap();
            log.save_committed(Some(log_id(1, 0, i))).await.unwrap();
            let lag = sled_copy(&store).map_or(i + 1, |c| i - c);
            assert!(
                lag < SLED_COMMITTED_EVERY,
                "sled's copy {lag} commits behind at {i}"
            );
        }
        assert!(
            sled_copy(&store) < Some(commits - 1),
            "sled written at every commit"
        );
    }
    let store = Store::<TestConfig>::open(dir.path(), DEFAULT_CACHE_CAPACITY_BYTES).unwrap();
    let mut log = store.log_store().unwrap();
    assert_eq!(
        log.read_committed().await.unwrap(),
        Some(log_id(1, 0, commits - 1))
    );
    // Committed beyond what this member has synced: only sled can hold it.
    log.save_committed(Some(log_id(1, 0, commits + 5)))
        .await
        .unwrap();
    assert_eq!(sled_copy(&store), Some(commits + 5));
}
