//! Replication reads are bounded in bytes: a backlog of large entries is sent as a series of
//! bounded AppendEntries requests instead of one request too large to finish in time.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::RaftLogReader;
use serde_json::json;

use super::fixture::{normal_entry, TestConfig};
use crate::{Store, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_reads_stop_at_the_byte_budget_but_return_at_least_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::<TestConfig>::open_with(
        dir.path(),
        &StoreOptions {
            replication_read_bytes: 100_000,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let mut log = store.log_store().unwrap();
    // Entries 1..=10 of about 30 kB, then one of 500 kB, then small ones.
    let mut entries = Vec::new();
    for i in 1..=10u64 {
        entries.push(normal_entry(1, i, "k", json!({"pad": "a".repeat(30_000)})));
    }
    entries.push(normal_entry(
        1,
        11,
        "k",
        json!({"pad": "b".repeat(500_000)}),
    ));
    for i in 12..=20u64 {
        entries.push(normal_entry(1, i, "k", json!({"n": i})));
    }
    log.blocking_append(entries.clone()).await.unwrap();
    let mut reader = log.get_log_reader().await;

    let first = reader.limited_get_log_entries(1, 21).await.unwrap();
    assert_eq!(first.len(), 4, "30 kB entries up to the 100 kB budget");
    assert_eq!(first, entries[0..4].to_vec());
    // An entry larger than the budget comes alone.
    let big = reader.limited_get_log_entries(11, 21).await.unwrap();
    assert_eq!(big, entries[10..11].to_vec());
    let rest = reader.limited_get_log_entries(12, 21).await.unwrap();
    assert_eq!(rest, entries[11..].to_vec());
    // Unlimited reads (applying, openraft's own checks) still return the whole range.
    assert_eq!(reader.try_get_log_entries(1..21).await.unwrap(), entries);
}
