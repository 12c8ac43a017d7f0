//! Measurements, not assertions: append throughput and bytes on disk for
//! 100k entries of 1 KiB. Run with
//! `cargo test -p halyard-storage throughput -- --ignored --nocapture`
//! (add `--release` for representative numbers).
//!
//! Measured once, release build, ext4 virtual disk, 2 shared cores, 64 MiB cache:
//! - direct appends, 64 entries per call: 2.4 s, ~41,600 entries/s, 1,563
//!   fsyncs; 187 MiB on disk for 97.7 MiB of payload (JSON envelope ~10%,
//!   the rest sled's space amplification); RSS 76 MiB;
//! - single-member openraft, 64 concurrent clients: 26.9 s, ~3,700 writes/s,
//!   one fsync per write (upstream openraft 0.9 awaited each append's flush
//!   before the next; measured before the patch described in `flusher`);
//!   206 MiB on disk; RSS 148 MiB.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::RaftLogStorageExt;
use openraft::{BasicNode, Config, Raft};

use super::fixture::{normal_entry, Request, TestConfig, TestStateMachine};
use crate::{Store, DEFAULT_CACHE_CAPACITY_BYTES};

const ENTRIES: u64 = 100_000;
const PAYLOAD: usize = 1024;

fn payload(i: u64) -> serde_json::Value {
    let mut s = format!("{i:08}-");
    s.extend(std::iter::repeat_n('x', PAYLOAD - s.len()));
    serde_json::Value::String(s)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

fn rss_kib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l["VmRSS:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn report(
    what: &str,
    elapsed: Duration,
    store: &Store<TestConfig>,
    dir: &Path,
    flushes: u64,
    appends: u64,
) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{what}: {ENTRIES} entries x {PAYLOAD} B in {secs:.2} s = {:.0} entries/s, {:.1} MiB/s payload; \
         {flushes} fsyncs for {appends} append calls; sled size_on_disk {:.1} MiB, files {:.1} MiB \
         (payload {:.1} MiB); RSS {}",
        ENTRIES as f64 / secs,
        (ENTRIES as usize * PAYLOAD) as f64 / secs / 1048576.0,
        store.size_on_disk().unwrap() as f64 / 1048576.0,
        dir_bytes(dir) as f64 / 1048576.0,
        (ENTRIES as usize * PAYLOAD) as f64 / 1048576.0,
        rss_kib(),
    );
}

/// `append` calls of 64 entries each, one after the other (each waits for
/// its flush), as openraft issues them for a follower catching up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn throughput_direct_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::<TestConfig>::open(dir.path(), DEFAULT_CACHE_CAPACITY_BYTES).unwrap();
    let mut log = store.log_store().unwrap();
    let start = Instant::now();
    let mut i = 0;
    while i < ENTRIES {
        let batch: Vec<_> = (i..(i + 64).min(ENTRIES))
            .map(|j| normal_entry(1, j, "k", payload(j)))
            .collect();
        i += batch.len() as u64;
        log.blocking_append(batch).await.unwrap();
    }
    let elapsed = start.elapsed();
    let stats = log.flush_stats();
    report(
        "direct appends (64/call)",
        elapsed,
        &store,
        dir.path(),
        stats.flushes,
        stats.completed_appends,
    );
}

/// A single-member cluster: never sends anything, so every call is refused.
struct NoPeers;

impl RaftNetworkFactory<TestConfig> for NoPeers {
    type Network = NoPeers;
    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> NoPeers {
        NoPeers
    }
}

fn unreachable<E: std::error::Error>() -> RPCError<u64, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(
        "single-member cluster",
    )))
}

impl RaftNetwork<TestConfig> for NoPeers {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TestConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TestConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        Err(unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(unreachable())
    }
}

/// `client_write`s from 64 concurrent clients through a real single-member
/// openraft: openraft pipelines appends, and the flusher merges their fsyncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn throughput_single_node_raft() {
    const CLIENTS: u64 = 64;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::<TestConfig>::open(dir.path(), DEFAULT_CACHE_CAPACITY_BYTES).unwrap();
    let log = store.log_store().unwrap();
    let metrics = log.flush_metrics();
    let sm = TestStateMachine::new(store.snapshot_store()).await.unwrap();
    let config = Config {
        // Keep compaction out of the measurement.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        ..Default::default()
    };
    let raft = Raft::<TestConfig>::new(0, Arc::new(config.validate().unwrap()), NoPeers, log, sm)
        .await
        .unwrap();
    raft.initialize(BTreeMap::from([(0u64, BasicNode::default())]))
        .await
        .unwrap();
    raft.wait(Some(Duration::from_secs(10)))
        .current_leader(0, "leader")
        .await
        .unwrap();
    let before = metrics.get();

    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let raft = raft.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while i < ENTRIES {
                raft.client_write(Request {
                    key: format!("k{}", i % 1000),
                    value: payload(i),
                })
                .await
                .unwrap();
                i += CLIENTS;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    let after = metrics.get();
    report(
        "single-node raft, 64 clients",
        elapsed,
        &store,
        dir.path(),
        after.flushes - before.flushes,
        after.completed_appends - before.completed_appends,
    );
    raft.shutdown().await.unwrap();
}
