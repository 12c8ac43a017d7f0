//! Three members in one process on the in-process network (`router`, `mem:` addresses): the
//! real member, service, forwarder, read barriers and lock leases, real sled files, only the
//! sockets simulated. Each test waits on conditions (a leader known, an index applied), never
//! on fixed sleeps, and takes about a second.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use halyard_raft::{router, Member, MemberConfig, MemberError, Outcome, Transaction};
use serde_json::{json, Value};
use uuid::Uuid;

const DB: &str = "D";

fn schema() -> Value {
    json!({"name": DB, "version": "1.0.0", "tables": {
        "T": {"columns": {"name": {"type": "string"}}, "isRoot": true}}})
}

fn config() -> MemberConfig {
    MemberConfig {
        election_timeout_ms: 300,
        heartbeat_ms: 30,
        write_wait: Duration::from_secs(10),
        lock_lease: Duration::from_secs(1),
        ..MemberConfig::default()
    }
}

/// Heartbeats and elections far beyond any test's wait: what reaches a follower is what the
/// test sends, and the leader stays.
fn without_timers() -> MemberConfig {
    MemberConfig {
        election_timeout_ms: 600_000,
        heartbeat_ms: 60_000,
        ..config()
    }
}

/// How long any condition may take before the test fails.
const WITHIN: Duration = Duration::from_secs(15);

struct Cluster {
    _dir: tempfile::TempDir,
    names: Vec<String>,
    members: Vec<Option<Arc<Member>>>,
}

impl Cluster {
    /// Three members under names unique in this process (tests run in parallel and share the
    /// router).
    async fn start() -> Cluster {
        Cluster::start_with(config()).await
    }

    async fn start_with(config: MemberConfig) -> Cluster {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (1..=3).map(|i| format!("c{n}m{i}")).collect();
        let addr = |i: usize| format!("mem:{}", names[i]);
        let mut members = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let data = dir.path().join(name);
            if i == 0 {
                Member::create_cluster(&data, &[schema()], &addr(0)).unwrap();
            } else {
                Member::join_cluster(&data, &addr(i), &[addr(0)]).unwrap();
            }
            members.push(Some(Member::start(&data, config.clone()).await.unwrap()));
        }
        let c = Cluster {
            _dir: dir,
            names,
            members,
        };
        c.leader().await;
        c
    }

    fn member(&self, i: usize) -> &Arc<Member> {
        self.members[i].as_ref().expect("a live member")
    }

    /// The leader every live member agrees on, once there is one.
    async fn leader(&self) -> usize {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let live: Vec<(usize, &Arc<Member>)> = self
                .members
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.as_ref().map(|m| (i, m)))
                .collect();
            let leaders: Vec<usize> = live
                .iter()
                .filter(|(_, m)| m.status().is_leader)
                .map(|(i, _)| *i)
                .collect();
            if let [l] = leaders[..] {
                let id = self.member(l).identity().node_id;
                let all_follow = live.iter().all(|(_, m)| m.status().leader == Some(id));
                if all_follow && self.member(l).connected() {
                    return l;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn follower(&self) -> usize {
        let l = self.leader().await;
        (0..3)
            .find(|i| *i != l && self.members[*i].is_some())
            .unwrap()
    }

    /// Takes member `i` away as a crash would: its connections fail, its Raft stops.
    async fn kill(&mut self, i: usize) {
        router::kill(&self.names[i]);
        if let Some(m) = self.members[i].take() {
            m.shutdown().await;
        }
    }

    /// Starts member `i` again from its data directory.
    async fn restart(&mut self, i: usize, config: MemberConfig) -> Result<(), MemberError> {
        assert!(self.members[i].is_none(), "member {i} is still running");
        let data = self._dir.path().join(&self.names[i]);
        self.members[i] = Some(Member::start(&data, config).await?);
        Ok(())
    }
}

async fn insert(m: &Member, name: &str) -> Value {
    let ops = vec![json!({"op": "insert", "table": "T", "row": {"name": name}})];
    match m.transact(DB, &ops, Uuid::new_v4(), None, 0).await.unwrap() {
        Transaction::Done(result) => {
            assert!(result[0]["uuid"].is_array(), "{result}");
            result
        }
        blocked => panic!("insert blocked: {blocked:?}"),
    }
}

/// Rows named `name` on member `m`, after a read barrier (current, not just local).
async fn rows_named(m: &Member, name: &str) -> usize {
    m.read_barrier().await.unwrap();
    m.with_state(|s| {
        s.dbs[DB]
            .db
            .rows("T")
            .filter(|(_, r)| r.get(0) == &ovsdb::Datum::from_atom(ovsdb::Atom::string(name)))
            .count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_follower_is_applied_on_every_member() {
    let c = Cluster::start().await;
    let f = c.follower().await;
    insert(c.member(f), "via-follower").await;
    for i in 0..3 {
        assert_eq!(
            rows_named(c.member(i), "via-follower").await,
            1,
            "member {i}"
        );
    }
}

/// Writes through a follower while `hold` keeps the leader's state on a thread of its own: it
/// calls its second argument while holding it, which returns once the write was answered (true)
/// or after 5 s (false). The write starts `settle` after the hold; it must be answered during
/// the hold, by the leader of before (no election).
async fn assert_commits_while_the_leader_is_held<H>(c: &Cluster, settle: Duration, hold: H)
where
    H: FnOnce(&Member, &dyn Fn() -> bool) -> bool + Send + 'static,
{
    let (l, f) = (c.leader().await, c.follower().await);
    insert(c.member(f), "before").await;
    let term = c.member(f).status().term;
    let leader = c.member(l).clone();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        hold(&leader, &|| {
            held_tx.send(()).unwrap();
            done_rx.recv_timeout(Duration::from_secs(5)).is_ok()
        })
    });
    held_rx.recv().unwrap();
    tokio::time::sleep(settle).await;
    let answered = tokio::time::timeout(Duration::from_secs(3), insert(c.member(f), "held")).await;
    let _ = done_tx.send(());
    let released_by_the_write = holder.join().unwrap();
    assert!(
        answered.is_ok() && released_by_the_write,
        "the write through the follower waited for the leader's state"
    );
    assert_eq!(c.member(f).status().term, term, "an election was held");
    assert_eq!(c.leader().await, l);
    assert_eq!(rows_named(c.member(f), "held").await, 1);
}

/// The leader's timer tasks (election timer, check-quorum, progress, leases) run on the Raft
/// runtime beside openraft's core: one that waited for the state lock while an apply held it
/// (a backlog of large entries retakes it for seconds) would hold up the worker, and the core
/// with it. With the leader's state held as an apply holds it, for longer than the tasks' ticks
/// and two election timers, a write through a follower still commits and is answered by the
/// follower's own apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_commits_while_its_state_is_held_by_an_apply() {
    let c = Cluster::start().await;
    let hold = |m: &Member, wait: &dyn Fn() -> bool| {
        let _state = m.lock_state_for_test();
        wait()
    };
    assert_commits_while_the_leader_is_held(&c, Duration::from_millis(800), hold).await;
}

/// A read-only transaction holds the state's read lock for as long as its query runs (every row
/// of a large table). The leader's apply must not wait for it on the runtime's worker: on a
/// runtime of one worker, as a member's Raft runtime is, that stopped every member here until
/// the read ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_leader_commits_while_a_long_read_holds_its_state() {
    let c = Cluster::start().await;
    let hold = |m: &Member, wait: &dyn Fn() -> bool| m.with_state(|_| wait());
    assert_commits_while_the_leader_is_held(&c, Duration::ZERO, hold).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_barrier_sees_a_write_acknowledged_on_another_member() {
    let c = Cluster::start().await;
    let l = c.leader().await;
    let others: Vec<usize> = (0..3).filter(|i| *i != l).collect();
    // Written through one follower, read at once on the other one: the barrier, not luck,
    // makes the row visible (the reader may not have applied it when the write is answered).
    for round in 0..20 {
        let name = format!("row{round}");
        insert(c.member(others[0]), &name).await;
        assert_eq!(
            rows_named(c.member(others[1]), &name).await,
            1,
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_by_a_member_that_dies_passes_to_a_waiter() {
    let mut c = Cluster::start().await;
    let l = c.leader().await;
    let holder = (0..3).find(|i| *i != l).unwrap();
    let (owner, waiter) = (Uuid::new_v4(), Uuid::new_v4());
    let got = c.member(holder).lock(owner, "northd", false).await.unwrap();
    assert_eq!(got, Outcome::Lock { locked: true });
    let got = c.member(l).lock(waiter, "northd", false).await.unwrap();
    assert_eq!(got, Outcome::Lock { locked: false });
    c.kill(holder).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    let started = tokio::time::Instant::now();
    while c.member(l).with_state(|s| s.locks.owner("northd")) != Some(waiter) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the waiter did not get the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The lease (1 s here) bounds it: not at once (the holder might be alive), not much later.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// A write through a follower whose leader is killed while the write is held at `point` of
/// the leader's service; the write is answered after the failover and applied once on the
/// survivors. How long it took, from the write's start.
async fn forwarded_write_whose_leader_dies_at(point: &str, name: &str) -> Duration {
    let mut c = Cluster::start().await;
    let l = c.leader().await;
    let f = (0..3).find(|i| *i != l).unwrap();
    let other = (0..3).find(|i| *i != l && *i != f).unwrap();
    // Open the follower's forwarding stream to this leader first.
    insert(c.member(f), "before").await;
    let hold = router::hold(&c.names[l], point);
    let writer = c.member(f).clone();
    let started = std::time::Instant::now();
    let row = name.to_string();
    let write = tokio::spawn(async move { insert(&writer, &row).await });
    tokio::time::timeout(WITHIN, hold.arrived())
        .await
        .expect("the forwarded write reached the leader");
    c.kill(l).await;
    hold.release();
    tokio::time::timeout(WITHIN, write)
        .await
        .expect("the write is answered after the failover")
        .unwrap();
    let took = started.elapsed();
    assert_ne!(c.leader().await, l);
    assert_eq!(rows_named(c.member(f), name).await, 1);
    assert_eq!(rows_named(c.member(other), name).await, 1);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_write_whose_leader_dies_after_committing_it_is_applied_once() {
    // The leader committed the forwarded write and has not answered when it dies.
    forwarded_write_whose_leader_dies_at("forward-committed", "once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_write_whose_leader_dies_before_proposing_it_is_sent_again_at_once() {
    // The leader dies with the batch on the stream, never proposed: the broken stream fails
    // it at once and the follower sends it to the next leader, well before the write wait
    // (10 s here) would have ended the wait for an answer.
    let took = forwarded_write_whose_leader_dies_at("forward-received", "resent").await;
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_append_replies_are_late_catches_up_on_the_same_stream() {
    let c = Cluster::start().await;
    let l = c.leader().await;
    let slow = (0..3).find(|i| *i != l).unwrap();
    let other = (0..3).find(|i| *i != l && *i != slow).unwrap();
    // The slow follower appends what it receives but holds its answers: the leader's
    // AppendEntries on the stream outlives openraft's deadline, again and again, while the
    // other follower makes the quorum.
    let hold = router::hold(&c.names[slow], "append-replied");
    insert(c.member(l), "during-1").await;
    tokio::time::timeout(WITHIN, hold.arrived())
        .await
        .expect("an append with entries reached the slow follower");
    // Several heartbeat intervals: retries join the late request, heartbeats go on calls of
    // their own, and more entries queue behind it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    insert(c.member(l), "during-2").await;
    assert_eq!(rows_named(c.member(other), "during-2").await, 1);
    hold.release();
    // The late answers are read; the follower gets everything, and its own writes still go
    // through (forwarded to the leader).
    assert_eq!(rows_named(c.member(slow), "during-1").await, 1);
    assert_eq!(rows_named(c.member(slow), "during-2").await, 1);
    insert(c.member(slow), "after").await;
    for i in 0..3 {
        assert_eq!(rows_named(c.member(i), "after").await, 1, "member {i}");
    }
    assert_eq!(
        c.leader().await,
        l,
        "no election: the slow follower kept hearing its leader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_crashes_while_installing_a_snapshot_starts_again() {
    // A snapshot every 10 entries and no log kept behind it: a member that was away catches
    // up from a snapshot, and has one of its own from before.
    let config = MemberConfig {
        snapshot_every: 10,
        log_kept_behind_snapshot: 0,
        ..config()
    };
    let mut c = Cluster::start_with(config.clone()).await;
    let f = c.follower().await;
    for k in 0..15 {
        insert(c.member(c.leader().await), &format!("before-{k}")).await;
    }
    assert_eq!(rows_named(c.member(f), "before-14").await, 1);
    c.kill(f).await;
    for k in 0..30 {
        insert(c.member(c.leader().await), &format!("away-{k}")).await;
    }
    // Back, the member is sent a snapshot and crashes after decoding it, before saving it.
    let hold = router::hold(&c.names[f], "snapshot-decoded");
    c.restart(f, config.clone()).await.unwrap();
    tokio::time::timeout(WITHIN, hold.arrived())
        .await
        .expect("the member was sent a snapshot");
    // Time for a log purge that does not wait for the install to run: openraft 0.9.25 ran it
    // within milliseconds, and the member's own snapshot was left with its log gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    hold.crash();
    c.kill(f).await;
    router::unhold(&c.names[f], "snapshot-decoded");
    c.restart(f, config)
        .await
        .expect("the member starts from what it had saved");
    assert_eq!(rows_named(c.member(f), "before-0").await, 1);
    assert_eq!(rows_named(c.member(f), "away-29").await, 1);
    insert(c.member(f), "after").await;
    for i in 0..3 {
        assert_eq!(rows_named(c.member(i), "after").await, 1, "member {i}");
    }
}

/// Rows named `name` in member `m`'s own state, without a read barrier.
fn local_rows(m: &Member, name: &str) -> usize {
    let name = ovsdb::Datum::from_atom(ovsdb::Atom::string(name));
    m.with_state(|s| {
        s.dbs[DB]
            .db
            .rows("T")
            .filter(|(_, r)| r.get(0) == &name)
            .count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_infer_a_commit_from_the_leaders_flush_hint() {
    // No election while the answers are held (heartbeats go no further than the held request),
    // so the read below meets the same leader.
    let c = Cluster::start_with(without_timers()).await;
    let l = c.leader().await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != l).collect();
    // Writes until the followers apply one at once: the notice streams are up (one that failed
    // while a member was still starting is opened again only after COMMIT_NOTICE_RETRY, and
    // hints, like notices, go only on them).
    let mut streams_up = false;
    for i in 0..50 {
        let name = format!("warm-{i}");
        insert(c.member(l), &name).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if followers
            .iter()
            .all(|f| local_rows(c.member(*f), &name) == 1)
        {
            streams_up = true;
            break;
        }
    }
    assert!(streams_up, "the followers learn commits by notices");
    // Both followers append what they receive but hold their answers: the leader cannot count
    // a quorum, so it commits nothing, and no commit index reaches a follower.
    let holds: Vec<_> = followers
        .iter()
        .map(|f| router::hold(&c.names[*f], "append-replied"))
        .collect();
    let leader = c.member(l).clone();
    let write = tokio::spawn(async move { insert(&leader, "hinted").await });
    // Each follower holds the entry durably and the leader's flush hint says the leader does:
    // with three voters that is a quorum, so each applies the write before the leader learns
    // that it is committed.
    let deadline = tokio::time::Instant::now() + WITHIN;
    while followers
        .iter()
        .any(|f| local_rows(c.member(*f), "hinted") == 0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the followers did not apply the write while their answers were held"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        local_rows(c.member(l), "hinted"),
        0,
        "the leader has not counted a quorum yet"
    );
    assert!(!write.is_finished());
    // A follower's clients may already see the write: a linearizable read at the leader must
    // not miss it. Its read index covers what the leader hinted, so it waits for the commit.
    let leader = c.member(l).clone();
    let read = tokio::spawn(async move { rows_named(&leader, "hinted").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !read.is_finished(),
        "a read at the leader answered without the write a follower already applied"
    );
    for h in &holds {
        h.release();
    }
    tokio::time::timeout(WITHIN, write)
        .await
        .expect("the write is answered once the answers reach the leader")
        .unwrap();
    let seen = tokio::time::timeout(WITHIN, read).await.unwrap().unwrap();
    assert_eq!(seen, 1, "the read at the leader sees the write");
    assert_eq!(local_rows(c.member(l), "hinted"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_learn_commits_from_notices_without_an_append_round() {
    // Heartbeats far beyond the test's wait: the commit index can only reach a follower with
    // the next entries, a commit notice, or (upstream openraft) an AppendEntries without
    // entries sent for it, which this test holds.
    let c = Cluster::start_with(without_timers()).await;
    let l = c.leader().await;
    let f = (0..3).find(|i| *i != l).unwrap();
    let held = router::hold(&c.names[f], "heartbeat-received");
    // Writes at the leader, one at a time, and no read (a read's leadership check sends
    // AppendEntries without entries of its own): the last write's commit reaches the follower
    // only by a notice.
    for i in 0..3 {
        insert(c.member(l), &format!("w{i}")).await;
    }
    let deadline = tokio::time::Instant::now() + WITHIN;
    while local_rows(c.member(f), "w2") == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let applied = local_rows(c.member(f), "w2");
    let heartbeats = held.arrivals();
    held.release();
    assert_eq!(applied, 1, "the follower applied the last write");
    assert_eq!(
        heartbeats, 0,
        "no AppendEntries round was spent on the commit index"
    );
}
