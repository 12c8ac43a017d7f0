//! The replicated state: every database, the lock table, the recent-transaction history, and the
//! ids of recently applied commands. `apply` is the whole state machine transition: deterministic
//! (no clocks, no randomness, no hash-map order), the same on every member for the same log.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use ovsdb::{ChangeSet, Database, DatabaseSchema, TxnOutcome};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::command::{Command, CommandKind, Outcome};
use crate::locks::{Events, LockEvent, LockTable};
use crate::recent::{Recent, RecentList};
use crate::txn_env::ApplyEnv;

/// How many recent transactions each database keeps for `monitor_cond_since` at most (as
/// ovsdb-server; it also keeps no more atoms in them than the database holds, see
/// [`History::push`]).
pub const HISTORY_LEN: usize = 100;
/// How many recent command ids are remembered so a command re-sent after a leader change is
/// applied once. Must comfortably exceed the commands that can be in flight across an election.
pub const DEDUP_LEN: usize = 100_000;

/// Told, synchronously and in log order, what each applied entry changed. Implemented by the
/// front end, which turns changes into monitor updates for its own sessions.
pub trait ApplyObserver: Send + Sync {
    fn applied(&self, db: &str, state: &Database, txn_id: Uuid, changes: &ChangeSet);
    fn lock_event(&self, session: Uuid, lock: &str, event: LockEvent);
    /// A database was created.
    fn databases_changed(&self) {}
    /// A database's contents were replaced wholesale (snapshot install): monitors on it cannot
    /// continue with diffs.
    fn database_replaced(&self, _db: &str) {}
    /// Entries up to `index` are applied (the applied index just moved there). Called once per
    /// batch of applied entries, after the index is visible in `Member::status`.
    fn index_applied(&self, _index: u64) {}
}

/// Recent committed transactions of one database, oldest first.
/// The recent transactions of one database, oldest first. Kept in snapshots, so that clients
/// of a restarted member (or of one that installed a snapshot) resume with `found: true`.
#[derive(Default)]
pub struct History {
    entries: VecDeque<(Uuid, Arc<ChangeSet>, usize)>,
    /// Atoms in all entries.
    atoms: usize,
}

impl History {
    /// The changes committed after `txn_id`, or `None` if it is not in the history.
    pub fn since(&self, txn_id: &Uuid) -> Option<Vec<(Uuid, Arc<ChangeSet>)>> {
        let pos = self.entries.iter().position(|(id, _, _)| id == txn_id)?;
        Some(
            self.entries
                .iter()
                .skip(pos + 1)
                .map(|(id, c, _)| (*id, c.clone()))
                .collect(),
        )
    }

    /// Adds a transaction, then drops the oldest ones while there are more than
    /// [`HISTORY_LEN`] or they hold more atoms than the database (`db_atoms`), always keeping
    /// the newest: ovsdb-server's bound (`ovsdb_txn_history_run`), so the history never costs
    /// more memory (or snapshot bytes) than the data.
    fn push(&mut self, id: Uuid, changes: Arc<ChangeSet>, db_atoms: usize) {
        let atoms = changes.atoms();
        self.atoms += atoms;
        self.entries.push_back((id, changes, atoms));
        while self.entries.len() > 1 && (self.entries.len() > HISTORY_LEN || self.atoms > db_atoms)
        {
            let (_, _, gone) = self.entries.pop_front().expect("more than one entry");
            self.atoms -= gone;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Atoms in all its change sets.
    pub fn atoms(&self) -> usize {
        self.atoms
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (Uuid, &Arc<ChangeSet>)> {
        self.entries.iter().map(|(id, c, _)| (*id, c))
    }
}

pub struct DbState {
    pub db: Database,
    /// The id of the last transaction that changed this database (all zeros before the first).
    pub last_txn_id: Uuid,
    pub history: History,
    /// Atoms in the database, kept up to date from each change set (for the history's bound).
    atoms: usize,
}

impl DbState {
    fn new(db: Database, last_txn_id: Uuid) -> DbState {
        DbState {
            atoms: db.atoms(),
            db,
            last_txn_id,
            history: History::default(),
        }
    }

    /// Atoms in the database (as ovsdb-server's `memory/show` counts them).
    pub fn atoms(&self) -> usize {
        self.atoms
    }

    /// Records a committed transaction that changed this database.
    fn record(&mut self, id: Uuid, changes: Arc<ChangeSet>) {
        self.atoms = self.atoms.saturating_add_signed(changes.atoms_delta());
        self.last_txn_id = id;
        self.history.push(id, changes, self.atoms);
    }

    /// The changes after `txn_id`: empty when it is the latest, `None` when it is unknown.
    pub fn changes_since(&self, txn_id: &Uuid) -> Option<Vec<(Uuid, Arc<ChangeSet>)>> {
        if *txn_id == self.last_txn_id {
            return Some(Vec::new());
        }
        self.history.since(txn_id)
    }
}

#[derive(Default)]
pub struct ReplicatedState {
    pub dbs: BTreeMap<String, DbState>,
    pub locks: LockTable,
    /// Running digest of every applied command and its outcome (see `divergence`): equal on
    /// every member at the same log index unless replicas diverged.
    pub digest: u64,
    recent: Recent,
    /// Commands split into pieces (`CommandKind::Part`) whose last piece is not applied yet.
    parts: BTreeMap<Uuid, Assembly>,
    /// The election timer the cluster agreed on (`cluster/change-election-timer`); None until
    /// one is set, when each member runs with its configured one.
    pub election_timer_ms: Option<u64>,
}

/// Transactions whose operations are at least this large are applied in two steps, the
/// transaction itself running without the state lock (see [`Begun`]).
pub const HEAVY_OPS_BYTES: usize = 1024 * 1024;

/// The first step of applying a command. Most are applied at once (`Done`). A large
/// transaction is `Heavy`: it runs on a copy of its database (rows are shared, so the copy
/// is cheap) with no lock held, and [`ReplicatedState::finish`] then installs the result. A
/// transaction of tens of MB takes long enough that readers of the state (reads, status, the
/// `_Server` database, every new transaction's checks) would otherwise wait for it, each
/// holding a runtime worker; with two workers stuck, a member stopped answering heartbeats and
/// the cluster went through elections. Only the state machine writes the state, so nothing
/// changes between the two steps; readers see the state before the transaction until it is
/// installed, before the applied index moves.
pub enum Begun {
    Done(Outcome),
    Heavy(Box<HeavyTxn>),
}

/// Who runs a transaction, as its command says: what the engine's environment needs besides
/// the state.
struct TxnContext<'a> {
    session: Uuid,
    wait_elapsed_ms: Option<u64>,
    rbac: Option<&'a ovsdb::RbacIdentityBuf>,
}

/// A large transaction between [`ReplicatedState::begin`] and [`ReplicatedState::finish`].
pub struct HeavyTxn {
    id: Uuid,
    /// The last piece, when the command came split (its digest is folded after the command's).
    piece: Option<Command>,
    db_name: String,
    ops: String,
    session: Uuid,
    wait_elapsed_ms: Option<u64>,
    rbac: Option<ovsdb::RbacIdentityBuf>,
    db: Database,
    locks: LockTable,
    out: Option<Result<TxnOutcome, String>>,
}

impl HeavyTxn {
    /// Runs the transaction on the copy; no lock needed.
    pub fn run(&mut self) {
        let mut env = ApplyEnv::new(
            self.id,
            self.session,
            &self.locks,
            self.wait_elapsed_ms.unwrap_or(0),
        )
        .with_rbac(self.rbac.as_ref());
        self.out = Some(
            self.db
                .transact_text(&self.ops, &mut env)
                .map_err(|e| e.to_string()),
        );
    }
}

enum Collected {
    Pending,
    Invalid,
    Whole(Command),
}

/// The pieces of one split command received so far, in order (their base64 text).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Assembly {
    count: u32,
    next: u32,
    text: String,
}

#[derive(Serialize, Deserialize)]
struct SnapshotDb {
    name: String,
    schema: String,
    data: Vec<u8>,
    last_txn_id: Uuid,
    /// Format 4: the transaction history, oldest first, each change set as
    /// `ChangeSet::encode` writes it.
    history: Vec<(Uuid, Vec<u8>)>,
}

/// A database in formats 1 to 3 (no history).
#[derive(Deserialize)]
struct SnapshotDbV3 {
    name: String,
    schema: String,
    data: Vec<u8>,
    last_txn_id: Uuid,
}

impl From<SnapshotDbV3> for SnapshotDb {
    fn from(d: SnapshotDbV3) -> SnapshotDb {
        SnapshotDb {
            name: d.name,
            schema: d.schema,
            data: d.data,
            last_txn_id: d.last_txn_id,
            history: Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotImage {
    format: u32,
    dbs: Vec<SnapshotDb>,
    locks: LockTable,
    recent: Vec<(Uuid, Outcome)>,
    digest: u64,
    /// Format 2: the split commands being assembled, so that a member installing the snapshot
    /// can complete them from the pieces after it.
    parts: Vec<(Uuid, Assembly)>,
    /// Format 3: the election timer set through the log.
    election_timer_ms: Option<u64>,
}

/// Format 3 (before the history was kept): databases without it.
#[derive(Deserialize)]
struct SnapshotImageV3 {
    format: u32,
    dbs: Vec<SnapshotDbV3>,
    locks: LockTable,
    recent: Vec<(Uuid, Outcome)>,
    digest: u64,
    parts: Vec<(Uuid, Assembly)>,
    election_timer_ms: Option<u64>,
}

/// Format 2 (before the replicated election timer): the same fields without it.
#[derive(Deserialize)]
struct SnapshotImageV2 {
    format: u32,
    dbs: Vec<SnapshotDbV3>,
    locks: LockTable,
    recent: Vec<(Uuid, Outcome)>,
    digest: u64,
    parts: Vec<(Uuid, Assembly)>,
}

/// Format 1 (before split commands): the same fields without `parts`.
#[derive(Deserialize)]
struct SnapshotImageV1 {
    format: u32,
    dbs: Vec<SnapshotDbV3>,
    locks: LockTable,
    recent: Vec<(Uuid, Outcome)>,
    digest: u64,
}

const SNAPSHOT_FORMAT: u32 = 4;

/// The contents of a snapshot, detached from the live state (see
/// [`ReplicatedState::snapshot_source`]).
/// One database as a snapshot source holds it: name, data, last transaction id, history.
type SourceDb = (String, Database, Uuid, Vec<(Uuid, Arc<ChangeSet>)>);

pub struct SnapshotSource {
    dbs: Vec<SourceDb>,
    locks: LockTable,
    recent: RecentList,
    digest: u64,
    parts: Vec<(Uuid, Assembly)>,
    election_timer_ms: Option<u64>,
}

impl SnapshotSource {
    /// The snapshot bytes ([`ReplicatedState::restore`] reads them back).
    pub fn encode(self) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        self.encode_to(&mut out)
            .expect("writing to memory cannot fail");
        out.into_inner()
    }

    /// Writes the snapshot bytes to `w` as they are encoded, never holding them whole in
    /// memory (a snapshot is the size of the databases). The bytes are bincode's encoding of
    /// `SnapshotImage`, which `restore` decodes, written field by field: bincode writes a
    /// struct as its fields one after the other and a byte vector as its length (u64) then its
    /// bytes, so each database's data is written with a placeholder length, streamed, and the
    /// length filled in after (hence `Seek`).
    pub fn encode_to<W: std::io::Write + std::io::Seek>(self, w: &mut W) -> std::io::Result<()> {
        use std::io::SeekFrom;
        fn put<W: std::io::Write, T: Serialize + ?Sized>(w: &mut W, v: &T) -> std::io::Result<()> {
            bincode::serialize_into(w, v).map_err(std::io::Error::other)
        }
        put(w, &SNAPSHOT_FORMAT)?;
        put(w, &(self.dbs.len() as u64))?;
        for (name, db, last_txn_id, history) in self.dbs {
            put(w, &name)?;
            put(w, &db.schema().to_json().to_string())?;
            let len_at = w.stream_position()?;
            put(w, &0u64)?;
            let len = db.write_snapshot(w)?;
            let end = w.stream_position()?;
            w.seek(SeekFrom::Start(len_at))?;
            put(w, &len)?;
            w.seek(SeekFrom::Start(end))?;
            put(w, &last_txn_id)?;
            put(w, &newest_encoded(&history, db.schema()))?;
        }
        put(w, &self.locks)?;
        put(w, &self.recent)?;
        put(w, &self.digest)?;
        put(w, &self.parts)?;
        put(w, &self.election_timer_ms)?;
        w.flush()
    }

    /// The image `encode_to` streams, built whole: what the test of the streamed bytes
    /// compares them with.
    #[cfg(test)]
    fn image(self) -> SnapshotImage {
        SnapshotImage {
            format: SNAPSHOT_FORMAT,
            dbs: self
                .dbs
                .into_iter()
                .map(|(name, db, last_txn_id, history)| SnapshotDb {
                    name,
                    schema: db.schema().to_json().to_string(),
                    data: db.snapshot(),
                    last_txn_id,
                    history: newest_encoded(&history, db.schema()),
                })
                .collect(),
            locks: self.locks,
            recent: self.recent.to_vec(),
            digest: self.digest,
            parts: self.parts,
            election_timer_ms: self.election_timer_ms,
        }
    }
}

/// The newest history entries, encoded, that fit in `HISTORY_SNAPSHOT_BYTES` together,
/// oldest first.
fn newest_encoded(
    history: &[(Uuid, Arc<ChangeSet>)],
    schema: &DatabaseSchema,
) -> Vec<(Uuid, Vec<u8>)> {
    let mut kept = Vec::new();
    let mut bytes = 0;
    for (id, changes) in history.iter().rev() {
        let encoded = changes.encode(schema);
        bytes += encoded.len();
        if bytes > crate::config::HISTORY_SNAPSHOT_BYTES {
            break;
        }
        kept.push((*id, encoded));
    }
    kept.reverse();
    kept
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("snapshot is not decodable: {0}")]
    Decode(#[from] bincode::Error),
    #[error("snapshot format {0} is not supported (expected {SNAPSHOT_FORMAT})")]
    Format(u32),
    #[error("snapshot database {db}: {source}")]
    Db {
        db: String,
        source: ovsdb::OvsdbError,
    },
    #[error("snapshot database {db}: schema is not valid JSON: {source}")]
    Schema {
        db: String,
        source: serde_json::Error,
    },
}

impl ReplicatedState {
    pub fn apply(&mut self, cmd: &Command, observer: Option<&dyn ApplyObserver>) -> Outcome {
        if let CommandKind::Part { index, count, data } = &cmd.kind {
            let outcome = self.apply_part(cmd.id, *index, *count, data, observer);
            self.digest = crate::divergence::fold(self.digest, cmd, &outcome);
            return outcome;
        }
        if let Some(done) = self.recent.get(&cmd.id) {
            tracing::info!(command = %cmd.id, "command applied before; returning its first outcome");
            return done.clone();
        }
        let mut events = Events::new();
        let outcome = match &cmd.kind {
            CommandKind::CreateDb { schema } => self.create_db(schema, observer),
            CommandKind::Convert { db, schema } => self.convert(cmd.id, db, schema, observer),
            CommandKind::Transact {
                db,
                ops,
                session,
                wait_elapsed_ms,
                rbac,
            } => self.transact(
                cmd.id,
                db,
                ops,
                TxnContext {
                    session: *session,
                    wait_elapsed_ms: *wait_elapsed_ms,
                    rbac: rbac.as_ref(),
                },
                observer,
            ),
            CommandKind::Lock {
                session,
                incarnation,
                name,
                steal,
            } => {
                match self.locks.acquire(
                    *session,
                    cmd.origin,
                    *incarnation,
                    name,
                    *steal,
                    &mut events,
                ) {
                    Ok(locked) => Outcome::Lock { locked },
                    Err(details) => Outcome::LockRefused { details },
                }
            }
            CommandKind::Unlock { session, name } => {
                self.locks.release(*session, name, &mut events);
                Outcome::Unlocked
            }
            CommandKind::SessionsClosed { sessions } => {
                self.locks.release_sessions(sessions, &mut events);
                Outcome::Done
            }
            CommandKind::ExpireMember { member, keep } => {
                self.locks.release_member(*member, *keep, &mut events);
                Outcome::Done
            }
            CommandKind::SetElectionTimer { ms } => {
                self.election_timer_ms = Some(*ms);
                Outcome::Done
            }
            CommandKind::Part { .. } => unreachable!("pieces are assembled above"),
        };
        if let Some(obs) = observer {
            for (session, lock, event) in &events {
                obs.lock_event(*session, lock, *event);
            }
        }
        if !matches!(outcome, Outcome::Blocked { .. }) {
            self.remember(cmd.id, outcome.clone());
        }
        self.digest = crate::divergence::fold(self.digest, cmd, &outcome);
        outcome
    }

    /// One piece of a split command: kept until the last piece, which applies the command.
    /// A piece that does not follow the previous one of its command (the command was re-sent
    /// from its start, or a piece is missing) restarts or drops the assembly; the whole
    /// command is applied at most once either way (`recent`).
    fn apply_part(
        &mut self,
        id: Uuid,
        index: u32,
        count: u32,
        data: &str,
        observer: Option<&dyn ApplyObserver>,
    ) -> Outcome {
        match self.collect_part(id, index, count, data) {
            Collected::Pending => Outcome::Pending,
            Collected::Invalid => Outcome::Done,
            Collected::Whole(whole) => self.apply(&whole, observer),
        }
    }

    fn collect_part(&mut self, id: Uuid, index: u32, count: u32, data: &str) -> Collected {
        if index == 0 {
            self.parts.insert(
                id,
                Assembly {
                    count,
                    next: 0,
                    text: String::new(),
                },
            );
        }
        let Some(assembly) = self.parts.get_mut(&id) else {
            return Collected::Pending;
        };
        if assembly.next != index || assembly.count != count {
            tracing::warn!(command = %id, index, count, expected = assembly.next, "out-of-order piece of a split command; dropping it");
            self.parts.remove(&id);
            return Collected::Pending;
        }
        assembly.text.push_str(data);
        assembly.next += 1;
        if assembly.next < count {
            return Collected::Pending;
        }
        let assembly = self.parts.remove(&id).expect("present above");
        match crate::command::join(&assembly.text) {
            Some(whole) if whole.id == id && !matches!(whole.kind, CommandKind::Part { .. }) => {
                Collected::Whole(whole)
            }
            // Pieces are cut by this program from a command it encoded, so this is a bug; the
            // same on every member, so the replicas stay equal.
            _ => {
                tracing::error!(command = %id, "split command does not decode; ignored");
                Collected::Invalid
            }
        }
    }

    /// Drops the split commands still being assembled. Called when a new leader's first entry
    /// is applied: their remaining pieces can no longer come (the proposer that was sending them
    /// lost its leadership; it re-sends the whole command to the new leader).
    pub fn drop_incomplete_parts(&mut self) {
        if !self.parts.is_empty() {
            tracing::info!(
                commands = self.parts.len(),
                "new leader: dropping incomplete split commands"
            );
            self.parts.clear();
        }
    }

    /// Bytes held by split commands being assembled.
    pub fn incomplete_part_bytes(&self) -> usize {
        self.parts.values().map(|a| a.text.len()).sum()
    }

    fn remember(&mut self, id: Uuid, outcome: Outcome) {
        self.recent.remember(id, outcome);
    }

    fn create_db(&mut self, schema: &str, observer: Option<&dyn ApplyObserver>) -> Outcome {
        let parsed = serde_json::from_str(schema)
            .map_err(|e| e.to_string())
            .and_then(|v| DatabaseSchema::from_json(&v).map_err(|e| e.to_string()));
        match parsed {
            Ok(schema) => {
                let name = schema.name().to_string();
                if let std::collections::btree_map::Entry::Vacant(slot) = self.dbs.entry(name) {
                    slot.insert(DbState::new(Database::new(Arc::new(schema)), Uuid::nil()));
                    if let Some(obs) = observer {
                        obs.databases_changed();
                    }
                }
                Outcome::Done
            }
            Err(e) => {
                // Checked before proposing; reaching here means a bad entry was committed.
                tracing::error!("CreateDb entry carries an invalid schema: {e}");
                Outcome::Done
            }
        }
    }

    fn convert(
        &mut self,
        id: Uuid,
        db: &str,
        schema: &str,
        observer: Option<&dyn ApplyObserver>,
    ) -> Outcome {
        let Some(state) = self.dbs.get_mut(db) else {
            return Outcome::UnknownDb;
        };
        let schema = match serde_json::from_str(schema)
            .map_err(|e| ovsdb::OvsdbError::syntax_msg(format!("schema is not JSON: {e}")))
            .and_then(|v| DatabaseSchema::from_json(&v))
        {
            Ok(s) => s,
            Err(e) => {
                return Outcome::Converted {
                    error: Some(e.to_json().to_string()),
                }
            }
        };
        let mut env = ApplyEnv::new(id, Uuid::nil(), &self.locks, 0);
        match state.db.convert(Arc::new(schema), &mut env) {
            Ok(converted) => {
                // Diffs do not span schemas: the history starts again from the conversion.
                *state = DbState::new(converted, id);
                if let Some(obs) = observer {
                    obs.database_replaced(db);
                    obs.databases_changed();
                }
                Outcome::Converted { error: None }
            }
            Err(e) => Outcome::Converted {
                error: Some(e.to_json().to_string()),
            },
        }
    }

    fn transact(
        &mut self,
        id: Uuid,
        db: &str,
        ops: &str,
        ctx: TxnContext<'_>,
        observer: Option<&dyn ApplyObserver>,
    ) -> Outcome {
        let Some(state) = self.dbs.get_mut(db) else {
            return Outcome::UnknownDb;
        };
        let mut env = ApplyEnv::new(
            id,
            ctx.session,
            &self.locks,
            ctx.wait_elapsed_ms.unwrap_or(0),
        )
        .with_rbac(ctx.rbac);
        // Parsed straight from the logged text into the engine's borrowed document: no
        // `serde_json::Value` tree is built and dropped per command.
        let out = state
            .db
            .transact_text(ops, &mut env)
            .map_err(|e| e.to_string());
        self.transacted(id, db, out, observer)
    }

    /// Records what a transaction on `db` did (its database already holds the result).
    fn transacted(
        &mut self,
        id: Uuid,
        db: &str,
        out: Result<TxnOutcome, String>,
        observer: Option<&dyn ApplyObserver>,
    ) -> Outcome {
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let err = serde_json::json!([{"error": "syntax error", "details": format!("bad operations: {e}")}]);
                return Outcome::Transact {
                    result: err.to_string(),
                };
            }
        };
        if out.blocked {
            return Outcome::Blocked {
                retry_in_ms: out.retry_in_ms,
            };
        }
        if let Some(changes) = out.changes {
            let state = self
                .dbs
                .get_mut(db)
                .expect("the transaction ran on this database");
            let changes = Arc::new(changes);
            state.record(id, changes.clone());
            if let Some(obs) = observer {
                obs.applied(db, &state.db, id, &changes);
            }
        }
        Outcome::Transact {
            result: out.result.to_string(),
        }
    }

    /// The first step of applying `cmd` (see [`Begun`]), under the state's write lock.
    pub fn begin(&mut self, cmd: &Command, observer: Option<&dyn ApplyObserver>) -> Begun {
        let CommandKind::Part { index, count, data } = &cmd.kind else {
            return match self.heavy(cmd, None) {
                Some(heavy) => Begun::Heavy(Box::new(heavy)),
                None => Begun::Done(self.apply(cmd, observer)),
            };
        };
        let whole = match self.collect_part(cmd.id, *index, *count, data) {
            Collected::Whole(whole) => whole,
            Collected::Pending => return self.piece_done(cmd, Outcome::Pending),
            Collected::Invalid => return self.piece_done(cmd, Outcome::Done),
        };
        match self.heavy(&whole, Some(cmd.clone())) {
            Some(heavy) => Begun::Heavy(Box::new(heavy)),
            None => {
                let outcome = self.apply(&whole, observer);
                self.digest = crate::divergence::fold(self.digest, cmd, &outcome);
                Begun::Done(outcome)
            }
        }
    }

    /// A piece that completes no command.
    fn piece_done(&mut self, piece: &Command, outcome: Outcome) -> Begun {
        self.digest = crate::divergence::fold(self.digest, piece, &outcome);
        Begun::Done(outcome)
    }

    /// `cmd` as a [`HeavyTxn`] when it is a transaction large enough to run off the lock.
    fn heavy(&self, cmd: &Command, piece: Option<Command>) -> Option<HeavyTxn> {
        let CommandKind::Transact {
            db,
            ops,
            session,
            wait_elapsed_ms,
            rbac,
        } = &cmd.kind
        else {
            return None;
        };
        if ops.len() < HEAVY_OPS_BYTES || self.recent.contains_key(&cmd.id) {
            return None;
        }
        let state = self.dbs.get(db)?;
        Some(HeavyTxn {
            id: cmd.id,
            piece,
            db_name: db.clone(),
            ops: ops.clone(),
            session: *session,
            wait_elapsed_ms: *wait_elapsed_ms,
            rbac: rbac.clone(),
            db: state.db.clone(),
            locks: self.locks.clone(),
            out: None,
        })
    }

    /// The last step of applying a [`HeavyTxn`] that has run, under the state's write lock:
    /// the same outcome, state and digest as [`ReplicatedState::apply`] would give.
    pub fn finish(&mut self, heavy: HeavyTxn, observer: Option<&dyn ApplyObserver>) -> Outcome {
        let HeavyTxn {
            id,
            piece,
            db_name,
            db,
            out,
            ..
        } = heavy;
        let out = out.expect("HeavyTxn::run before finish");
        if out.as_ref().is_ok_and(|o| o.changes.is_some()) {
            self.dbs.get_mut(&db_name).expect("present at begin").db = db;
        }
        let outcome = self.transacted(id, &db_name, out, observer);
        if !matches!(outcome, Outcome::Blocked { .. }) {
            self.remember(id, outcome.clone());
        }
        self.digest = crate::divergence::fold_id(self.digest, id, &outcome);
        if let Some(piece) = piece {
            self.digest = crate::divergence::fold(self.digest, &piece, &outcome);
        }
        outcome
    }

    /// A compact image of the whole state, the transaction history included (so clients of a
    /// restarted member resume with `found: true`); equal states give identical bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_source().encode()
    }

    /// A copy of what a snapshot holds, cheap to take (rows are shared, not copied), so that the
    /// snapshot is encoded without holding the state lock: encoding 100k OVN ports took about
    /// 250 ms, during which applies waited.
    pub fn snapshot_source(&self) -> SnapshotSource {
        SnapshotSource {
            dbs: self
                .dbs
                .iter()
                .map(|(name, s)| {
                    let history = s.history.iter().map(|(id, c)| (id, c.clone())).collect();
                    (name.clone(), s.db.clone(), s.last_txn_id, history)
                })
                .collect(),
            locks: self.locks.clone(),
            recent: self.recent.list(),
            digest: self.digest,
            parts: self.parts.iter().map(|(id, a)| (*id, a.clone())).collect(),
            election_timer_ms: self.election_timer_ms,
        }
    }

    pub fn restore(bytes: &[u8]) -> Result<ReplicatedState, RestoreError> {
        Self::restore_from(bytes)
    }

    /// [`ReplicatedState::restore`] from a reader (a snapshot file). The current format is read
    /// field by field as [`SnapshotSource::encode_to`] wrote it, each database decoded straight
    /// from the reader: neither the file's bytes nor a database's encoded bytes are held beside
    /// the state built from them. Older formats are read whole, then decoded.
    pub fn restore_from(mut r: impl std::io::Read) -> Result<ReplicatedState, RestoreError> {
        // Every format starts with its number (a little-endian u32 in bincode).
        let mut first = [0u8; 4];
        let format = match r.read_exact(&mut first) {
            Ok(()) => u32::from_le_bytes(first),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(RestoreError::Decode(Box::new(bincode::ErrorKind::Io(e)))),
        };
        if format == SNAPSHOT_FORMAT {
            return Self::restore_streamed(r);
        }
        let bytes = std::io::Read::chain(&first[..], r);
        let image: SnapshotImage = match format {
            1 => {
                let v1: SnapshotImageV1 = bincode::deserialize_from(bytes)?;
                SnapshotImage {
                    format: v1.format,
                    dbs: v1.dbs.into_iter().map(SnapshotDb::from).collect(),
                    locks: v1.locks,
                    recent: v1.recent,
                    digest: v1.digest,
                    parts: Vec::new(),
                    election_timer_ms: None,
                }
            }
            2 => {
                let v2: SnapshotImageV2 = bincode::deserialize_from(bytes)?;
                SnapshotImage {
                    format: v2.format,
                    dbs: v2.dbs.into_iter().map(SnapshotDb::from).collect(),
                    locks: v2.locks,
                    recent: v2.recent,
                    digest: v2.digest,
                    parts: v2.parts,
                    election_timer_ms: None,
                }
            }
            3 => {
                let v3: SnapshotImageV3 = bincode::deserialize_from(bytes)?;
                SnapshotImage {
                    format: v3.format,
                    dbs: v3.dbs.into_iter().map(SnapshotDb::from).collect(),
                    locks: v3.locks,
                    recent: v3.recent,
                    digest: v3.digest,
                    parts: v3.parts,
                    election_timer_ms: v3.election_timer_ms,
                }
            }
            other => return Err(RestoreError::Format(other)),
        };
        let mut dbs = BTreeMap::new();
        for d in image.dbs {
            let schema = restored_schema(&d.name, &d.schema)?;
            let db = Database::from_snapshot(schema.clone(), &d.data)
                .map_err(|source| db_error(&d.name, source))?;
            let state = restored_db(&d.name, db, d.last_txn_id, &d.history)?;
            dbs.insert(d.name, state);
        }
        Ok(Self::restored(
            dbs,
            image.locks,
            image.recent,
            image.digest,
            image.parts,
            image.election_timer_ms,
        ))
    }

    /// The current format after its number: `SnapshotImage`'s fields in bincode's encoding.
    fn restore_streamed(mut r: impl std::io::Read) -> Result<ReplicatedState, RestoreError> {
        fn get<T: serde::de::DeserializeOwned>(
            r: &mut impl std::io::Read,
        ) -> Result<T, RestoreError> {
            Ok(bincode::deserialize_from(r)?)
        }
        let count: u64 = get(&mut r)?;
        let mut dbs = BTreeMap::new();
        for _ in 0..count {
            let name: String = get(&mut r)?;
            let schema_text: String = get(&mut r)?;
            let schema = restored_schema(&name, &schema_text)?;
            let len: u64 = get(&mut r)?;
            let db = Database::from_snapshot_reader(schema, &mut r, len)
                .map_err(|source| db_error(&name, source))?;
            let last_txn_id: Uuid = get(&mut r)?;
            let history: Vec<(Uuid, Vec<u8>)> = get(&mut r)?;
            let state = restored_db(&name, db, last_txn_id, &history)?;
            dbs.insert(name, state);
        }
        let locks = get(&mut r)?;
        let recent = get(&mut r)?;
        let digest = get(&mut r)?;
        let parts = get(&mut r)?;
        let election_timer_ms = get(&mut r)?;
        Ok(Self::restored(
            dbs,
            locks,
            recent,
            digest,
            parts,
            election_timer_ms,
        ))
    }

    fn restored(
        dbs: BTreeMap<String, DbState>,
        locks: LockTable,
        recent_list: Vec<(Uuid, Outcome)>,
        digest: u64,
        parts: Vec<(Uuid, Assembly)>,
        election_timer_ms: Option<u64>,
    ) -> ReplicatedState {
        ReplicatedState {
            dbs,
            locks,
            digest,
            recent: Recent::from_list(DEDUP_LEN, recent_list),
            parts: parts.into_iter().collect(),
            election_timer_ms,
        }
    }
}

fn db_error(db: &str, source: ovsdb::OvsdbError) -> RestoreError {
    RestoreError::Db {
        db: db.to_string(),
        source,
    }
}

/// A snapshot database's schema, from its JSON text.
fn restored_schema(db: &str, text: &str) -> Result<Arc<DatabaseSchema>, RestoreError> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|source| RestoreError::Schema {
            db: db.to_string(),
            source,
        })?;
    let schema = DatabaseSchema::from_json(&json).map_err(|source| db_error(db, source))?;
    Ok(Arc::new(schema))
}

/// A snapshot database's state: the database decoded, with its history.
fn restored_db(
    name: &str,
    db: Database,
    last_txn_id: Uuid,
    history: &[(Uuid, Vec<u8>)],
) -> Result<DbState, RestoreError> {
    let schema = db.schema().clone();
    let mut state = DbState::new(db, last_txn_id);
    for (id, bytes) in history {
        let changes = ChangeSet::decode(&schema, bytes).map_err(|source| db_error(name, source))?;
        state.history.push(*id, Arc::new(changes), usize::MAX);
    }
    Ok(state)
}

impl ReplicatedState {
    /// Runs a read-only transaction (only select/wait/comment/assert) on this member's copy.
    /// Nothing is written, so nothing is replicated; it is the caller's job to have passed a read
    /// barrier first.
    pub fn execute_read_only(
        &self,
        db: &str,
        ops: &[serde_json::Value],
        session: Uuid,
        wait_elapsed_ms: Option<u64>,
    ) -> Outcome {
        let Some(state) = self.dbs.get(db) else {
            return Outcome::UnknownDb;
        };
        // Nothing here is replicated, so the UUIDs need not be derived from a command id; a
        // fixed seed would answer every insert of an aborted transaction with the same UUID.
        let mut env = ApplyEnv::new(
            Uuid::new_v4(),
            session,
            &self.locks,
            wait_elapsed_ms.unwrap_or(0),
        );
        let out = match state.db.transact_read(ops, &mut env) {
            Ok(out) => out,
            // The member sends only read-only transactions (or ones with `abort`) here.
            Err(e) => {
                let err =
                    serde_json::json!([{"error": "internal error", "details": e.to_string()}]);
                return Outcome::Transact {
                    result: err.to_string(),
                };
            }
        };
        if out.blocked {
            Outcome::Blocked {
                retry_in_ms: out.retry_in_ms,
            }
        } else {
            Outcome::Transact {
                result: out.result.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CommandKind;

    const SCHEMA: &str = r#"{"name":"T","tables":{
        "A":{"columns":{"name":{"type":"string"},"n":{"type":"integer"},
                        "b":{"type":{"key":{"type":"uuid","refTable":"B"},"min":0,"max":"unlimited"}}},"isRoot":true},
        "B":{"columns":{"x":{"type":"integer"}}}}}"#;

    fn cmd(n: u128, kind: CommandKind) -> Command {
        Command {
            id: Uuid::from_u128(n),
            origin: 1,
            kind,
        }
    }

    fn txn(n: u128, ops: &str) -> Command {
        cmd(
            n,
            CommandKind::Transact {
                db: "T".into(),
                ops: ops.into(),
                session: Uuid::from_u128(7),
                wait_elapsed_ms: None,
                rbac: None,
            },
        )
    }

    fn create_db() -> Command {
        cmd(
            1,
            CommandKind::CreateDb {
                schema: SCHEMA.into(),
            },
        )
    }

    fn log() -> Vec<Command> {
        let mut log = vec![create_db()];
        for i in 0..50u128 {
            log.push(txn(
                100 + i,
                &format!(
                    r#"[{{"op":"insert","table":"B","row":{{"x":{i}}},"uuid-name":"b"}},
                        {{"op":"insert","table":"A","row":{{"name":"a{i}","n":{i},"b":["named-uuid","b"]}}}},
                        {{"op":"mutate","table":"A","where":[["n","<",{i}]],"mutations":[["n","+=",1]]}}]"#
                ),
            ));
            if i % 7 == 0 {
                log.push(txn(
                    1000 + i,
                    &format!(
                        r#"[{{"op":"delete","table":"A","where":[["name","==","a{}"]]}}]"#,
                        i / 2
                    ),
                ));
            }
        }
        log.push(cmd(
            5000,
            CommandKind::Lock {
                session: Uuid::from_u128(7),
                incarnation: Uuid::nil(),
                name: "L".into(),
                steal: false,
            },
        ));
        log
    }

    fn replay(log: &[Command]) -> ReplicatedState {
        let mut s = ReplicatedState::default();
        for c in log {
            s.apply(c, None);
        }
        s
    }

    #[test]
    fn aborted_inserts_get_fresh_uuids_each_time() {
        let s = replay(&log());
        let ops: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"op":"insert","table":"A","row":{"name":"x"}},{"op":"abort"}]"#,
        )
        .unwrap();
        let uuid_of = |s: &ReplicatedState| match s.execute_read_only("T", &ops, Uuid::nil(), None)
        {
            Outcome::Transact { result } => {
                let v: serde_json::Value = serde_json::from_str(&result).unwrap();
                assert_eq!(v[1]["error"], "aborted", "{v}");
                v[0]["uuid"][1].as_str().unwrap().to_string()
            }
            other => panic!("unexpected outcome {other:?}"),
        };
        // ovsdb-server answers each insert with a new random UUID, aborted or not.
        assert_ne!(uuid_of(&s), uuid_of(&s));
    }

    #[test]
    fn same_log_gives_identical_snapshots_and_digests() {
        let (a, b) = (replay(&log()), replay(&log()));
        assert_eq!(a.snapshot(), b.snapshot());
        assert_eq!(a.digest, b.digest);
        assert!(a.dbs["T"].db.rows("A").count() > 0);
    }

    #[test]
    fn snapshot_restores_to_the_same_state() {
        let a = replay(&log());
        let b = ReplicatedState::restore(&a.snapshot()).unwrap();
        assert_eq!(a.snapshot(), b.snapshot());
        assert_eq!(b.locks.owner("L"), Some(Uuid::from_u128(7)));
    }

    #[test]
    fn the_election_timer_is_replicated_and_kept_in_snapshots() {
        let mut a = replay(&log());
        assert_eq!(a.election_timer_ms, None);
        a.apply(&cmd(9998, CommandKind::SetElectionTimer { ms: 2000 }), None);
        assert_eq!(a.election_timer_ms, Some(2000));
        let b = ReplicatedState::restore(&a.snapshot()).unwrap();
        assert_eq!(b.election_timer_ms, Some(2000));
        assert_eq!(a.snapshot(), b.snapshot());
    }

    #[test]
    fn a_resent_command_applies_once() {
        let mut s = replay(&log());
        let first = s.apply(
            &txn(9999, r#"[{"op":"insert","table":"B","row":{"x":1}}]"#),
            None,
        );
        let rows = s.dbs["T"].db.rows("B").count();
        let again = s.apply(
            &txn(9999, r#"[{"op":"insert","table":"B","row":{"x":1}}]"#),
            None,
        );
        assert_eq!(first, again);
        assert_eq!(s.dbs["T"].db.rows("B").count(), rows);
    }

    /// A transaction of about `kb` KiB (one A row with a long name).
    fn big_txn(n: u128, kb: usize) -> Command {
        txn(
            n,
            &format!(
                r#"[{{"op":"insert","table":"A","row":{{"name":"{}","n":{n}}}}}]"#,
                "x".repeat(kb * 1024)
            ),
        )
    }

    /// A rows beyond those of `log()`.
    fn rows_named_long(s: &ReplicatedState) -> usize {
        s.dbs["T"].db.rows("A").count() - replay(&log()).dbs["T"].db.rows("A").count()
    }

    #[test]
    fn a_split_command_applies_once_at_its_last_piece() {
        let mut s = replay(&log());
        let whole = big_txn(7000, 40);
        let pieces = crate::command::split(whole.clone(), 8 * 1024);
        assert!(pieces.len() >= 5, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.payload_bytes() <= 8 * 1024 + 64));
        let (last, firsts) = pieces.split_last().unwrap();
        for p in firsts {
            assert_eq!(s.apply(p, None), Outcome::Pending);
        }
        assert_eq!(rows_named_long(&s), 0);
        assert!(s.incomplete_part_bytes() > 30 * 1024);
        let outcome = s.apply(last, None);
        assert!(matches!(outcome, Outcome::Transact { .. }), "{outcome:?}");
        assert_eq!(rows_named_long(&s), 1);
        assert_eq!(s.incomplete_part_bytes(), 0);
        // The same pieces again (a re-sent command): answered with the first outcome, once.
        for p in firsts {
            s.apply(p, None);
        }
        assert_eq!(s.apply(last, None), outcome);
        assert_eq!(rows_named_long(&s), 1);
        // Unsplit, the same command gives the same state as split.
        let mut t = replay(&log());
        t.apply(&whole, None);
        assert_eq!(
            rows_named_long(&t),
            1,
            "the whole command applies the same row"
        );
    }

    #[test]
    fn pieces_cut_by_a_leader_change_are_dropped_and_the_resend_applies() {
        let mut s = replay(&log());
        let pieces = crate::command::split(big_txn(7001, 20), 4 * 1024);
        s.apply(&pieces[0], None);
        s.apply(&pieces[1], None);
        // The new leader's blank entry.
        s.drop_incomplete_parts();
        // A stray later piece of the old attempt is ignored, not glued to nothing.
        assert_eq!(s.apply(&pieces[2], None), Outcome::Pending);
        assert_eq!(s.incomplete_part_bytes(), 0);
        // The re-sent command, interleaved with another command, applies.
        let mut outcome = Outcome::Pending;
        for (i, p) in pieces.iter().enumerate() {
            if i == 1 {
                s.apply(
                    &txn(7002, r#"[{"op":"insert","table":"B","row":{"x":1}}]"#),
                    None,
                );
            }
            outcome = s.apply(p, None);
        }
        assert!(matches!(outcome, Outcome::Transact { .. }), "{outcome:?}");
        assert_eq!(rows_named_long(&s), 1);
    }

    #[test]
    fn a_snapshot_taken_mid_command_completes_after_restore() {
        let mut s = replay(&log());
        let pieces = crate::command::split(big_txn(7003, 20), 4 * 1024);
        let half = pieces.len() / 2;
        for p in &pieces[..half] {
            s.apply(p, None);
        }
        let mut restored = ReplicatedState::restore(&s.snapshot()).unwrap();
        assert_eq!(restored.snapshot(), s.snapshot());
        for p in &pieces[half..] {
            s.apply(p, None);
            restored.apply(p, None);
        }
        assert_eq!(rows_named_long(&restored), 1);
        assert_eq!(restored.snapshot(), s.snapshot());
        assert_eq!(restored.digest, s.digest);
    }

    /// `encode_to` writes the image field by field with each database's length filled in after
    /// its data: the bytes must be exactly bincode's encoding of the whole image, which is what
    /// `restore` decodes (and what members of earlier versions send and keep).
    #[test]
    fn the_streamed_snapshot_is_bincode_of_the_whole_image() {
        let mut s = replay(&log());
        s.apply(&cmd(9997, CommandKind::SetElectionTimer { ms: 3000 }), None);
        s.apply(
            &cmd(
                9996,
                CommandKind::CreateDb {
                    schema: SCHEMA.replace(r#""name":"T""#, r#""name":"U""#),
                },
            ),
            None,
        );
        assert_eq!(s.dbs.len(), 2, "{:?}", s.dbs.keys().collect::<Vec<_>>());
        let pieces = crate::command::split(big_txn(7004, 20), 4 * 1024);
        for p in &pieces[..pieces.len() / 2] {
            s.apply(p, None);
        }
        assert!(s.incomplete_part_bytes() > 0);
        let whole = bincode::serialize(&s.snapshot_source().image()).unwrap();
        let streamed = s.snapshot();
        assert!(
            streamed == whole,
            "streamed snapshot differs from the image's bincode"
        );
        let back = ReplicatedState::restore(&streamed).unwrap();
        assert!(back.snapshot() == streamed);
        assert_eq!(back.election_timer_ms, Some(3000));
    }

    /// A snapshot is decoded from its file (a reader handing out a few bytes at a time here),
    /// giving the state decoding it from memory gives; a cut or empty file is an error.
    #[test]
    fn a_snapshot_restores_from_a_reader_in_small_pieces() {
        struct Trickle<'a>(&'a [u8], usize);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.1 = self.1 % 7 + 1;
                let n = self.1.min(buf.len()).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut s = replay(&log());
        s.apply(&cmd(9995, CommandKind::SetElectionTimer { ms: 2000 }), None);
        let bytes = s.snapshot();
        let back = ReplicatedState::restore_from(Trickle(&bytes, 0)).unwrap();
        assert!(back.snapshot() == bytes);
        assert_eq!(back.election_timer_ms, Some(2000));
        for cut in [0, 3, 4, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                ReplicatedState::restore_from(Trickle(&bytes[..cut], 0)).is_err(),
                "a snapshot cut at {cut} of {} bytes restored",
                bytes.len()
            );
        }
    }

    #[test]
    fn heavy_transactions_in_two_steps_match_apply() {
        let failing = txn(
            7101,
            &format!(
                r#"[{{"op":"insert","table":"A","row":{{"name":"{}"}}}},{{"op":"abort"}}]"#,
                "y".repeat(1100 * 1024)
            ),
        );
        let mut commands = vec![big_txn(7100, 1100), failing, big_txn(7100, 1100)];
        commands.extend(crate::command::split(big_txn(7102, 1200), 256 * 1024));
        let mut a = replay(&log());
        let mut b = replay(&log());
        let mut heavy = 0;
        for c in &commands {
            let direct = a.apply(c, None);
            let stepped = match b.begin(c, None) {
                Begun::Done(o) => o,
                Begun::Heavy(mut h) => {
                    heavy += 1;
                    h.run();
                    b.finish(*h, None)
                }
            };
            assert_eq!(direct, stepped);
            assert_eq!(a.snapshot(), b.snapshot());
            assert_eq!(a.digest, b.digest);
        }
        // The first, the aborted one and the split one; the re-sent first is deduplicated.
        assert_eq!(heavy, 3);
        assert_eq!(rows_named_long(&b), 2);
    }

    #[test]
    fn a_format_1_snapshot_still_restores() {
        let s = replay(&log());
        let src = s.snapshot_source();
        #[derive(Serialize)]
        struct Db1 {
            name: String,
            schema: String,
            data: Vec<u8>,
            last_txn_id: Uuid,
        }
        #[derive(Serialize)]
        struct V1 {
            format: u32,
            dbs: Vec<Db1>,
            locks: LockTable,
            recent: Vec<(Uuid, Outcome)>,
            digest: u64,
        }
        let v1 = V1 {
            format: 1,
            dbs: src
                .dbs
                .iter()
                .map(|(name, db, last, _)| Db1 {
                    name: name.clone(),
                    schema: db.schema().to_json().to_string(),
                    data: db.snapshot(),
                    last_txn_id: *last,
                })
                .collect(),
            locks: src.locks.clone(),
            recent: src.recent.to_vec(),
            digest: src.digest,
        };
        let restored = ReplicatedState::restore(&bincode::serialize(&v1).unwrap()).unwrap();
        // Everything but the history, which format 1 did not keep.
        assert!(restored.dbs["T"].history.is_empty());
        assert!(restored.dbs["T"].db == s.dbs["T"].db);
        assert_eq!(restored.dbs["T"].last_txn_id, s.dbs["T"].last_txn_id);
        assert_eq!(restored.digest, s.digest);
        assert_eq!(restored.locks, s.locks);
    }

    #[test]
    fn history_serves_changes_since_a_known_id() {
        let s = replay(&log());
        let d = &s.dbs["T"];
        assert_eq!(d.changes_since(&d.last_txn_id).unwrap().len(), 0);
        let (oldest, _) = d.history.iter().next().unwrap();
        let since_oldest = d.changes_since(&oldest).unwrap();
        assert_eq!(since_oldest.len(), d.history.len() - 1);
        // Each transaction of this log rewrites every row of A, so a change set holds more
        // atoms than the database: the atom bound keeps only the newest.
        assert_eq!(d.history.len(), 1);
        assert!(d.changes_since(&Uuid::from_u128(100)).is_none());
        assert!(d.changes_since(&Uuid::from_u128(424242)).is_none());
    }

    #[test]
    fn the_history_survives_a_snapshot() {
        // Inserts only: every change set is smaller than the database, so all are kept.
        let mut log = vec![create_db()];
        for i in 0..20u128 {
            log.push(txn(
                100 + i,
                &format!(r#"[{{"op":"insert","table":"A","row":{{"name":"a{i}","n":{i}}}}}]"#),
            ));
        }
        let s = replay(&log);
        assert_eq!(s.dbs["T"].history.len(), 20);
        let bytes = s.snapshot();
        let r = ReplicatedState::restore(&bytes).unwrap();
        assert_eq!(
            r.snapshot(),
            bytes,
            "restoring and snapshotting again is the identity"
        );
        let (before, after) = (&s.dbs["T"], &r.dbs["T"]);
        assert!(!before.history.is_empty());
        assert_eq!(after.history.len(), before.history.len());
        for (id, _) in before.history.iter() {
            let want = before.changes_since(&id).unwrap();
            let got = after.changes_since(&id).expect("known after the restore");
            assert_eq!(got.len(), want.len());
            for ((a, ca), (b, cb)) in got.iter().zip(&want) {
                assert_eq!(a, b);
                assert_eq!(**ca, **cb);
            }
        }
    }

    #[test]
    fn the_history_holds_no_more_atoms_than_the_database_and_keeps_the_newest() {
        let change = |atoms: usize| {
            let row = ovsdb::Row::new(
                Uuid::from_u128(1),
                Uuid::from_u128(2),
                vec![
                    ovsdb::Datum::from_set((0..atoms as i64).map(ovsdb::Atom::Integer).collect())
                        .unwrap(),
                ],
            );
            let mut c = ChangeSet::default();
            c.tables.entry("t".into()).or_default().insert(
                Uuid::from_u128(1),
                ovsdb::RowChange {
                    old: None,
                    new: Some(row),
                },
            );
            Arc::new(c)
        };
        let mut h = History::default();
        for i in 0..10u128 {
            h.push(Uuid::from_u128(i), change(10), 35);
        }
        // 3 entries of 10 atoms fit in a database of 35.
        assert_eq!(h.len(), 3);
        assert!(h.since(&Uuid::from_u128(7)).is_some());
        assert!(h.since(&Uuid::from_u128(6)).is_none());
        // One larger than the whole database is still kept, alone: the newest always is.
        h.push(Uuid::from_u128(10), change(100), 35);
        assert_eq!(h.len(), 1);
        assert_eq!(h.since(&Uuid::from_u128(10)).unwrap().len(), 0);
        for i in 11..300u128 {
            h.push(Uuid::from_u128(i), change(1), usize::MAX);
        }
        assert_eq!(h.len(), HISTORY_LEN);
    }
}

#[cfg(test)]
mod snapshot_cost {
    use super::*;
    use crate::command::CommandKind;

    /// How long the state is held while a snapshot image is made, for 100k OVN ports (applies
    /// wait that long). Run: cargo test --release -p halyard-raft snapshot_cost -- --ignored --nocapture
    #[test]
    #[ignore]
    fn snapshot_of_100k_ports() {
        let schema = std::fs::read_to_string("/usr/share/ovn/ovn-nb.ovsschema").unwrap();
        let mut s = ReplicatedState::default();
        s.apply(
            &Command {
                id: Uuid::from_u128(1),
                origin: 1,
                kind: CommandKind::CreateDb { schema },
            },
            None,
        );
        for sw in 0..100u128 {
            let mut ops = vec![format!(
                r#"{{"op":"insert","table":"Logical_Switch","row":{{"name":"sw{sw}"}},"uuid-name":"sw"}}"#
            )];
            for p in 0..1000 {
                ops.push(format!(r#"{{"op":"insert","table":"Logical_Switch_Port","row":{{"name":"p{sw}-{p}","addresses":"00:00:00:00:{:02x}:{:02x} 10.0.{sw}.{}"}},"uuid-name":"p{p}"}}"#, sw, p % 256, p % 250));
                ops.push(format!(r#"{{"op":"mutate","table":"Logical_Switch","where":[["_uuid","==",["named-uuid","sw"]]],"mutations":[["ports","insert",["named-uuid","p{p}"]]]}}"#));
            }
            let cmd = Command {
                id: Uuid::from_u128(10 + sw),
                origin: 1,
                kind: CommandKind::Transact {
                    db: "OVN_Northbound".into(),
                    ops: format!("[{}]", ops.join(",")),
                    session: Uuid::nil(),
                    wait_elapsed_ms: None,
                    rbac: None,
                },
            };
            s.apply(&cmd, None);
        }
        assert_eq!(
            s.dbs["OVN_Northbound"].db.row_count("Logical_Switch_Port"),
            100_000
        );
        let t = std::time::Instant::now();
        let bytes = s.snapshot();
        let took = t.elapsed();
        let t = std::time::Instant::now();
        let back = ReplicatedState::restore(&bytes).unwrap();
        eprintln!(
            "snapshot of 100k ports: {} bytes in {took:?}; restore in {:?}",
            bytes.len(),
            t.elapsed()
        );
        assert_eq!(back.snapshot(), bytes);
    }
}
