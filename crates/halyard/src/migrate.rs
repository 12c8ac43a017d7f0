//! Moving an ovsdb-server deployment to Halyard: `halyard create-cluster --from FILE` reads a
//! standalone or clustered ovsdb-server database file (see `ovsdb_file`) and seeds the new
//! cluster with its schema and rows.
//!
//! The rows travel as one ordinary OVSDB transaction — an `insert` per row with the row's
//! original UUID (the `uuid` extension of insert, ovsdb-server 2.13+) — proposed right after
//! the cluster's `CreateDb`, before any client is served. So every member builds the same
//! state through the normal apply path (no special command kind), references keep pointing
//! where they pointed, and OVN daemons that remember UUIDs find them again. The transaction is
//! executed once at `create-cluster` time on a scratch copy, so a file the engine would refuse
//! fails there, before anything is written.
//!
//! Between `create-cluster` and the first `serve` the transaction waits in
//! `DATA_DIR/halyard-import.json`; `serve` proposes it and deletes the file. If the process
//! dies in between, the next `serve` finds the rows already there (by UUID) and only deletes
//! the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use halyard_raft::Member;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::ovsdb_file::{self, Contents};

const IMPORT_FILE: &str = "halyard-import.json";

/// A database to seed: its name and the operations of its initial transaction.
#[derive(serde::Serialize, serde::Deserialize)]
struct Import {
    db: String,
    ops: Vec<Value>,
}

/// Reads `path` and returns its schema and the transaction that recreates its rows.
pub fn read_database_file(path: &Path) -> Result<(Value, Vec<Value>, Contents)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let contents = ovsdb_file::load(&bytes)
        .with_context(|| format!("{} is not a readable OVSDB database file", path.display()))?;
    let schema = contents.schema.clone();
    ovsdb::DatabaseSchema::from_json(&schema)
        .with_context(|| format!("{}: invalid schema", path.display()))?;
    let ops = insert_ops(&contents);
    Ok((schema, ops, contents))
}

/// One `insert` per row, with the row's own UUID.
fn insert_ops(contents: &Contents) -> Vec<Value> {
    let mut ops = Vec::new();
    for (table, rows) in &contents.tables {
        for (uuid, row) in rows {
            let mut row = row.clone();
            row.remove("_uuid");
            row.remove("_version");
            ops.push(json!({"op": "insert", "table": table, "uuid": uuid, "row": row}));
        }
    }
    ops
}

/// A `TxnEnv` for the scratch run: fresh UUIDs, no locks (the import has no `wait`).
struct ScratchEnv;

impl ovsdb::TxnEnv for ScratchEnv {
    fn new_uuid(&mut self) -> Uuid {
        Uuid::new_v4()
    }
    fn has_lock(&self, _lock: &str) -> bool {
        false
    }
    fn wait_elapsed_ms(&self) -> u64 {
        0
    }
}

/// Runs `ops` against an empty database of `schema` and fails with the engine's words if any
/// operation fails.
pub fn check_import(schema: &Value, ops: &[Value]) -> Result<()> {
    let parsed = ovsdb::DatabaseSchema::from_json(schema)?;
    let mut db = ovsdb::Database::new(Arc::new(parsed));
    let out = db.transact(ops, &mut ScratchEnv);
    first_error(&out.result).map_or(Ok(()), |e| bail!("the data would not load: {e}"))
}

/// The first error in a `transact` result array, in words.
fn first_error(result: &Value) -> Option<String> {
    result.as_array()?.iter().enumerate().find_map(|(i, r)| {
        let e = r.get("error")?.as_str()?;
        let details = r.get("details").and_then(Value::as_str).unwrap_or("");
        Some(format!("operation {i}: {e}: {details}"))
    })
}

/// Records the imports for `serve` to propose.
pub fn stage(data_dir: &Path, imports: Vec<(Value, String, Vec<Value>)>) -> Result<()> {
    if imports.is_empty() {
        return Ok(());
    }
    let imports: Vec<Import> = imports
        .into_iter()
        .map(|(_, db, ops)| Import { db, ops })
        .collect();
    let path = import_path(data_dir);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&imports)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

fn import_path(data_dir: &Path) -> PathBuf {
    data_dir.join(IMPORT_FILE)
}

/// Proposes staged imports (called by `serve` before it serves clients).
pub async fn apply_staged(member: &Member, data_dir: &Path) -> Result<()> {
    let path = import_path(data_dir);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(());
    };
    let imports: Vec<Import> =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", path.display()))?;
    for import in imports {
        let already = import.ops.first().and_then(|op| {
            let table = op["table"].as_str()?;
            let uuid = Uuid::parse_str(op["uuid"].as_str()?).ok()?;
            Some(member.with_state(|s| {
                s.dbs
                    .get(&import.db)
                    .is_some_and(|d| d.db.row(table, &uuid).is_some())
            }))
        });
        if already == Some(true) {
            tracing::info!(db = %import.db, "imported rows already present");
            continue;
        }
        let n = import.ops.len();
        // Inserts only, no `wait`: one run.
        let result = match member
            .transact(&import.db, &import.ops, Uuid::new_v4(), None, 0)
            .await
            .with_context(|| format!("importing the rows of {}", import.db))?
        {
            halyard_raft::Transaction::Done(result) => result,
            halyard_raft::Transaction::Blocked { .. } => {
                bail!("importing the rows of {}: blocked on a wait", import.db)
            }
        };
        if let Some(e) = first_error(&result) {
            bail!(
                "importing the rows of {} failed: {e} (the import stays in {} for another try)",
                import.db,
                path.display()
            );
        }
        tracing::info!(db = %import.db, rows = n, "imported the database file's rows");
    }
    std::fs::remove_file(&path)?;
    Ok(())
}

/// `create-cluster --from`: reads each file and checks that its rows load. Returns, per file,
/// its schema, its database name and its import transaction.
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<(Value, String, Vec<Value>)>> {
    let mut out: Vec<(Value, String, Vec<Value>)> = Vec::new();
    for path in paths {
        let (schema, ops, contents) = read_database_file(path)?;
        let name = schema["name"].as_str().unwrap_or_default().to_string();
        if out.iter().any(|(_, n, _)| *n == name) {
            bail!(
                "{}: a database named {name} is already being imported",
                path.display()
            );
        }
        check_import(&schema, &ops).with_context(|| format!("{}", path.display()))?;
        let rows: usize = contents.tables.values().map(|t| t.len()).sum();
        tracing::info!(file = %path.display(), db = %name, rows, clustered = contents.clustered, "read database file");
        out.push((schema, name, ops));
    }
    Ok(out)
}
