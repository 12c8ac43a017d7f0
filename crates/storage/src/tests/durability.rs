//! An acknowledged append survives the process dying at once: a child process
//! appends through `LogStore` and aborts (no destructors, no sled shutdown
//! flush) right after openraft's callback reported the last append durable;
//! the parent then reopens the store and finds every acknowledged entry, and the committed
//! id the child saved after its last append (which sled alone would have lost: nothing
//! flushed it).
//!
//! `abort` loses what sled still buffers in the process but not what reached
//! the kernel, so this proves "written out before acknowledged"; the fsync
//! itself (power loss) cannot be observed from a test.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use serde_json::json;

use super::fixture::{normal_entry, TestConfig};
use crate::{Store, DEFAULT_CACHE_CAPACITY_BYTES};

const CHILD_DIR_ENV: &str = "HALYARD_STORAGE_TEST_CHILD_DIR";
const ENTRIES: u64 = 300;

/// The child's side; does nothing unless started by the test below.
#[test]
#[ignore = "helper process for acknowledged_appends_and_the_committed_id_survive_an_abort"]
fn child_append_then_abort() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::<TestConfig>::open(&dir, DEFAULT_CACHE_CAPACITY_BYTES).unwrap();
        let mut log = store.log_store().unwrap();
        for i in 0..ENTRIES {
            log.blocking_append([normal_entry(1, i, &format!("k{i}"), json!(i))])
                .await
                .unwrap();
        }
        log.save_committed(Some(log_id(1, 0, ENTRIES - 1)))
            .await
            .unwrap();
        std::process::abort();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_and_the_committed_id_survive_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::durability::child_append_then_abort",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        !status.success(),
        "the child must die by abort, got {status}"
    );

    let store = Store::<TestConfig>::open(dir.path(), DEFAULT_CACHE_CAPACITY_BYTES).unwrap();
    let mut log = store.log_store().unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id.map(|l| l.index), Some(ENTRIES - 1));
    assert_eq!(store.log_check().first_index, Some(0));
    assert_eq!(
        log.read_committed().await.unwrap(),
        Some(log_id(1, 0, ENTRIES - 1))
    );
}
