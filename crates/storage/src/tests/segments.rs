//! The log's segment files against a model: random appends, truncations, purges and reopenings
//! with small segments (so that entries span many files, segments are created, cut and deleted),
//! checking after every step that the store serves exactly what the model holds.

use std::collections::BTreeMap;
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::RaftLogReader;
use serde_json::json;

use super::fixture::{normal_entry, TestConfig};
use crate::{log_files, Store, StoreOptions};

/// A few entries per segment.
const SEGMENT: u64 = 2048;

/// xorshift64*: reproducible without a dependency; the seed is printed on failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn open(dir: &Path) -> Store<TestConfig> {
    Store::open_with(
        dir,
        &StoreOptions {
            segment_bytes: SEGMENT,
            replication_read_bytes: 1500,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

/// Entry `index` of `term`, sized so that segments hold a handful.
fn entry(term: u64, index: u64) -> openraft::Entry<TestConfig> {
    normal_entry(
        term,
        index,
        "k",
        json!("x".repeat((index % 7 * 60) as usize)),
    )
}

#[derive(Default)]
struct Model {
    entries: BTreeMap<u64, u64>, // index -> term
    purged: Option<u64>,
    term: u64,
}

impl Model {
    fn next_index(&self) -> u64 {
        match (self.entries.keys().next_back(), self.purged) {
            (Some(l), _) => l + 1,
            (None, Some(p)) => p + 1,
            (None, None) => 0,
        }
    }
}

async fn check(store: &Store<TestConfig>, model: &Model, rng: &mut Rng, seed: u64, step: usize) {
    let ctx = format!("seed {seed:#x}, step {step}");
    let mut log = store.log_store().unwrap();
    let state = log.get_log_state().await.unwrap();
    let want_last = match model.entries.iter().next_back() {
        Some((i, t)) => Some(log_id(*t, 0, *i)),
        None => model.purged.map(|p| log_id(1, 0, p)),
    };
    assert_eq!(
        state.last_log_id.map(|l| l.index),
        want_last.map(|l| l.index),
        "{ctx}: last log id"
    );
    let all = log.try_get_log_entries(..).await.unwrap();
    let got: Vec<(u64, u64)> = all
        .iter()
        .map(|e| (e.log_id.index, e.log_id.leader_id.term))
        .collect();
    let want: Vec<(u64, u64)> = model.entries.iter().map(|(i, t)| (*i, *t)).collect();
    assert_eq!(got, want, "{ctx}: every entry");
    for e in &all {
        assert_eq!(e, &entry(e.log_id.leader_id.term, e.log_id.index), "{ctx}");
    }
    // A random range, and a byte-limited read from a random start.
    if let (Some(&lo), Some(&hi)) = (
        model.entries.keys().next(),
        model.entries.keys().next_back(),
    ) {
        // Entries as the model has them (index, term), each checked in full as well.
        let want = |from: u64, n: usize| -> Vec<(u64, u64)> {
            model
                .entries
                .range(from..)
                .take(n)
                .map(|(i, t)| (*i, *t))
                .collect()
        };
        let seen = |got: &[openraft::Entry<TestConfig>]| -> Vec<(u64, u64)> {
            for e in got {
                assert_eq!(e, &entry(e.log_id.leader_id.term, e.log_id.index), "{ctx}");
            }
            got.iter()
                .map(|e| (e.log_id.index, e.log_id.leader_id.term))
                .collect()
        };
        let a = lo + rng.below(hi - lo + 1);
        let b = a + rng.below(hi - a + 2);
        let got = log.try_get_log_entries(a..b).await.unwrap();
        assert_eq!(
            seen(&got),
            want(a, (b - a) as usize),
            "{ctx}: range {a}..{b}"
        );
        // The newest entries: what replication and apply read right after an append (from the
        // entry cache when it holds them).
        let tail = hi - rng.below(4).min(hi - lo);
        let got = log.try_get_log_entries(tail..=hi).await.unwrap();
        assert_eq!(
            seen(&got),
            want(tail, usize::MAX),
            "{ctx}: tail from {tail}"
        );
        let mut reader = log.get_log_reader().await;
        let got = reader.limited_get_log_entries(a, hi + 1).await.unwrap();
        assert!(
            !got.is_empty(),
            "{ctx}: a limited read returns at least one entry"
        );
        assert_eq!(
            seen(&got),
            want(a, got.len()),
            "{ctx}: limited read from {a}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_appends_truncations_purges_and_reopens_match_a_model() {
    for seed in [
        0x9e37_79b9_7f4a_7c15u64,
        0x1234_5678_9abc_def1,
        0xdead_beef_cafe_f00d,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed);
        let mut model = Model {
            term: 1,
            ..Model::default()
        };
        let mut store = open(dir.path());
        let mut most_segments = 0;
        for step in 0..120 {
            let mut log = store.log_store().unwrap();
            match rng.below(10) {
                0..=4 => {
                    let n = 1 + rng.below(8);
                    let start = model.next_index();
                    let batch: Vec<_> = (start..start + n).map(|i| entry(model.term, i)).collect();
                    log.blocking_append(batch).await.unwrap();
                    for i in start..start + n {
                        model.entries.insert(i, model.term);
                    }
                }
                5 | 6 => {
                    if let (Some(&lo), Some(&hi)) = (
                        model.entries.keys().next(),
                        model.entries.keys().next_back(),
                    ) {
                        let at = lo + rng.below(hi - lo + 1);
                        let t = model.entries[&at];
                        log.truncate(log_id(t, 0, at)).await.unwrap();
                        model.entries.retain(|i, _| *i < at);
                        // A new leader writes from there.
                        model.term += 1;
                    }
                }
                7 => {
                    // Purge up to somewhere in the log, or past its end (a snapshot installed
                    // from the leader).
                    let end = model.next_index();
                    let upto = model.purged.map_or(0, |p| p + 1) + rng.below(end + 3);
                    if model.purged.is_none_or(|p| upto > p) {
                        log.purge(log_id(1, 0, upto)).await.unwrap();
                        model.entries.retain(|i, _| *i > upto);
                        model.purged = Some(upto);
                    }
                }
                _ => {
                    drop(log);
                    drop(store);
                    store = open(dir.path());
                    log = store.log_store().unwrap();
                }
            }
            drop(log);
            let segments = log_files::list_segments(&dir.path().join(log_files::DIR))
                .unwrap()
                .len();
            most_segments = most_segments.max(segments);
            check(&store, &model, &mut rng, seed, step).await;
        }
        drop(store);
        let store = open(dir.path());
        check(&store, &model, &mut rng, seed, usize::MAX).await;
        assert!(
            most_segments >= 3,
            "seed {seed:#x}: the log never spanned several segments ({most_segments})"
        );
    }
}
