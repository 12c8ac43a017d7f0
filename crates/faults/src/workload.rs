//! The two workloads, each run by many concurrent clients that talk to randomly chosen members:
//!
//! - set: every client inserts unique values into `Element` (one `insert` per transaction);
//! - register: reads, writes and compare-and-set (`wait` with timeout 0 on the expected old
//!   value + `update`, in one transaction) on a few rows of `Register`. The keys in use change
//!   every `key_window` so each key's history stays small enough to check exhaustively.
//!
//! Every operation is recorded with its outcome; nothing is retried by the client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::DB;
use crate::history::{FinalRead, RegisterEvent, RegisterOp, SetEvent, Status};
use crate::ovsdb_client::{first_error, Client, ClientError};

/// State shared by the clients and the fault schedule.
pub struct Shared {
    pub start: Instant,
    /// Members clients may pick: (name, client address). Updated on membership changes.
    pub targets: RwLock<Vec<(String, SocketAddr)>>,
    pub stop: AtomicBool,
    /// A client gives up on an operation after this long and records it as indeterminate.
    pub op_timeout: Duration,
    /// When the leader was seen, and when the nemesis took every member down on purpose.
    pub leader_watch: crate::large::LeaderWatch,
    /// Tries of the large workload's huge transaction so far, and whether one was acknowledged.
    pub huge_tries: std::sync::atomic::AtomicUsize,
    pub huge_acked: AtomicBool,
}

impl Shared {
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A client's connection to one member, re-established (to another random member) after any
/// error and now and then anyway.
struct Conn {
    current: Option<(String, Client)>,
}

impl Conn {
    async fn get(&mut self, shared: &Shared) -> Option<&mut (String, Client)> {
        if self.current.is_none() {
            let target = {
                let targets = shared.targets.read().unwrap();
                if targets.is_empty() {
                    None
                } else {
                    Some(targets[fastrand::usize(..targets.len())].clone())
                }
            };
            let (name, addr) = target?;
            match Client::connect(addr, Duration::from_secs(1)).await {
                Ok(c) => self.current = Some((name, c)),
                Err(_) => {
                    // The member is down: nothing was sent, so nothing to record.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return None;
                }
            }
        }
        self.current.as_mut()
    }

    fn after(&mut self, status: Status) {
        if status == Status::Info || fastrand::u8(..8) == 0 {
            self.current = None;
        }
    }
}

async fn transact(
    client: &mut Client,
    ops: Vec<Value>,
    timeout: Duration,
) -> Result<Value, ClientError> {
    match tokio::time::timeout(timeout, client.transact(DB, ops)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout),
    }
}

/// One set-workload client: inserts `id * 1_000_000 + seq` until told to stop.
pub async fn set_client(id: usize, shared: &Shared) -> Vec<SetEvent> {
    let mut events = Vec::new();
    let mut conn = Conn { current: None };
    let mut seq = 0i64;
    while !shared.stopped() {
        let Some((member, client)) = conn.get(shared).await else {
            continue;
        };
        let member = member.clone();
        seq += 1;
        let value = id as i64 * 1_000_000 + seq;
        let invoke_ns = shared.now();
        let ops = vec![json!({"op": "insert", "table": "Element", "row": {"value": value}})];
        let status = match transact(client, ops, shared.op_timeout).await {
            Ok(result) if first_error(&result).is_none() => Status::Ok,
            Ok(result) if is_retryable(&result) => Status::Info,
            // The transaction was executed and aborted: it did not take effect.
            Ok(_) => Status::Fail,
            Err(_) => Status::Info,
        };
        events.push(SetEvent {
            client: id,
            value,
            status,
            invoke_ns,
            complete_ns: shared.now(),
            member,
        });
        conn.after(status);
    }
    events
}

/// Which keys the register clients use: `groups` keys at a time, a new set every `window`.
#[derive(Clone, Copy, Debug)]
pub struct KeyPlan {
    pub groups: usize,
    pub window: Duration,
    /// Rows created before the run (keys 0..total).
    pub total: usize,
}

impl KeyPlan {
    pub fn for_duration(groups: usize, window: Duration, run: Duration) -> KeyPlan {
        let windows = (run.as_secs_f64() / window.as_secs_f64()).ceil() as usize + 2;
        KeyPlan {
            groups,
            window,
            total: groups * windows,
        }
    }

    fn key(&self, group: usize, elapsed: Duration) -> i64 {
        let w = (elapsed.as_secs_f64() / self.window.as_secs_f64()) as usize;
        let last = self.total / self.groups - 1;
        (group + self.groups * w.min(last)) as i64
    }
}

/// One register-workload client of key group `group`.
pub async fn register_client(
    id: usize,
    group: usize,
    plan: KeyPlan,
    shared: &Shared,
) -> Vec<RegisterEvent> {
    let mut events = Vec::new();
    let mut conn = Conn { current: None };
    while !shared.stopped() {
        let Some((member, client)) = conn.get(shared).await else {
            continue;
        };
        let member = member.clone();
        let key = plan.key(group, shared.start.elapsed());
        let row_of = json!([["key", "==", key]]);
        let op = match fastrand::u8(..4) {
            0 | 1 => RegisterOp::Read,
            2 => RegisterOp::Write(fastrand::i64(0..5)),
            _ => RegisterOp::Cas(fastrand::i64(0..5), fastrand::i64(0..5)),
        };
        let ops = match op {
            RegisterOp::Read => {
                vec![
                    json!({"op": "select", "table": "Register", "where": row_of, "columns": ["value"]}),
                ]
            }
            RegisterOp::Write(v) => {
                vec![
                    json!({"op": "update", "table": "Register", "where": row_of, "row": {"value": v}}),
                ]
            }
            RegisterOp::Cas(old, new) => vec![
                json!({"op": "wait", "table": "Register", "timeout": 0, "where": row_of, "columns": ["value"],
                       "until": "==", "rows": [{"value": old}]}),
                json!({"op": "update", "table": "Register", "where": row_of, "row": {"value": new}}),
            ],
        };
        let invoke_ns = shared.now();
        let reply = transact(client, ops, shared.op_timeout).await;
        let (status, read) = classify(op, reply);
        events.push(RegisterEvent {
            client: id,
            key,
            op,
            status,
            read,
            invoke_ns,
            complete_ns: shared.now(),
            member,
        });
        conn.after(status);
    }
    events
}

/// The server's retryable answer (`timed out` ... "retry it": no leader committed it in time).
/// The write may still be committed by a later leader, so it is indeterminate, never a failure
/// (docs/protocol-notes.md).
pub fn is_retryable(result: &Value) -> bool {
    result.as_array().and_then(|r| r.first()).is_some_and(|r| {
        r["error"] == "timed out"
            && r["details"]
                .as_str()
                .is_some_and(|d| d.ends_with("retry it"))
    })
}

/// Turns a reply into an outcome. Anything unexpected is indeterminate, never a definite
/// success or failure.
fn classify(op: RegisterOp, reply: Result<Value, ClientError>) -> (Status, Option<i64>) {
    let Ok(result) = reply else {
        return (Status::Info, None);
    };
    let results = result.as_array().cloned().unwrap_or_default();
    // The server's retryable answer (`timed out` ... "retry it", no leader committed it in
    // time): the write may still be committed by a later leader, so it is indeterminate, not a
    // failure (docs/protocol-notes.md).
    if is_retryable(&result) {
        return (Status::Info, None);
    }
    match op {
        RegisterOp::Read => match results
            .first()
            .and_then(|r| r["rows"].as_array())
            .map(|rows| rows.as_slice())
        {
            Some([row]) if first_error(&result).is_none() => match row["value"].as_i64() {
                Some(v) => (Status::Ok, Some(v)),
                None => (Status::Info, None),
            },
            _ => (Status::Info, None),
        },
        RegisterOp::Write(_) => match first_error(&result) {
            None if results.first().and_then(|r| r["count"].as_i64()) == Some(1) => {
                (Status::Ok, None)
            }
            None => (Status::Info, None),
            Some(_) => (Status::Fail, None),
        },
        RegisterOp::Cas(..) => {
            let wait_failed = results
                .first()
                .is_some_and(|r| r.get("error").is_some_and(|e| !e.is_null()));
            if wait_failed {
                // The wait saw another value at its place in the log; nothing was changed.
                (Status::Fail, None)
            } else if first_error(&result).is_none()
                && results.get(1).and_then(|r| r["count"].as_i64()) == Some(1)
            {
                (Status::Ok, None)
            } else {
                (Status::Info, None)
            }
        }
    }
}

/// `list_dbs` on a member, or `None` if it does not answer within a few seconds.
pub async fn list_dbs(addr: SocketAddr) -> Option<Vec<String>> {
    let mut c = Client::connect(addr, Duration::from_secs(1)).await.ok()?;
    let r = tokio::time::timeout(Duration::from_secs(3), c.call("list_dbs", json!([])))
        .await
        .ok()?
        .ok()?;
    serde_json::from_value(r).ok()
}

/// Creates the register rows (keys 0..total, value 0) in one transaction through `addr`,
/// checking first so an indeterminate attempt is never repeated blindly.
pub async fn create_registers(addr: SocketAddr, total: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let mut c = Client::connect(addr, Duration::from_secs(2)).await?;
            let count = transact(
                &mut c,
                vec![json!({"op": "select", "table": "Register", "where": [], "columns": ["key"]})],
                Duration::from_secs(10),
            )
            .await?;
            let existing = count[0]["rows"].as_array().map(|r| r.len()).unwrap_or(0);
            if existing == total {
                return Ok::<bool, ClientError>(true);
            }
            if existing != 0 {
                return Err(ClientError::Protocol(format!(
                    "{existing} register rows exist, expected 0 or {total}"
                )));
            }
            let ops: Vec<Value> = (0..total)
                .map(|k| json!({"op": "insert", "table": "Register", "row": {"key": k as i64, "value": 0}}))
                .collect();
            transact(&mut c, ops, Duration::from_secs(10)).await?;
            Ok(false)
        };
        match attempt.await {
            Ok(true) => return Ok(()),
            Ok(false) if Instant::now() < deadline => {}
            Ok(false) => anyhow::bail!("the register rows were inserted but never became visible"),
            Err(ClientError::Protocol(p)) => anyhow::bail!(p),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(e) => anyhow::bail!("could not create the register rows: {e}"),
        }
    }
}

/// The whole `Element` table as member `name` at `addr` serves it (a linearizable read), with
/// retries for up to `within`.
pub async fn final_read(name: &str, addr: SocketAddr, within: Duration) -> Option<FinalRead> {
    let deadline = Instant::now() + within;
    loop {
        let attempt = async {
            let mut c = Client::connect(addr, Duration::from_secs(2)).await?;
            let r = transact(
                &mut c,
                vec![
                    json!({"op": "select", "table": "Element", "where": [], "columns": ["value"]}),
                ],
                Duration::from_secs(15),
            )
            .await?;
            if first_error(&r).is_some() {
                return Err(ClientError::Protocol(r.to_string()));
            }
            let rows = r[0]["rows"].as_array().cloned().unwrap_or_default();
            Ok::<Vec<i64>, ClientError>(
                rows.iter()
                    .filter_map(|row| row["value"].as_i64())
                    .collect(),
            )
        };
        match attempt.await {
            Ok(values) => {
                return Some(FinalRead {
                    member: name.to_string(),
                    values,
                })
            }
            Err(e) if Instant::now() >= deadline => {
                eprintln!("final read through {name} failed: {e}");
                return None;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retryable_answer_is_indeterminate() {
        let retry = json!([{"error": "timed out",
            "details": "no leader could commit the write within 30s; retry it"}, null]);
        assert_eq!(
            classify(RegisterOp::Cas(1, 2), Ok(retry.clone())),
            (Status::Info, None)
        );
        assert_eq!(
            classify(RegisterOp::Write(1), Ok(retry)),
            (Status::Info, None)
        );
    }

    #[test]
    fn cas_outcomes() {
        let wait_failed =
            json!([{"error": "timed out", "details": "\"wait\" timed out after 0 ms"}, null]);
        assert_eq!(
            classify(RegisterOp::Cas(1, 2), Ok(wait_failed)),
            (Status::Fail, None)
        );
        assert_eq!(
            classify(RegisterOp::Cas(1, 2), Ok(json!([{}, {"count": 1}]))),
            (Status::Ok, None)
        );
        assert_eq!(
            classify(RegisterOp::Cas(1, 2), Err(ClientError::Timeout)),
            (Status::Info, None)
        );
        let rpc = ClientError::Rpc(json!("no leader"));
        assert_eq!(
            classify(RegisterOp::Cas(1, 2), Err(rpc)),
            (Status::Info, None)
        );
    }

    #[test]
    fn read_outcomes() {
        assert_eq!(
            classify(RegisterOp::Read, Ok(json!([{"rows": [{"value": 3}]}]))),
            (Status::Ok, Some(3))
        );
        assert_eq!(
            classify(RegisterOp::Read, Ok(json!([{"rows": []}]))),
            (Status::Info, None)
        );
    }

    #[test]
    fn keys_rotate_and_stay_in_range() {
        let plan = KeyPlan::for_duration(2, Duration::from_secs(4), Duration::from_secs(10));
        assert_eq!(plan.total, 2 * 5);
        assert_eq!(plan.key(0, Duration::from_secs(1)), 0);
        assert_eq!(plan.key(1, Duration::from_secs(5)), 3);
        assert_eq!(plan.key(1, Duration::from_secs(500)), 9);
    }
}
