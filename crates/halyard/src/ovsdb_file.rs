//! ovsdb-server's database file format (OVS `ovsdb/log.c`, `ovsdb/file.c`, `ovsdb/raft.c`),
//! read for migration and written for backups.
//!
//! A file is a sequence of records, each a header line `<MAGIC> <LENGTH> <SHA-1>\n` followed
//! by LENGTH bytes: the JSON and its newline (the length and the SHA-1 both cover that
//! newline); MAGIC is `OVSDB JSON` for a standalone database and
//! `OVSDB CLUSTER` for a clustered one.
//!
//! * Standalone: record 0 is the schema; each later record is a transaction, an object
//!   `{TABLE: {UUID: ROW | null}, "_date": ms, "_comment": text, "_is_diff": bool}`. A null
//!   deletes the row; a ROW for a new UUID inserts it; for an existing UUID it updates the
//!   columns it names — with the new value, or, when `_is_diff` is true, with a diff: for a
//!   set the symmetric difference, for a map the keys to add, remove (same value) or change.
//!   Scalar columns (exactly one atom, no value type) always carry the new value.
//! * Clustered: record 0 is the header, whose `prev_data` is `[SCHEMA, DATA]` (the snapshot;
//!   DATA is a transaction applied to an empty database). Later records are Raft log entries
//!   (`term`, `index`, `data: [SCHEMA|null, TXN|null]`, ...) interleaved with votes and commit
//!   indexes. An entry with an index at or below earlier ones replaces them (log truncation);
//!   a non-null SCHEMA replaces the schema and TXN is then the whole converted database.
//!   `ovsdb-tool cluster-to-standalone` replays every entry; so does this reader.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

/// Magic of a standalone database file.
pub const STANDALONE_MAGIC: &str = "OVSDB JSON";
/// Magic of a clustered database file.
pub const CLUSTERED_MAGIC: &str = "OVSDB CLUSTER";

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("offset {offset}: {reason}")]
    Record { offset: usize, reason: String },
    #[error(
        "not an OVSDB database file (it starts with neither \"OVSDB JSON\" nor \"OVSDB CLUSTER\")"
    )]
    NotOvsdb,
    #[error("the file holds no schema")]
    NoSchema,
    #[error("{0}")]
    Data(String),
}

/// Appends one record.
pub fn write_record(out: &mut impl Write, magic: &str, json: &Value) -> std::io::Result<()> {
    let mut body = json.to_string().into_bytes();
    body.push(b'\n');
    let digest = Sha1::digest(&body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(out, "{magic} {} {hex}", body.len())?;
    out.write_all(&body)
}

/// The magic and the JSON of every complete record. A record cut short at the end of the file
/// (a crash while appending) is dropped, as ovsdb-server does; a damaged one elsewhere fails.
pub fn read_records(bytes: &[u8]) -> Result<(&'static str, Vec<Value>), FileError> {
    let magic = if bytes.starts_with(CLUSTERED_MAGIC.as_bytes()) {
        CLUSTERED_MAGIC
    } else if bytes.starts_with(STANDALONE_MAGIC.as_bytes()) {
        STANDALONE_MAGIC
    } else {
        return Err(FileError::NotOvsdb);
    };
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let err = |reason: String| FileError::Record {
            offset: pos,
            reason,
        };
        let Some(nl) = bytes[pos..].iter().position(|b| *b == b'\n') else {
            tracing::warn!(
                offset = pos,
                "ignoring a truncated record header at the end of the file"
            );
            break;
        };
        let header = std::str::from_utf8(&bytes[pos..pos + nl])
            .map_err(|_| err("header is not text".into()))?;
        let rest = header
            .strip_prefix(magic)
            .ok_or_else(|| err(format!("header {header:?} lacks {magic:?}")))?;
        let mut parts = rest.split_whitespace();
        let (Some(len), Some(sha), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err(format!("malformed header {header:?}")));
        };
        let len: usize = len
            .parse()
            .map_err(|_| err(format!("bad length in {header:?}")))?;
        let start = pos + nl + 1;
        if start + len > bytes.len() {
            tracing::warn!(
                offset = pos,
                "ignoring a truncated record at the end of the file"
            );
            break;
        }
        let body = &bytes[start..start + len];
        let digest: String = Sha1::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !digest.eq_ignore_ascii_case(sha) {
            if start + len >= bytes.len().saturating_sub(1) {
                tracing::warn!(offset = pos, "ignoring a damaged last record");
                break;
            }
            return Err(err(format!(
                "SHA-1 mismatch (header says {sha}, content has {digest})"
            )));
        }
        let json: Value =
            serde_json::from_slice(body).map_err(|e| err(format!("record is not JSON: {e}")))?;
        records.push(json);
        pos = start + len;
        // The record's own newline, and any blank line before the next header.
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
    }
    Ok((magic, records))
}

/// Rows by table name and row UUID (text), each a JSON object of column values.
pub type Tables = BTreeMap<String, BTreeMap<String, Map<String, Value>>>;

/// A database read from a file: its schema and its rows.
#[derive(Debug, Clone)]
pub struct Contents {
    pub schema: Value,
    pub tables: Tables,
    /// Whether it came from a clustered file.
    pub clustered: bool,
}

/// Reads a standalone or clustered database file into its final contents.
pub fn load(bytes: &[u8]) -> Result<Contents, FileError> {
    let (magic, records) = read_records(bytes)?;
    if magic == STANDALONE_MAGIC {
        let mut it = records.into_iter();
        let schema = it.next().ok_or(FileError::NoSchema)?;
        let mut db = Replay::new(schema);
        for txn in it {
            db.apply(&txn)?;
        }
        Ok(db.finish(false))
    } else {
        let mut it = records.into_iter();
        let header = it.next().ok_or(FileError::NoSchema)?;
        let mut db: Option<Replay> = None;
        if let Some(prev) = header.get("prev_data").and_then(Value::as_array) {
            db = Some(Replay::with_data(prev.first(), prev.get(1), None)?);
        }
        // Entries by index; a rewritten index truncates what followed it.
        let mut entries: BTreeMap<u64, Value> = BTreeMap::new();
        for r in it {
            let Some(index) = r.get("index").and_then(Value::as_u64) else {
                continue;
            };
            if r.get("term").is_none() {
                continue;
            }
            entries.split_off(&index);
            entries.insert(index, r);
        }
        for (_, entry) in entries {
            let Some(data) = entry.get("data").and_then(Value::as_array) else {
                continue;
            };
            let schema = data.first().filter(|s| !s.is_null());
            let txn = data.get(1).filter(|t| !t.is_null());
            match (schema, db.as_mut()) {
                (Some(_), previous) => {
                    let old = previous.map(|d| std::mem::replace(d, Replay::new(Value::Null)));
                    db = Some(Replay::with_data(schema, txn, old)?);
                }
                (None, Some(d)) => {
                    if let Some(txn) = txn {
                        d.apply(txn)?;
                    }
                }
                (None, None) => return Err(FileError::NoSchema),
            }
        }
        Ok(db.ok_or(FileError::NoSchema)?.finish(true))
    }
}

/// Replays transactions onto rows, knowing from the schema which columns are scalar.
struct Replay {
    schema: Value,
    tables: Tables,
}

impl Replay {
    fn new(schema: Value) -> Replay {
        Replay {
            schema,
            tables: Tables::new(),
        }
    }

    /// A database from a schema and, optionally, a transaction holding its whole contents (a
    /// snapshot or a conversion). A conversion entry with no data keeps the previous rows.
    fn with_data(
        schema: Option<&Value>,
        data: Option<&Value>,
        previous: Option<Replay>,
    ) -> Result<Replay, FileError> {
        let schema = schema.cloned().ok_or(FileError::NoSchema)?;
        let mut db = Replay::new(schema);
        match data {
            Some(d) => db.apply(d)?,
            None => {
                if let Some(p) = previous {
                    db.tables = p.tables;
                }
            }
        }
        Ok(db)
    }

    fn is_scalar(&self, table: &str, column: &str) -> bool {
        match &self.schema["tables"][table]["columns"][column]["type"] {
            Value::String(_) => true,
            Value::Object(t) => {
                let bound = |k: &str| t.get(k).map(|v| v.as_u64() == Some(1)).unwrap_or(true);
                t.get("value").is_none() && bound("min") && bound("max")
            }
            _ => true,
        }
    }

    fn apply(&mut self, txn: &Value) -> Result<(), FileError> {
        let Some(obj) = txn.as_object() else {
            return Err(FileError::Data(
                "a transaction record is not a JSON object".into(),
            ));
        };
        let is_diff = obj
            .get("_is_diff")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        for (table, rows) in obj {
            if table.starts_with('_') {
                continue;
            }
            let Some(rows) = rows.as_object() else {
                return Err(FileError::Data(format!(
                    "table {table}: rows are not an object"
                )));
            };
            for (uuid, row) in rows {
                match row {
                    Value::Null => {
                        self.tables.entry(table.clone()).or_default().remove(uuid);
                    }
                    Value::Object(cols) => {
                        let existing = self.tables.get(table).and_then(|t| t.get(uuid)).cloned();
                        let new_row = match existing {
                            None => cols.clone(),
                            Some(mut old) => {
                                for (col, value) in cols {
                                    let merged = match old.get(col) {
                                        Some(prev) if is_diff && !self.is_scalar(table, col) => {
                                            apply_diff(prev, value)?
                                        }
                                        _ => value.clone(),
                                    };
                                    old.insert(col.clone(), merged);
                                }
                                old
                            }
                        };
                        self.tables
                            .entry(table.clone())
                            .or_default()
                            .insert(uuid.clone(), new_row);
                    }
                    _ => {
                        return Err(FileError::Data(format!(
                            "table {table} row {uuid}: not an object or null"
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(mut self, clustered: bool) -> Contents {
        self.tables.retain(|_, rows| !rows.is_empty());
        Contents {
            schema: self.schema,
            tables: self.tables,
            clustered,
        }
    }
}

/// The atoms of a set (`["set", [...]]` or a bare atom) or the pairs of a map.
enum Datum {
    Set(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

fn parse_datum(v: &Value) -> Result<Datum, FileError> {
    if let Some([tag, inner]) = v.as_array().map(Vec::as_slice) {
        match tag.as_str() {
            Some("set") => return Ok(Datum::Set(inner.as_array().cloned().unwrap_or_default())),
            Some("map") => {
                let pairs = inner
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| match p.as_array().map(Vec::as_slice) {
                        Some([k, v]) => Ok((k.clone(), v.clone())),
                        _ => Err(FileError::Data(format!("bad map pair {p}"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Datum::Map(pairs));
            }
            _ => {}
        }
    }
    Ok(Datum::Set(vec![v.clone()]))
}

fn datum_json(d: Datum) -> Value {
    match d {
        Datum::Set(atoms) if atoms.len() == 1 => atoms.into_iter().next().unwrap_or(Value::Null),
        Datum::Set(atoms) => Value::Array(vec!["set".into(), Value::Array(atoms)]),
        Datum::Map(pairs) => Value::Array(vec![
            "map".into(),
            Value::Array(
                pairs
                    .into_iter()
                    .map(|(k, v)| Value::Array(vec![k, v]))
                    .collect(),
            ),
        ]),
    }
}

/// ovsdb_datum_apply_diff: sets take the symmetric difference; maps drop a key the diff gives
/// with the same value, change a key it gives with another value, and add new keys.
fn apply_diff(old: &Value, diff: &Value) -> Result<Value, FileError> {
    match (parse_datum(old)?, parse_datum(diff)?) {
        (Datum::Set(mut atoms), Datum::Set(d)) => {
            for a in d {
                match atoms.iter().position(|x| *x == a) {
                    Some(i) => {
                        atoms.remove(i);
                    }
                    None => atoms.push(a),
                }
            }
            Ok(datum_json(Datum::Set(atoms)))
        }
        (Datum::Map(mut pairs), Datum::Map(d)) => {
            for (k, v) in d {
                match pairs.iter().position(|(x, _)| *x == k) {
                    Some(i) if pairs[i].1 == v => {
                        pairs.remove(i);
                    }
                    Some(i) => pairs[i].1 = v,
                    None => pairs.push((k, v)),
                }
            }
            Ok(datum_json(Datum::Map(pairs)))
        }
        // An empty map may be written as an empty set by old writers; the diff decides.
        (Datum::Set(a), Datum::Map(d)) if a.is_empty() => Ok(datum_json(Datum::Map(d))),
        (Datum::Map(p), Datum::Set(d)) if p.is_empty() || d.is_empty() => Ok(if d.is_empty() {
            datum_json(Datum::Map(p))
        } else {
            datum_json(Datum::Set(d))
        }),
        _ => Err(FileError::Data(format!(
            "cannot apply diff {diff} to {old}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn record_round_trip_and_checksum() {
        let mut out = Vec::new();
        write_record(
            &mut out,
            STANDALONE_MAGIC,
            &json!({"name": "x", "tables": {}}),
        )
        .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        // 24 bytes of JSON and the newline.
        assert!(text.starts_with("OVSDB JSON 25 "), "{text}");
        let (magic, records) = read_records(&out).unwrap();
        assert_eq!(magic, STANDALONE_MAGIC);
        assert_eq!(records, vec![json!({"name": "x", "tables": {}})]);
        let mut bad = out.clone();
        let n = bad.len();
        bad[n - 3] = b'y';
        bad.extend_from_slice(&out);
        assert!(read_records(&bad).is_err());
    }

    #[test]
    fn diffs_follow_ovsdb_datum_apply_diff() {
        assert_eq!(
            apply_diff(&json!(["set", ["a", "b"]]), &json!("a")).unwrap(),
            json!("b")
        );
        assert_eq!(
            apply_diff(&json!("a"), &json!(["set", ["a", "c"]])).unwrap(),
            json!("c")
        );
        assert_eq!(
            apply_diff(&json!(["set", []]), &json!("a")).unwrap(),
            json!("a")
        );
        let old = json!(["map", [["a", "1"], ["b", "2"]]]);
        let diff = json!(["map", [["a", "1"], ["b", "3"], ["c", "4"]]]);
        assert_eq!(
            apply_diff(&old, &diff).unwrap(),
            json!(["map", [["b", "3"], ["c", "4"]]])
        );
    }
}
