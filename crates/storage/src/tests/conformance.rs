//! openraft's own storage conformance suite, run against `LogStore` on a real
//! sled database (a fresh temporary directory per case).

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

use super::fixture::{TestConfig, TestStateMachine};
use crate::{LogStore, Store};

/// Keeps the directory (and the open database) alive for one suite case.
pub struct Guard {
    _store: Store<TestConfig>,
    _dir: tempfile::TempDir,
}

struct Builder;

impl StoreBuilder<TestConfig, LogStore<TestConfig>, TestStateMachine, Guard> for Builder {
    async fn build(
        &self,
    ) -> Result<(Guard, LogStore<TestConfig>, TestStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let store = Store::<TestConfig>::open(dir.path(), 8 << 20)?;
        let log = store.log_store()?;
        let sm = TestStateMachine::new(store.snapshot_store()).await?;
        Ok((
            Guard {
                _store: store,
                _dir: dir,
            },
            log,
            sm,
        ))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}
