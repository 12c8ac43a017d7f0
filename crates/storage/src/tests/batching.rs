//! The flusher's group commit, against a real sled database: callbacks are
//! completed in order, only after their writes reached the database file, and
//! appends queued while a flush runs share the next one.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::flusher::{Completion, Flusher};

/// Records the order of completion and whether `marker` was in the database
/// files on disk at that moment.
struct Probe {
    seq: usize,
    dir: Option<(std::path::PathBuf, Vec<u8>)>,
    log: Arc<Mutex<Vec<(usize, bool, bool)>>>,
    done: tokio::sync::oneshot::Sender<()>,
    /// Holds the flusher thread inside this completion until released.
    gate: Option<std::sync::mpsc::Receiver<()>>,
    /// Stands for a follower's append, which openraft awaits.
    awaited: bool,
}

impl Completion for Probe {
    fn complete(self, result: Result<(), std::io::Error>) {
        let on_disk = self.dir.as_ref().is_some_and(|(d, m)| files_contain(d, m));
        self.log
            .lock()
            .unwrap()
            .push((self.seq, result.is_ok(), on_disk));
        let _ = self.done.send(());
        if let Some(gate) = self.gate {
            let _ = gate.recv();
        }
    }

    fn awaited(&self) -> bool {
        self.awaited
    }
}

fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let path = e.unwrap().path();
        if path.is_dir() {
            files_contain(&path, needle)
        } else {
            let bytes = std::fs::read(&path).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_fires_only_after_its_write_reached_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (db, flusher) = sled_and_flusher(dir.path());
    let marker = b"halyard-durability-marker-7f3a9c1e".to_vec();
    db.insert(b"k", marker.clone()).unwrap();
    // Control: sled keeps the write in memory until flushed, so the check
    // below observes the flusher and is not vacuous.
    assert!(
        !files_contain(dir.path(), &marker),
        "sled wrote before any flush"
    );

    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::oneshot::channel();
    flusher
        .submit(Probe {
            seq: 0,
            dir: Some((dir.path().to_path_buf(), marker)),
            log: log.clone(),
            done: tx,
            gate: None,
            awaited: false,
        })
        .await
        .unwrap();
    rx.await.unwrap();
    assert_eq!(*log.lock().unwrap(), vec![(0, true, true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_appends_share_flushes_and_complete_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (db, flusher) = sled_and_flusher(dir.path());
    let log = Arc::new(Mutex::new(Vec::new()));
    let n = 2000;
    let mut waits = Vec::new();
    // The first completion keeps the flusher thread busy until every other
    // append is queued, so batching is certain rather than a matter of timing.
    let (release, gate) = std::sync::mpsc::channel();
    let mut gate = Some(gate);
    for seq in 0..n {
        db.insert(seq.to_string(), vec![seq as u8; 1024]).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        flusher
            .submit(Probe {
                seq,
                dir: None,
                log: log.clone(),
                done: tx,
                gate: gate.take(),
                awaited: false,
            })
            .await
            .unwrap();
        waits.push(rx);
        if seq == 0 {
            // Wait for the first batch to be flushed and held.
            std::mem::take(&mut waits).pop().unwrap().await.unwrap();
        }
    }
    release.send(()).unwrap();
    for rx in waits {
        rx.await.unwrap();
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), n);
    assert!(log
        .iter()
        .enumerate()
        .all(|(i, (seq, ok, _))| i == *seq && *ok));
    let stats = flusher.stats();
    assert_eq!(stats.completed_appends, n as u64);
    assert_eq!(stats.pending_appends, 0);
    println!("{n} queued appends -> {} flushes", stats.flushes);
    assert_eq!(
        stats.flushes,
        2,
        "the {} appends queued behind the first must share one flush",
        n - 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_append_is_synced_in_the_caller_unless_the_thread_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let (db, flusher) = sled_and_flusher(dir.path());
    let log = Arc::new(Mutex::new(Vec::new()));
    let probe = |seq, marker: Option<Vec<u8>>, gate, awaited| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let p = Probe {
            seq,
            dir: marker.map(|m| (dir.path().to_path_buf(), m)),
            log: log.clone(),
            done: tx,
            gate,
            awaited,
        };
        (p, rx)
    };
    // Idle: completed before `submit` returns, after the write reached the file.
    let marker = b"halyard-inline-marker-2c9e".to_vec();
    db.insert(b"k", marker.clone()).unwrap();
    assert!(
        !files_contain(dir.path(), &marker),
        "sled wrote before any flush"
    );
    let (p, _rx) = probe(0, Some(marker), None, true);
    flusher.submit(p).await.unwrap();
    assert_eq!(*log.lock().unwrap(), vec![(0, true, true)]);
    assert_eq!(flusher.stats().inline_flushes, 1);
    // The thread holds an earlier append: the awaited one queues behind it, in order.
    let (release, gate) = std::sync::mpsc::channel();
    let (p, first) = probe(1, None, Some(gate), false);
    flusher.submit(p).await.unwrap();
    first.await.unwrap();
    let (p, second) = probe(2, None, None, true);
    flusher.submit(p).await.unwrap();
    assert_eq!(
        log.lock().unwrap().len(),
        2,
        "completed ahead of the held append"
    );
    release.send(()).unwrap();
    second.await.unwrap();
    let order: Vec<usize> = log.lock().unwrap().iter().map(|(s, _, _)| *s).collect();
    assert_eq!(order, vec![0, 1, 2]);
    let stats = flusher.stats();
    assert_eq!(stats.inline_flushes, 1);
    assert_eq!(stats.flushes, 3);
}

/// A sled database that writes only when flushed (no periodic background flush, so only the
/// flusher writes values out) and a flusher syncing it.
fn sled_and_flusher(dir: &Path) -> (sled::Db, Flusher<Probe>) {
    let db = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .open()
        .unwrap();
    let flusher = Flusher::<Probe>::start(sync_sled(db.clone()), || {}).unwrap();
    (db, flusher)
}

/// The flusher's sync step as a plain sled flush, so the probe can see what it wrote out.
fn sync_sled(db: sled::Db) -> impl Fn() -> std::io::Result<()> + Send + Sync + 'static {
    move || db.flush().map(drop).map_err(std::io::Error::other)
}
