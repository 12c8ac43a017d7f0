//! Prometheus metrics of a member (`--http HOST:PORT` serves them at `/metrics`).
//!
//! Recorded through the `metrics` facade, so the library crates can add their own counters
//! without depending on the exporter; nothing is recorded unless `--http` installed the
//! recorder. Raft state (term, role, indexes, leader changes, snapshot) is sampled from the
//! member's metrics watch; transactions are timed where the front end calls the member
//! (`backend.rs`). Names follow Prometheus conventions (`_total` counters, `_seconds`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use halyard_raft::{Member, MemberReport, Role};
use halyard_server::FrontEndStats;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Buckets for transaction latency: 100 µs to 30 s (a write waits up to the write timeout).
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Installs the process-wide recorder (once) and returns the handle that renders the text.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .install_recorder()?;
    describe();
    let _ = HANDLE.set(handle.clone());
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("halyard_raft_term", "Current Raft term.");
    describe_gauge!(
        "halyard_raft_role",
        "1 for the role this member has (label role)."
    );
    describe_gauge!(
        "halyard_raft_is_leader",
        "1 when this member is the Raft leader."
    );
    describe_gauge!(
        "halyard_raft_has_leader",
        "1 when this member knows a leader and is in contact with it."
    );
    describe_gauge!(
        "halyard_raft_last_log_index",
        "Index of the last entry in this member's log."
    );
    describe_gauge!(
        "halyard_raft_committed_index",
        "Commit index (leader: quorum match; elsewhere the applied index)."
    );
    describe_gauge!(
        "halyard_raft_applied_index",
        "Index of the last entry applied to the databases."
    );
    describe_gauge!(
        "halyard_raft_apply_lag_entries",
        "Entries in the local log not yet applied."
    );
    describe_gauge!(
        "halyard_raft_snapshot_index",
        "Index the latest snapshot covers."
    );
    describe_gauge!(
        "halyard_raft_members",
        "Members of the cluster (label kind: voter, learner)."
    );
    describe_gauge!(
        "halyard_raft_proposal_queue",
        "Commands waiting for the next Raft entry (group commit queue)."
    );
    describe_gauge!(
        "halyard_raft_forward_queue",
        "Commands of this member's clients waiting to be forwarded to the leader."
    );
    describe_gauge!(
        "halyard_raft_queued_command_bytes",
        "Bytes of client commands queued or in flight in the proposer and the forwarder."
    );
    describe_gauge!(
        "halyard_raft_split_command_bytes",
        "Bytes of split (large) commands applied in part, waiting for their last piece."
    );
    describe_gauge!(
        "halyard_raft_read_queue",
        "Read-only transactions and monitor requests waiting for the next shared read index."
    );
    describe_gauge!(
        "halyard_raft_election_timer_ms",
        "Election timeout in milliseconds."
    );
    describe_gauge!(
        "halyard_raft_replication_match_index",
        "Leader only: highest index known replicated (label peer)."
    );
    describe_counter!(
        "halyard_raft_commit_notices_sent_total",
        "Leader only: commit notices sent to followers (the commit index on a stream of its own)."
    );
    describe_counter!(
        "halyard_raft_commit_notices_received_total",
        "Commit notices received (label result: applied, early: before its entry, applied on its arrival; stale: an earlier leader's; error)."
    );
    describe_counter!(
        "halyard_raft_flush_hints_sent_total",
        "Leader only, three voters: flush hints sent to followers (the leader's log durable ahead of its commit index)."
    );
    describe_counter!(
        "halyard_raft_flush_hints_received_total",
        "Flush hints received from the leader."
    );
    describe_counter!(
        "halyard_raft_commits_inferred_total",
        "Commits this follower took from a flush hint and its own durable log (three voters), before the leader's commit notice."
    );
    describe_counter!(
        "halyard_raft_runtime_stalls_total",
        "Times the member's Raft runtime ran none of its tasks for RAFT_STALL_WARN (500 ms) or longer (logged with what its threads were doing)."
    );
    describe_histogram!(
        "halyard_raft_runtime_stall_seconds",
        "Length of each such stall of the Raft runtime."
    );
    describe_counter!(
        "halyard_raft_leader_changes_total",
        "Times this member saw the leader change."
    );
    describe_counter!(
        "halyard_raft_snapshots_total",
        "Snapshots built or installed on this member."
    );
    describe_counter!(
        "halyard_transactions_total",
        "OVSDB transact requests (labels kind: read|write, result: ok|error)."
    );
    describe_histogram!(
        "halyard_transaction_seconds",
        "OVSDB transact latency as the member sees it (label kind)."
    );
    describe_counter!(
        "halyard_forwarded_writes_total",
        "Writes proposed while this member was not the leader (forwarded to it)."
    );
    describe_counter!(
        "halyard_read_barriers_total",
        "Read-only transactions served after a read barrier."
    );
    describe_gauge!(
        "halyard_ovsdb_connections",
        "Open OVSDB client connections."
    );
    describe_gauge!(
        "halyard_ovsdb_monitors",
        "Monitors open across all client connections."
    );
    describe_gauge!(
        "halyard_ovsdb_backlog_bytes",
        "Bytes queued to clients (replies, monitor updates) not yet written."
    );
    describe_gauge!(
        "halyard_ovsdb_monitor_initial_built",
        "Monitor requests whose initial contents were serialised (since start)."
    );
    describe_gauge!(
        "halyard_ovsdb_monitor_initial_shared",
        "Monitor requests answered with initial contents serialised for an identical request at the same version (since start)."
    );
    describe_gauge!(
        "halyard_ovsdb_monitor_initial_cached_bytes",
        "Bytes of serialised initial contents kept for reuse (latest version of each database only)."
    );
    describe_gauge!(
        "halyard_ovsdb_input_bytes",
        "Bytes received from clients in messages not yet complete (bounded by --max-input-bytes)."
    );
    describe_gauge!(
        "halyard_ovsdb_rows",
        "Rows in the replicated databases (label db)."
    );
}

/// Samples the member's Raft metrics into gauges on every change of role, term, leader or
/// membership, and every second (indexes, ages and queue depths: not on every write, which would
/// wake this task several times per write).
pub fn watch_member(member: Arc<Member>, front_end: Arc<dyn Fn() -> FrontEndStats + Send + Sync>) {
    if HANDLE.get().is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut changes = member.subscribe_changes();
        let mut last_leader: Option<Option<u64>> = None;
        let mut last_snapshot = None;
        loop {
            let r = member.report();
            if last_leader.is_some_and(|l| l != r.leader) {
                metrics::counter!("halyard_raft_leader_changes_total").increment(1);
            }
            last_leader = Some(r.leader);
            if last_snapshot.is_some_and(|s| s != r.snapshot_index) {
                metrics::counter!("halyard_raft_snapshots_total").increment(1);
            }
            last_snapshot = Some(r.snapshot_index);
            sample(&member, &r, front_end());
            tokio::select! {
                alive = changes.changed() => if !alive { break },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
}

fn sample(member: &Member, r: &MemberReport, front_end: FrontEndStats) {
    use metrics::gauge;
    gauge!("halyard_raft_term").set(r.term as f64);
    for role in [
        Role::Leader,
        Role::Follower,
        Role::Candidate,
        Role::Learner,
        Role::Shutdown,
    ] {
        let is = r.role == role;
        gauge!("halyard_raft_role", "role" => role.as_str()).set(if is { 1.0 } else { 0.0 });
    }
    gauge!("halyard_raft_is_leader").set(if r.is_leader() { 1.0 } else { 0.0 });
    gauge!("halyard_raft_has_leader").set(if r.connected { 1.0 } else { 0.0 });
    let last = r.last_log_index.unwrap_or(0);
    let applied = r.applied_index;
    gauge!("halyard_raft_last_log_index").set(last as f64);
    gauge!("halyard_raft_applied_index").set(applied as f64);
    gauge!("halyard_raft_committed_index").set(r.commit_index as f64);
    gauge!("halyard_raft_apply_lag_entries").set(last.saturating_sub(applied) as f64);
    gauge!("halyard_raft_snapshot_index").set(r.snapshot_index.unwrap_or(0) as f64);
    let voters = r.voters().count();
    let nodes = r.members.len();
    gauge!("halyard_raft_members", "kind" => "voter").set(voters as f64);
    gauge!("halyard_raft_members", "kind" => "learner").set(nodes.saturating_sub(voters) as f64);
    gauge!("halyard_raft_proposal_queue").set(member.proposal_queue_len() as f64);
    gauge!("halyard_raft_forward_queue").set(member.forward_queue_len() as f64);
    gauge!("halyard_raft_queued_command_bytes").set(member.queued_command_bytes() as f64);
    gauge!("halyard_raft_split_command_bytes").set(member.incomplete_command_bytes() as f64);
    gauge!("halyard_raft_read_queue").set(member.read_queue_len() as f64);
    gauge!("halyard_raft_election_timer_ms").set(member.election_timeout_ms() as f64);
    if r.is_leader() {
        for p in r.members.iter().filter(|p| p.id != r.id) {
            let index = p.match_index.unwrap_or(0);
            gauge!("halyard_raft_replication_match_index", "peer" => format!("{:016x}", p.id))
                .set(index as f64);
        }
    }
    gauge!("halyard_ovsdb_connections").set(front_end.sessions as f64);
    gauge!("halyard_ovsdb_monitors").set(front_end.monitors as f64);
    gauge!("halyard_ovsdb_backlog_bytes").set(front_end.backlog_bytes as f64);
    gauge!("halyard_ovsdb_input_bytes").set(front_end.input_bytes as f64);
    gauge!("halyard_ovsdb_monitor_initial_built").set(front_end.initial_built as f64);
    gauge!("halyard_ovsdb_monitor_initial_shared").set(front_end.initial_shared as f64);
    gauge!("halyard_ovsdb_monitor_initial_cached_bytes").set(front_end.initial_cached_bytes as f64);
    member.with_state(|s| {
        for (name, d) in &s.dbs {
            let rows: usize =
                d.db.schema()
                    .tables
                    .iter()
                    .map(|t| d.db.row_count(&t.name))
                    .sum();
            gauge!("halyard_ovsdb_rows", "db" => name.clone()).set(rows as f64);
        }
    });
}

/// How a transaction is counted: as a read exactly when the member routes it as one (a read
/// barrier, not a proposal), so the read and write counters match what the member did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    Read,
    Write,
}

impl TxnKind {
    /// The member's own routing predicate: a transaction with `abort` never commits, so it is
    /// a read whatever else it contains (`ovsdb-client query`).
    pub fn of(ops: &[serde_json::Value]) -> TxnKind {
        if ovsdb::is_read_only_transaction(ops) {
            TxnKind::Read
        } else {
            TxnKind::Write
        }
    }
}

/// Times one OVSDB transaction as seen by the member (read barrier or proposal included).
pub fn transaction(kind: TxnKind, forwarded: bool, elapsed: Duration, ok: bool) {
    let read_only = kind == TxnKind::Read;
    let kind = if read_only { "read" } else { "write" };
    let result = if ok { "ok" } else { "error" };
    metrics::counter!("halyard_transactions_total", "kind" => kind, "result" => result)
        .increment(1);
    metrics::histogram!("halyard_transaction_seconds", "kind" => kind)
        .record(elapsed.as_secs_f64());
    if read_only {
        metrics::counter!("halyard_read_barriers_total").increment(1);
    } else if forwarded {
        metrics::counter!("halyard_forwarded_writes_total").increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `transaction` records for `ops` on a follower, rendered by a private recorder.
    fn recorded(ops: &[serde_json::Value]) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            transaction(TxnKind::of(ops), true, Duration::from_millis(1), true)
        });
        handle.render()
    }

    #[test]
    fn a_transaction_with_abort_counts_as_a_read_as_it_is_routed() {
        // ovsdb-client query: a select followed by abort.
        let query = [
            json!({"op":"select","table":"T","where":[]}),
            json!({"op":"abort"}),
        ];
        let text = recorded(&query);
        assert!(
            text.contains(r#"halyard_transactions_total{kind="read",result="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains("halyard_read_barriers_total 1"), "{text}");
        assert!(!text.contains("halyard_forwarded_writes_total"), "{text}");

        let insert = [json!({"op":"insert","table":"T","row":{}})];
        let text = recorded(&insert);
        assert!(
            text.contains(r#"halyard_transactions_total{kind="write",result="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains("halyard_forwarded_writes_total 1"), "{text}");
    }
}
