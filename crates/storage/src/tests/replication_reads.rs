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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn timing_of_large_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::<TestConfig>::open_with(dir.path(), &StoreOptions::default()).unwrap();
    let mut log = store.log_store().unwrap();
    let start = std::time::Instant::now();
    for i in 1..=80u64 {
        let t = std::time::Instant::now();
        log.blocking_append(vec![normal_entry(
            1,
            i,
            "k",
            json!({"pad": "Q".repeat(1_100_000)}),
        )])
        .await
        .unwrap();
        if i % 10 == 0 {
            eprintln!("append {i}: {:?}", t.elapsed());
        }
    }
    eprintln!("80 appends: {:?}", start.elapsed());
    let mut reader = log.get_log_reader().await;
    let t = std::time::Instant::now();
    let mut next = 1;
    while next <= 80 {
        let got = reader.limited_get_log_entries(next, 81).await.unwrap();
        next += got.len() as u64;
    }
    eprintln!("read back: {:?}", t.elapsed());
}

#[test]
#[ignore]
fn timing_of_sled_large_inserts() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(64 << 20)
        .open()
        .unwrap();
    let tree = db.open_tree("log").unwrap();
    let value = vec![b'Q'; 1_100_000];
    let t = std::time::Instant::now();
    for i in 0..80u64 {
        tree.insert(i.to_be_bytes(), value.clone()).unwrap();
    }
    eprintln!("80 sled inserts: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    db.flush().unwrap();
    eprintln!("flush: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    for i in 0..80u64 {
        let mut buf = crate::record::buffer_with_capacity(1_100_000);
        serde_json::to_writer(&mut buf, &serde_json::json!({"pad": "Q".repeat(1_100_000)}))
            .unwrap();
        let _ = crate::record::seal_buffer(&i.to_be_bytes(), buf);
    }
    eprintln!("80 encodes: {:?}", t.elapsed());
}
