//! Every timer and limit of a member, named in one place with its default (documented for
//! operators in the README's "Tuning" section).

use std::time::Duration;

/// Election timer, ovsdb-server's default (`--election-timer`, 1000 ms): a follower that hears
/// no leader for between 0.75 and 1 times this starts an election (ovsdb-server: between 1 and
/// 2 times), so that a failover, even one needing a second election round, ends within about
/// 1.5 times it. See `raft_config` for how openraft 0.9 gets there.
pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 1000;
/// Leader heartbeat interval: a twentieth of the election timer, so that more than a dozen beats
/// must be lost before a follower gives up on its leader, and so that openraft's election tick
/// (1.5 heartbeats) adds little to the failover time.
pub const DEFAULT_HEARTBEAT_MS: u64 = 50;

/// The heartbeat interval that goes with an election timer of `election_timeout_ms`.
pub fn heartbeat_for(election_timeout_ms: u64) -> u64 {
    (election_timeout_ms / 20).max(10)
}
/// How often a member whose cluster agreed on another election timer
/// (`cluster/change-election-timer`, which openraft 0.9 cannot take at run time) checks whether
/// to call an election itself: often against the smallest timer ovsdb-server allows (100 ms).
pub const AGREED_TIMER_CHECK: Duration = Duration::from_millis(10);
/// Build a snapshot every this many applied log entries; the log before it is then purged.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 20_000;
/// Log entries kept behind the latest snapshot so slightly lagging followers catch up from the
/// log instead of a snapshot.
pub const DEFAULT_LOG_KEPT_BEHIND_SNAPSHOT: u64 = 5_000;
/// How long a write may wait for a leader (elections, forwarding failures) before the client
/// gets an error. OVSDB has no client deadline; this is the server-side limit.
pub const DEFAULT_WRITE_WAIT: Duration = Duration::from_secs(30);
/// Lock lease: the leader expires the OVSDB locks held through a member it has not heard from
/// for this long, and a member without a quorum for this long tells its lock owners they lost
/// their locks. Longer than an election, so a leader change alone expires nothing.
pub const DEFAULT_LOCK_LEASE: Duration = Duration::from_secs(5);
/// How long the leader waits for a member to take one snapshot chunk, the last one including
/// restoring the whole database from it (1.6 s for 100k OVN ports in a release build). openraft's
/// default of 200 ms made a member joining a cluster with a few thousand rows time out on
/// every attempt and never catch up.
pub const INSTALL_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of commands in one Raft log entry, at most; a larger command is split into pieces of
/// this size, each its own entry (`command::split`). Small entries are what let a member far
/// behind catch up: each AppendEntries must be sent, written and flushed by the follower within
/// openraft's per-request deadline (one heartbeat interval, 50 ms by default).
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// Bytes of log entries in one AppendEntries request, at most (one entry always fits).
pub const REPLICATION_BATCH_BYTES: u64 = 2 * 1024 * 1024;
/// Bytes of client commands a member holds for the proposer (leader) or the forwarder
/// (follower), queued or in flight, each; further writers wait. With the largest client message
/// (64 MiB by default) and the bytes of entries being applied, this is what bounds a member's
/// memory under a load of large transactions.
pub const QUEUE_BYTES: u32 = 256 * 1024 * 1024;
/// Bytes of commands in one forwarded call to the leader, at most (one command always fits).
pub const MAX_FORWARD_BYTES: usize = 8 * 1024 * 1024;
/// Take a snapshot (and compact the log) once this many bytes of commands were applied since
/// the last one, besides every `snapshot_every` entries: a member restarting re-applies the
/// log after its snapshot in one go, so the log must stay bounded in bytes, not only in entries.
pub const SNAPSHOT_EVERY_BYTES: u64 = 256 * 1024 * 1024;
/// Encoded bytes of `monitor_cond_since` history a snapshot keeps per database, newest
/// transactions first: enough for clients a few transactions behind to resume with
/// `found: true` after a restart, without making every snapshot (written and sent to
/// followers) carry up to 100 transactions of large rows. A history entry larger than this is
/// not kept in snapshots.
pub const HISTORY_SNAPSHOT_BYTES: usize = 16 * 1024 * 1024;
/// Worker threads of the runtime a member's Raft work runs on (`halyard serve`), apart from the
/// client sessions' runtime: openraft's core and replication, the peer service, the proposer,
/// the forwarder, leases and applying. With a runtime of their own, a storm of client sessions
/// writing monitor replies cannot queue a heartbeat behind them: the OS scheduler shares the
/// cores between the two runtimes' threads, and tokio has no priorities within one.
///
/// One: this work is a chain of hand-offs (a request, the core, the log, replication, the
/// apply) with little to run in parallel, and a second idle worker is woken to look for work at
/// each step. With two, one writer cost 43 context switches and 1.0-1.2 ms of CPU per write over
/// a 3-member cluster; with one, 28 and 0.86-1.0 ms, and p50 went down 10-15 %
/// (docs/performance.md, "One Raft worker"). A large apply runs in `block_in_place`, which hands
/// the worker's other tasks to a fresh thread meanwhile, so openraft's core is not held behind
/// it; snapshots are encoded, decoded and dropped on threads of their own ([`SNAPSHOT_NICE`]).
/// The cost: loads of multi-megabyte transactions (the 16 KB-value bulk load) run 15-25 %
/// slower than with two on the 2-core bench machine; `halyard serve --raft-threads 2` for a
/// site whose writes are mostly such transactions.
pub const RAFT_RUNTIME_THREADS: usize = 1;
/// The `nice` value (Linux thread priority, 0 to 19, higher yields more) of the threads that
/// encode a snapshot being built, decode one being installed and drop the state it replaces.
/// These are the longest CPU work a member does (seconds for a few hundred megabytes); at the
/// Raft runtime's own priority they take a whole core from it, and on a busy machine a leader's
/// heartbeats or a follower's answers come late enough for elections nobody needs. At 10 the
/// kernel gives them about a tenth of the CPU a default thread gets while both want it, and all
/// of an idle core. Each such thread is started for the work and ends with it (an unprivileged
/// process may lower a thread's priority but not raise it back).
pub const SNAPSHOT_NICE: i32 = 10;
/// How often the watchdog's ticker runs on the member's Raft runtime (`halyard serve`), and how
/// often the watchdog thread looks at when it last ran.
pub const RAFT_STALL_TICK: Duration = Duration::from_millis(100);
/// A Raft runtime that has run no task for this long is logged with what its threads were doing
/// (state, kernel wait channel and stack); a line with the stall's length follows when it runs
/// again. Half the default election timer: a leader stalled this long is close to losing its
/// followers, a follower to calling an election it has no need for.
pub const RAFT_STALL_WARN: Duration = Duration::from_millis(500);
/// How long a leader waits, after its commit notice stream to a follower failed, before it
/// opens another (`commit_notice`); meanwhile AppendEntries carry the commit index.
pub const COMMIT_NOTICE_RETRY: Duration = Duration::from_millis(500);
/// sled page cache for the Raft log and snapshots. The databases themselves live in memory.
pub const DEFAULT_STORAGE_CACHE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub election_timeout_ms: u64,
    pub heartbeat_ms: u64,
    pub snapshot_every: u64,
    pub log_kept_behind_snapshot: u64,
    pub write_wait: Duration,
    pub storage_cache_bytes: u64,
    pub lock_lease: Duration,
    /// Truncate a damaged Raft log tail (a torn write) back to the last good entry at start,
    /// instead of refusing to start (`halyard serve --repair-log-tail`). An operator decision:
    /// the truncated entries are gone from this member.
    pub repair_log_tail: bool,
    /// Worker threads of the member's Raft runtime ([`RAFT_RUNTIME_THREADS`]; `halyard serve
    /// --raft-threads`). Read by the binary that builds the runtime.
    pub raft_threads: usize,
    /// Test-only, broken on purpose (`halyard serve --unsafe-ack-before-commit`, hidden): a
    /// write is answered from a dry run on a copy of the state and never proposed, so the fault
    /// suite can show its checker catches acknowledged writes that were not committed.
    pub unsafe_ack_before_commit: bool,
    /// Bytes of commands in one log entry, at most ([`MAX_ENTRY_BYTES`]). Only tests change it
    /// (`halyard serve --max-entry-bytes`, hidden), to write logs with entries as large as
    /// those of releases before commands were split, and check that members still start on
    /// them and replicate them.
    pub max_entry_bytes: usize,
}

impl Default for MemberConfig {
    fn default() -> Self {
        MemberConfig {
            election_timeout_ms: DEFAULT_ELECTION_TIMEOUT_MS,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            log_kept_behind_snapshot: DEFAULT_LOG_KEPT_BEHIND_SNAPSHOT,
            write_wait: DEFAULT_WRITE_WAIT,
            storage_cache_bytes: DEFAULT_STORAGE_CACHE_BYTES,
            lock_lease: DEFAULT_LOCK_LEASE,
            repair_log_tail: false,
            raft_threads: RAFT_RUNTIME_THREADS,
            unsafe_ack_before_commit: false,
            max_entry_bytes: MAX_ENTRY_BYTES,
        }
    }
}

impl MemberConfig {
    /// How long a leader may go without its quorum's acknowledgement before it tells its own
    /// lock owners they lost their locks: half the election timer (ten heartbeats). A new
    /// leader then expires its predecessor's locks this long (plus a margin) after its
    /// election instead of a whole lock lease (see `lease`), so a standby `ovn-northd` takes
    /// over within about two election timers of the leader's death.
    pub fn lock_standdown(&self) -> Duration {
        Duration::from_millis(self.election_timeout_ms / 2)
    }

    pub(crate) fn raft_config(&self, cluster_name: String) -> openraft::Config {
        openraft::Config {
            cluster_name,
            // openraft 0.9 makes a follower that heard a committed leader wait a leader lease
            // (= election_timeout_max) plus its random timeout in [min, max) before it calls an
            // election; the timeout is drawn again at every election (Halyard's eleventh
            // openraft change; upstream drew it once per process). With [T/4, T/2) the first
            // election starts 0.75T..T after the last heartbeat. A second round (a split vote,
            // or a first candidate refused for its shorter log) waits the timeout alone, so
            // even then a leader is in place by about 1.5T: under 2 s with the default timer.
            // (With [T/2, T) it was 1.5T..2T for one round and up to 3T for two.)
            election_timeout_min: (self.election_timeout_ms / 4).max(self.heartbeat_ms + 1),
            election_timeout_max: (self.election_timeout_ms / 2).max(self.heartbeat_ms + 2),
            heartbeat_interval: self.heartbeat_ms,
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT.as_millis() as u64,
            // Between one and one and a half times the setting, drawn once per process: every
            // member applies the same entries, so with one count they all built a snapshot at
            // the same index, at the same moment (five 670 MB snapshots within 4 s in a soak of
            // five members sharing two cores and one disk, and the cluster churned through
            // elections meanwhile). ovsdb-server staggers its members' snapshots too.
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(staggered(
                self.snapshot_every,
            )),
            max_in_snapshot_log_to_keep: self.log_kept_behind_snapshot,
            ..Default::default()
        }
    }
}

/// `n` plus a random share of less than half of it, different in every member (see
/// `raft_config`).
pub(crate) fn staggered(n: u64) -> u64 {
    let r = uuid::Uuid::new_v4().as_u128() as u64;
    n + r % (n / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staggered_counts_stay_within_half_again_and_differ() {
        for n in [1, 2, 10, 20_000] {
            let draws: Vec<u64> = (0..100).map(|_| staggered(n)).collect();
            assert!(
                draws.iter().all(|d| (n..=n + n / 2).contains(d)),
                "{n}: {draws:?}"
            );
            if n >= 10 {
                assert!(
                    draws.iter().any(|d| *d != draws[0]),
                    "{n}: all {}",
                    draws[0]
                );
            }
        }
    }
}
