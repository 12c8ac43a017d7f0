//! The history of a run: every operation a client attempted, when it was invoked and when (and
//! how) it completed, in the invoke/ok/fail/info vocabulary of Jepsen and Knossos.
//!
//! - `ok`: the server acknowledged the operation; it took effect exactly once.
//! - `fail`: the server answered that it did not take effect (for a compare-and-set, the `wait`
//!   found another value; that is still an observation of the register).
//! - `info`: indeterminate (timeout, lost connection, a server-side error after the command may
//!   have been proposed). It may take effect at any time after its invocation, or never.
//!
//! Times are nanoseconds since the start of the run, from one monotonic clock shared by every
//! client of the process, so real-time order between clients is meaningful.

use serde::Serialize;
use serde_json::json;

use crate::large::{LargeEvent, LargeRead};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Fail,
    Info,
}

/// An operation on one register (a row of the `Register` table, by key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegisterOp {
    Read,
    Write(i64),
    /// Compare-and-set: `wait` until value == old (timeout 0), then `update` to new.
    Cas(i64, i64),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegisterEvent {
    pub client: usize,
    pub key: i64,
    pub op: RegisterOp,
    pub status: Status,
    /// The value a successful read returned.
    pub read: Option<i64>,
    pub invoke_ns: u64,
    /// When the client got the answer, or gave up (for `info`).
    pub complete_ns: u64,
    /// The member the client talked to (for diagnosis only).
    pub member: String,
}

/// An insert of a unique value into the `Element` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetEvent {
    pub client: usize,
    pub value: i64,
    pub status: Status,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub member: String,
}

/// What one member returned for the final read of the `Element` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FinalRead {
    pub member: String,
    pub values: Vec<i64>,
}

/// Everything recorded during a run.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub set: Vec<SetEvent>,
    pub register: Vec<RegisterEvent>,
    pub final_reads: Vec<FinalRead>,
    pub large: Vec<LargeEvent>,
    pub large_reads: Vec<LargeRead>,
}

impl History {
    /// The history as JSON lines, one `invoke` and one completion line per operation, in time
    /// order (for a human, or for another checker).
    pub fn to_jsonl(&self) -> String {
        let mut lines: Vec<(u64, u8, String)> = Vec::new();
        for e in &self.set {
            let op = json!({"workload": "set", "client": e.client, "f": "add", "value": e.value});
            lines.push((e.invoke_ns, 0, with(&op, "invoke", e.invoke_ns, &e.member)));
            lines.push((
                e.complete_ns,
                1,
                with(&op, status_name(e.status), e.complete_ns, &e.member),
            ));
        }
        for e in &self.register {
            let (f, value) = match e.op {
                RegisterOp::Read => ("read", json!(null)),
                RegisterOp::Write(v) => ("write", json!(v)),
                RegisterOp::Cas(o, n) => ("cas", json!([o, n])),
            };
            let op = json!({"workload": "register", "client": e.client, "key": e.key, "f": f, "value": value});
            lines.push((e.invoke_ns, 0, with(&op, "invoke", e.invoke_ns, &e.member)));
            let mut done = op.clone();
            if let Some(r) = e.read {
                done["value"] = json!(r);
            }
            lines.push((
                e.complete_ns,
                1,
                with(&done, status_name(e.status), e.complete_ns, &e.member),
            ));
        }
        for e in &self.large {
            let rows: Vec<_> = e
                .rows
                .iter()
                .map(|r| json!([r.key, r.len, format!("{:016x}", r.hash)]))
                .collect();
            let op = json!({"workload": "large", "client": e.client, "f": "add", "rows": rows});
            lines.push((e.invoke_ns, 0, with(&op, "invoke", e.invoke_ns, &e.member)));
            lines.push((
                e.complete_ns,
                1,
                with(&op, status_name(e.status), e.complete_ns, &e.member),
            ));
        }
        lines.sort();
        let mut out = String::new();
        for (_, _, l) in lines {
            out.push_str(&l);
            out.push('\n');
        }
        for r in &self.final_reads {
            out.push_str(&json!({"final_read": r.member, "values": r.values.len()}).to_string());
            out.push('\n');
        }
        for r in &self.large_reads {
            let bytes: usize = r.rows.iter().map(|d| d.len).sum();
            out.push_str(
                &json!({"large_final_read": r.member, "rows": r.rows.len(), "bytes": bytes})
                    .to_string(),
            );
            out.push('\n');
        }
        out
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Fail => "fail",
        Status::Info => "info",
    }
}

fn with(op: &serde_json::Value, kind: &str, t: u64, member: &str) -> String {
    let mut v = op.clone();
    v["type"] = json!(kind);
    v["time_ns"] = json!(t);
    v["member"] = json!(member);
    v.to_string()
}
