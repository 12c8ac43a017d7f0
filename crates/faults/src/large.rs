//! The large-value workload: clients insert rows of `Blob` whose `data` is 1 KiB to
//! 1 MiB (log-uniform), several per transaction, and now and then one transaction of about
//! 24 MB, under the same faults as the other workloads. The content of a row is a function of its
//! key, so the final read can compare the length and hash of what every member serves with what
//! was sent, and a transaction's rows must be there all together or not at all.
//!
//! Also here: the leader watch, which samples every member's status and records when some member
//! was a leader with a recent quorum acknowledgement, so that the run can report its longest
//! stretch without one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::check::Anomaly;
use crate::cluster::{member_status, DB, RAFT_PORT};
use crate::history::Status;
use crate::ovsdb_client::{first_error, Client, ClientError};
use crate::workload::Shared;

pub const MIN_LEN: usize = 1024;
pub const MAX_LEN: usize = 1 << 20;
/// Rows of the huge transaction, each close to `MAX_LEN`: about 24 MB on the wire, well under
/// the 64 MiB message limit.
pub const HUGE_ROWS: usize = 24;
/// Keys of this workload start here, so they never meet the set workload's values in a report.
pub const KEY_BASE: i64 = 1_000_000_000_000;

/// One row as sent or as read back: its key, and the length and hash of its `data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RowDigest {
    pub key: i64,
    pub len: usize,
    pub hash: u64,
}

/// One insert transaction of the large workload.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LargeEvent {
    pub client: usize,
    pub rows: Vec<RowDigest>,
    pub status: Status,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub member: String,
}

impl LargeEvent {
    pub fn bytes(&self) -> usize {
        self.rows.iter().map(|r| r.len).sum()
    }
}

/// What one member served for the final read of `Blob`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LargeRead {
    pub member: String,
    pub rows: Vec<RowDigest>,
}

/// The content of the row with `key`: `len` printable bytes that differ from key to key.
pub fn content(key: i64, len: usize) -> String {
    let mut x = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        for b in r.to_le_bytes() {
            if out.len() < len {
                out.push(b'a' + (b % 26));
            }
        }
    }
    String::from_utf8(out).expect("ASCII")
}

/// FNV-1a, 64 bits: enough to tell a wrong byte from the right content.
pub fn hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub fn digest(key: i64, data: &str) -> RowDigest {
    RowDigest {
        key,
        len: data.len(),
        hash: hash(data.as_bytes()),
    }
}

/// A length between `MIN_LEN` and `MAX_LEN`, uniform in its logarithm.
fn log_uniform_len() -> usize {
    let (lo, hi) = ((MIN_LEN as f64).ln(), (MAX_LEN as f64).ln());
    let len = (lo + fastrand::f64() * (hi - lo)).exp() as usize;
    len.clamp(MIN_LEN, MAX_LEN)
}

/// How much the large clients may send, so that a run's data fits the members' memory and the
/// final read stays short.
#[derive(Clone, Copy, Debug)]
pub struct LargePlan {
    pub clients: usize,
    /// Bytes per second, over all clients together.
    pub rate: f64,
    /// When client 0 sends the huge transaction (again after each indeterminate or failed try).
    pub huge_after: Duration,
}

/// Tries of the huge transaction: in the quick run a fault lands every few seconds, and any
/// fault on the member the client talks to makes a try indeterminate.
pub const HUGE_TRIES: usize = 6;

/// One large-workload client. Client 0 also sends the huge transaction once `huge_after` has
/// passed, and again until one is acknowledged (at most `HUGE_TRIES` tries).
pub async fn large_client(id: usize, plan: LargePlan, shared: &Shared) -> Vec<LargeEvent> {
    let mut events = Vec::new();
    let mut current: Option<(String, Client)> = None;
    let mut seq = 0i64;
    let mut sent = 0f64;
    let my_rate = plan.rate / plan.clients.max(1) as f64;
    while !shared.stopped() {
        let huge = id == 0
            && shared.huge_tries.load(Ordering::Relaxed) < HUGE_TRIES
            && shared.start.elapsed() >= plan.huge_after
            && !shared.huge_acked.load(Ordering::Relaxed);
        // The huge transaction is outside the rate, or a run could end before its retry.
        if !huge && sent > my_rate * shared.start.elapsed().as_secs_f64() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        if current.is_none() {
            let target = {
                let targets = shared.targets.read().unwrap();
                (!targets.is_empty()).then(|| targets[fastrand::usize(..targets.len())].clone())
            };
            let Some((name, addr)) = target else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            match Client::connect(addr, Duration::from_secs(1)).await {
                Ok(c) => current = Some((name, c)),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let (member, client) = current.as_mut().expect("connected above");
        let member = member.clone();
        let lens: Vec<usize> = if huge {
            shared.huge_tries.fetch_add(1, Ordering::Relaxed);
            (0..HUGE_ROWS)
                .map(|_| fastrand::usize(MAX_LEN * 9 / 10..=MAX_LEN))
                .collect()
        } else {
            (0..fastrand::usize(1..=6))
                .map(|_| log_uniform_len())
                .collect()
        };
        let mut rows = Vec::new();
        let mut ops = Vec::new();
        for len in lens {
            seq += 1;
            let key = KEY_BASE + id as i64 * 1_000_000 + seq;
            let data = content(key, len);
            rows.push(digest(key, &data));
            ops.push(json!({"op": "insert", "table": "Blob", "row": {"key": key, "data": data}}));
        }
        let bytes: usize = rows.iter().map(|r| r.len).sum();
        if !huge {
            sent += bytes as f64;
        }
        // A transaction of tens of MB takes seconds to carry even without faults: its timeout
        // grows with its size so that a healthy cluster acknowledges it.
        let timeout = shared.op_timeout + Duration::from_secs_f64(bytes as f64 / 1e6);
        let invoke_ns = shared.now();
        let reply = match tokio::time::timeout(timeout, client.transact(DB, ops)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout),
        };
        let status = match reply {
            Ok(result) if first_error(&result).is_none() => Status::Ok,
            Ok(result) if crate::workload::is_retryable(&result) => Status::Info,
            Ok(_) => Status::Fail,
            Err(_) => Status::Info,
        };
        if huge && status == Status::Ok {
            shared.huge_acked.store(true, Ordering::Relaxed);
        }
        events.push(LargeEvent {
            client: id,
            rows,
            status,
            invoke_ns,
            complete_ns: shared.now(),
            member,
        });
        if status == Status::Info || fastrand::u8(..8) == 0 {
            current = None;
        }
    }
    events
}

/// Rows per request of the final read: at most `MAX_LEN` each, so a reply stays near 16 MiB.
const READ_BATCH: usize = 16;

/// Every `Blob` row as the member at `addr` serves it, as digests: the keys first, then the data
/// in key ranges of a few rows (one reply with everything could pass the 64 MiB message limit).
pub async fn final_read(name: &str, addr: SocketAddr, within: Duration) -> Option<LargeRead> {
    let deadline = Instant::now() + within;
    loop {
        let attempt = async {
            let mut c = Client::connect(addr, Duration::from_secs(2)).await?;
            let select = |cond: Value, columns: Value| {
                vec![json!({"op": "select", "table": "Blob", "where": cond, "columns": columns})]
            };
            let r = tokio::time::timeout(
                Duration::from_secs(15),
                c.transact(DB, select(json!([]), json!(["key"]))),
            )
            .await
            .map_err(|_| ClientError::Timeout)??;
            if first_error(&r).is_some() {
                return Err(ClientError::Protocol(r.to_string()));
            }
            let keys: BTreeSet<i64> = r[0]["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|row| row["key"].as_i64())
                .collect();
            let keys: Vec<i64> = keys.into_iter().collect();
            let mut rows = Vec::new();
            for chunk in keys.chunks(READ_BATCH) {
                let cond = json!([
                    ["key", ">=", chunk[0]],
                    ["key", "<=", chunk[chunk.len() - 1]]
                ]);
                let r = tokio::time::timeout(
                    Duration::from_secs(30),
                    c.transact(DB, select(cond, json!(["key", "data"]))),
                )
                .await
                .map_err(|_| ClientError::Timeout)??;
                if first_error(&r).is_some() {
                    return Err(ClientError::Protocol(r.to_string()));
                }
                for row in r[0]["rows"].as_array().into_iter().flatten() {
                    let (Some(key), Some(data)) = (row["key"].as_i64(), row["data"].as_str())
                    else {
                        return Err(ClientError::Protocol(format!("unexpected row {row}")));
                    };
                    rows.push(digest(key, data));
                }
            }
            Ok::<Vec<RowDigest>, ClientError>(rows)
        };
        match attempt.await {
            Ok(rows) => {
                return Some(LargeRead {
                    member: name.to_string(),
                    rows,
                })
            }
            Err(e) if Instant::now() >= deadline => {
                eprintln!("large final read through {name} failed: {e}");
                return None;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// The large workload's safety properties, as the set workload's (no lost acknowledged row, no
/// phantom, no failed row present, no duplicate, no divergence on indeterminate ones) plus: every
/// row served has exactly the content that was sent, and a transaction's rows are all present
/// or all absent on each member. `finals` are in the order they were taken.
pub fn check_large(events: &[LargeEvent], finals: &[LargeRead]) -> Vec<Anomaly> {
    let mut out = Vec::new();
    if finals.is_empty() {
        out.push(Anomaly::NoFinalRead);
        return wrap(out);
    }
    // key -> (status, sent digest, index of its transaction)
    let mut attempted: BTreeMap<i64, (Status, RowDigest, usize)> = BTreeMap::new();
    for (t, e) in events.iter().enumerate() {
        for r in &e.rows {
            attempted.insert(r.key, (e.status, *r, t));
        }
    }
    let present: Vec<BTreeMap<i64, Vec<RowDigest>>> = finals
        .iter()
        .map(|read| {
            let mut m: BTreeMap<i64, Vec<RowDigest>> = BTreeMap::new();
            for r in &read.rows {
                m.entry(r.key).or_default().push(*r);
            }
            m
        })
        .collect();
    for (key, (status, _, _)) in &attempted {
        if *status == Status::Ok {
            let missing_on: Vec<String> = finals
                .iter()
                .zip(&present)
                .filter(|(_, p)| !p.contains_key(key))
                .map(|(r, _)| r.member.clone())
                .collect();
            if !missing_on.is_empty() {
                out.push(Anomaly::LostWrite {
                    value: *key,
                    missing_on,
                });
            }
        }
    }
    for (read, p) in finals.iter().zip(&present) {
        for (key, copies) in p {
            let member = read.member.clone();
            match attempted.get(key) {
                None => out.push(Anomaly::Phantom {
                    value: *key,
                    member,
                }),
                Some((Status::Fail, _, _)) => out.push(Anomaly::FailedButPresent {
                    value: *key,
                    member,
                }),
                Some((_, sent, _)) => {
                    for got in copies.iter().filter(|got| *got != sent) {
                        out.push(Anomaly::Corrupt {
                            key: *key,
                            member: member.clone(),
                            sent: (sent.len, sent.hash),
                            served: (got.len, got.hash),
                        });
                    }
                }
            }
            if copies.len() > 1 {
                out.push(Anomaly::Duplicate {
                    value: *key,
                    member: read.member.clone(),
                    copies: copies.len(),
                });
            }
        }
    }
    for e in events {
        for (read, p) in finals.iter().zip(&present) {
            let there = e.rows.iter().filter(|r| p.contains_key(&r.key)).count();
            if there != 0 && there != e.rows.len() {
                out.push(Anomaly::PartialTransaction {
                    first_key: e.rows[0].key,
                    rows: e.rows.len(),
                    present: there,
                    member: read.member.clone(),
                });
            }
        }
    }
    // As for the set: an indeterminate row seen by one read must be in every later one.
    let seen: BTreeSet<i64> = present.iter().flat_map(|p| p.keys().copied()).collect();
    for key in seen {
        if !matches!(attempted.get(&key), Some((Status::Info, _, _))) {
            continue;
        }
        let members: Vec<String> = finals.iter().map(|r| r.member.clone()).collect();
        out.extend(crate::check::divergence(key, &members, &present));
    }
    wrap(out)
}

fn wrap(anomalies: Vec<Anomaly>) -> Vec<Anomaly> {
    anomalies
        .into_iter()
        .map(|a| Anomaly::Large(Box::new(a)))
        .collect()
}

/// When some member was seen leading with a quorum behind it, sampled through every member's
/// status, and the windows in which the nemesis took the cluster down on purpose.
#[derive(Debug, Default)]
pub struct LeaderWatch {
    /// Times (ns since the run's start) of status replies from a member that was leader and had
    /// heard from a quorum within one election timer.
    pub seen_ns: Arc<Mutex<Vec<u64>>>,
    /// (from, to) in ns: every member was killed on purpose (to = when all answered again).
    pub excused_ns: Mutex<Vec<(u64, u64)>>,
}

/// The longest stretch without a leader: (length, start), both in ns since the run's start,
/// between `from` and `to`, outside the excused windows.
pub fn longest_leaderless(
    seen: &[u64],
    excused: &[(u64, u64)],
    from: u64,
    to: u64,
) -> Option<(u64, u64)> {
    let mut points: Vec<u64> = seen
        .iter()
        .copied()
        .filter(|t| (from..=to).contains(t))
        .collect();
    points.push(from);
    points.push(to);
    points.sort_unstable();
    let mut best: Option<(u64, u64)> = None;
    for w in points.windows(2) {
        // What is left of the stretch outside the excused windows: the parts before a window
        // and after it count separately (windows are few and may overlap).
        let mut parts = vec![(w[0], w[1])];
        for &(s, e) in excused {
            parts = parts
                .into_iter()
                .flat_map(|(a, b)| {
                    if e <= a || s >= b {
                        vec![(a, b)]
                    } else {
                        [(a, s.max(a)), (e.min(b), b)]
                            .into_iter()
                            .filter(|(x, y)| x < y)
                            .collect()
                    }
                })
                .collect();
        }
        for (a, b) in parts {
            if best.is_none_or(|(len, _)| b - a > len) {
                best = Some((b - a, a));
            }
        }
    }
    best
}

/// Samples every target's status every 200 ms until the run stops.
pub async fn watch_leader(shared: &Shared, watch: &LeaderWatch, election_timer_ms: u64) {
    while !shared.stopped() {
        let targets: Vec<SocketAddr> = shared
            .targets
            .read()
            .unwrap()
            .iter()
            .map(|(_, a)| SocketAddr::new(a.ip(), RAFT_PORT))
            .collect();
        for addr in targets {
            let start = shared.start;
            // A sample of its own: a paused member must not delay the others' (its status
            // call waits for its timeout).
            let seen = watch.seen_ns.clone();
            tokio::spawn(async move {
                let Some(s) = member_status(&addr.to_string()).await else {
                    return;
                };
                let quorum_age = s.millis_since_quorum_ack;
                if s.is_leader() && quorum_age.is_some_and(|age| age <= election_timer_ms) {
                    seen.lock().unwrap().push(start.elapsed().as_nanos() as u64);
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(status: Status, keys: &[i64], len: usize) -> LargeEvent {
        LargeEvent {
            client: 0,
            rows: keys.iter().map(|k| digest(*k, &content(*k, len))).collect(),
            status,
            invoke_ns: 0,
            complete_ns: 1,
            member: "m1".into(),
        }
    }

    fn read(member: &str, rows: &[RowDigest]) -> LargeRead {
        LargeRead {
            member: member.into(),
            rows: rows.to_vec(),
        }
    }

    fn kinds(anomalies: &[Anomaly]) -> Vec<&'static str> {
        anomalies.iter().map(Anomaly::kind).collect()
    }

    #[test]
    fn content_is_a_function_of_the_key_and_its_hash_sees_one_byte() {
        assert_eq!(content(7, 5000), content(7, 5000));
        assert_ne!(content(7, 5000), content(8, 5000));
        assert_eq!(content(7, MAX_LEN).len(), MAX_LEN);
        let mut bytes = content(7, 5000).into_bytes();
        let h = hash(&bytes);
        bytes[4321] ^= 1;
        assert_ne!(hash(&bytes), h);
        for _ in 0..1000 {
            assert!((MIN_LEN..=MAX_LEN).contains(&log_uniform_len()));
        }
    }

    #[test]
    fn a_clean_history_has_no_anomaly() {
        let events = vec![
            txn(Status::Ok, &[1, 2, 3], 2000),
            txn(Status::Fail, &[4], 10),
            txn(Status::Info, &[5, 6], 3000),
        ];
        let all: Vec<RowDigest> = events[0].rows.clone();
        let mut with_info = all.clone();
        with_info.extend(events[2].rows.clone());
        // The indeterminate transaction commits between the two reads: allowed.
        let finals = vec![read("m1", &all), read("m2", &with_info)];
        assert_eq!(check_large(&events, &finals), vec![]);
    }

    #[test]
    fn a_fabricated_bad_history_shows_every_kind() {
        let events = vec![
            txn(Status::Ok, &[1, 2, 3], 2000),
            txn(Status::Fail, &[4], 10),
            txn(Status::Info, &[5, 6], 3000),
        ];
        let ok = &events[0].rows;
        let mut corrupt = ok[1];
        corrupt.hash ^= 1;
        let phantom = digest(99, "x");
        let finals = vec![
            // m1: row 3 lost (so its transaction is partial), row 2 with other content, a
            // phantom, the failed row, row 1 twice, one indeterminate row of two.
            read(
                "m1",
                &[
                    ok[0],
                    ok[0],
                    corrupt,
                    phantom,
                    events[1].rows[0],
                    events[2].rows[0],
                ],
            ),
            // m2: everything acknowledged, but not the indeterminate row m1 served.
            read("m2", ok),
        ];
        let anomalies = check_large(&events, &finals);
        let mut got = kinds(&anomalies);
        got.sort_unstable();
        assert_eq!(
            got,
            vec![
                "large: corrupt content",
                "large: divergence",
                "large: duplicate",
                "large: failed but present",
                "large: lost write",
                "large: partial transaction",
                "large: partial transaction",
                "large: phantom",
            ],
            "{anomalies:#?}"
        );
        assert!(anomalies.iter().all(|a| matches!(a, Anomaly::Large(_))));
        assert!(anomalies.iter().any(|a| a
            .to_string()
            .contains("lost write: acknowledged insert 3 missing on m1")));
    }

    #[test]
    fn no_final_read_is_an_anomaly() {
        let events = vec![txn(Status::Ok, &[1], 10)];
        assert_eq!(
            kinds(&check_large(&events, &[])),
            vec!["large: no final read"]
        );
    }

    #[test]
    fn leaderless_stretches_and_excused_windows() {
        let s = 1_000_000_000u64;
        // Leader seen at 1, 2, 7 and 8 s: 5 s without one, from 2 s.
        let seen = [s, 2 * s, 7 * s, 8 * s];
        assert_eq!(
            longest_leaderless(&seen, &[], 0, 9 * s),
            Some((5 * s, 2 * s))
        );
        // Every member killed from 2 s until they all answered at 6 s: 1 s counts.
        let excused = [(2 * s, 6 * s)];
        assert_eq!(longest_leaderless(&seen, &excused, 0, 9 * s), Some((s, 0)));
        // The kill came 1 s into a stretch, and the members answered again 1.5 s before a
        // leader was seen: the longer of the two parts counts.
        let excused = [(3 * s, 5 * s + s / 2)];
        assert_eq!(
            longest_leaderless(&seen, &excused, 0, 9 * s),
            Some((s + s / 2, 5 * s + s / 2))
        );
        // Nothing seen at all: the whole watch is one stretch.
        assert_eq!(longest_leaderless(&[], &[], s, 4 * s), Some((3 * s, s)));
    }
}
