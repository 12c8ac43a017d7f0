//! Snapshot encoding of a whole database (Halyard's own format, not ovsdb-server's file
//! format): compact, and byte-identical for equal states because tables are in schema
//! order, rows in UUID order and datums in canonical order.
//!
//! Layout: magic `HYDB`, format version 1, then per schema table: row count, and per row
//! its UUID (16 bytes), `_version` (16 bytes) and one datum per column. A datum is its
//! element count followed by the atoms (keys, then values for maps), each encoded by the
//! column's atomic type: integer = zigzag varint, real = 8 bytes little-endian, boolean =
//! 1 byte, string = varint length + UTF-8, uuid = 16 bytes. Counts are varints.
//!
//! A change set (one committed transaction, kept for `monitor_cond_since`) uses the same row
//! encoding: magic `HYCS`, then per schema table the number of changed rows, and per changed
//! row its UUID, a flags byte (1: the old row follows, 2: the new row follows, so 3 is a
//! modification), then those rows as above.

use std::sync::Arc;

use uuid::Uuid;

use crate::atom::Atom;
use crate::changes::{ChangeSet, RowChange};
use crate::database::{Database, Rows};
use crate::datum::Datum;
use crate::error::{ErrorTag, OvsdbError};
use crate::row::Row;
use crate::schema::{AtomicType, ColumnType, DatabaseSchema, TableSchema};

const MAGIC: &[u8; 4] = b"HYDB";
const FORMAT: u8 = 1;
const CHANGES_MAGIC: &[u8; 4] = b"HYCS";
const OLD_ROW: u8 = 1;
const NEW_ROW: u8 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_atom(out: &mut Vec<u8>, a: &Atom) {
    match a {
        Atom::Integer(i) => put_varint(out, ((i << 1) ^ (i >> 63)) as u64),
        Atom::Real(r) => out.extend_from_slice(&r.to_bits().to_le_bytes()),
        Atom::Boolean(b) => out.push(*b as u8),
        Atom::String(s) => {
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Atom::Uuid(u) => out.extend_from_slice(u.as_bytes()),
    }
}

/// Bytes encoded before they are handed to the writer: a snapshot streams to its file in
/// pieces of about this size instead of being built whole in memory.
const ENCODE_CHUNK: usize = 256 * 1024;

/// Writes the snapshot encoding of `db` to `w`; returns the number of bytes written.
pub(crate) fn encode_into<W: std::io::Write>(db: &Database, w: &mut W) -> std::io::Result<u64> {
    let mut out = Vec::with_capacity(ENCODE_CHUNK + 1024);
    let mut written = 0u64;
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    for (ti, _) in db.schema().tables.iter().enumerate() {
        let rows = &db.tables[ti].rows;
        put_varint(&mut out, rows.len() as u64);
        for (u, row) in rows.sorted() {
            out.extend_from_slice(u.as_bytes());
            put_row(&mut out, row);
            if out.len() >= ENCODE_CHUNK {
                w.write_all(&out)?;
                written += out.len() as u64;
                out.clear();
            }
        }
    }
    w.write_all(&out)?;
    Ok(written + out.len() as u64)
}

pub(crate) fn encode(db: &Database) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(db, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// A row's `_version` and columns (its UUID is written by the caller).
fn put_row(out: &mut Vec<u8>, row: &Row) {
    out.extend_from_slice(row.version().as_bytes());
    for d in row.columns() {
        put_varint(out, d.len() as u64);
        for k in d.keys() {
            put_atom(out, k);
        }
        for v in d.values() {
            put_atom(out, v);
        }
    }
}

fn encode_changes(schema: &DatabaseSchema, changes: &ChangeSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(CHANGES_MAGIC);
    for ts in &schema.tables {
        let Some(rows) = changes.table(&ts.name) else {
            put_varint(&mut out, 0);
            continue;
        };
        put_varint(&mut out, rows.len() as u64);
        for (u, change) in rows {
            out.extend_from_slice(u.as_bytes());
            let flags = change.old.as_ref().map_or(0, |_| OLD_ROW)
                | change.new.as_ref().map_or(0, |_| NEW_ROW);
            out.push(flags);
            for row in [&change.old, &change.new].into_iter().flatten() {
                put_row(&mut out, row);
            }
        }
    }
    out
}

fn decode_changes(schema: &DatabaseSchema, bytes: &[u8]) -> Result<ChangeSet, OvsdbError> {
    let mut r = Reader(Slice { b: bytes, pos: 0 });
    if r.take(4)? != CHANGES_MAGIC {
        return Err(bad("bad change set magic"));
    }
    let mut changes = ChangeSet::default();
    for ts in &schema.tables {
        let n = r.varint()? as usize;
        if n == 0 {
            continue;
        }
        let table = changes.tables.entry(ts.name.clone()).or_default();
        for _ in 0..n {
            let u = r.uuid()?;
            let flags = r.take(1)?[0];
            if flags == 0 || flags > (OLD_ROW | NEW_ROW) {
                return Err(bad("change flags"));
            }
            let old = if flags & OLD_ROW != 0 {
                Some(r.row(ts, u)?)
            } else {
                None
            };
            let new = if flags & NEW_ROW != 0 {
                Some(r.row(ts, u)?)
            } else {
                None
            };
            if table.insert(u, RowChange { old, new }).is_some() {
                return Err(bad("duplicate changed row"));
            }
        }
    }
    if r.0.remaining() != 0 {
        return Err(bad("trailing bytes"));
    }
    Ok(changes)
}

/// Where a [`Reader`] takes its bytes from: memory, or a stream of known length (a snapshot
/// file, decoded without holding its bytes).
trait Source {
    fn take(&mut self, n: usize) -> Result<&[u8], OvsdbError>;
    /// Bytes left: an element count above it is corrupt (every atom takes at least one byte),
    /// and is refused before anything is allocated for it.
    fn remaining(&self) -> u64;
}

struct Slice<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Source for Slice<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], OvsdbError> {
        if self.b.len() - self.pos < n {
            return Err(bad("truncated"));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn remaining(&self) -> u64 {
        (self.b.len() - self.pos) as u64
    }
}

struct Stream<R> {
    r: R,
    remaining: u64,
    buf: Vec<u8>,
}

impl<R: std::io::Read> Source for Stream<R> {
    fn take(&mut self, n: usize) -> Result<&[u8], OvsdbError> {
        if n as u64 > self.remaining {
            return Err(bad("truncated"));
        }
        self.buf.resize(n, 0);
        self.r.read_exact(&mut self.buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                bad("truncated")
            } else {
                bad(&format!("reading it failed: {e}"))
            }
        })?;
        self.remaining -= n as u64;
        Ok(&self.buf)
    }

    fn remaining(&self) -> u64 {
        self.remaining
    }
}

struct Reader<S>(S);

fn bad(what: &str) -> OvsdbError {
    OvsdbError::new(ErrorTag::SyntaxError, format!("invalid snapshot: {what}"))
}

impl<S: Source> Reader<S> {
    fn take(&mut self, n: usize) -> Result<&[u8], OvsdbError> {
        self.0.take(n)
    }

    fn varint(&mut self) -> Result<u64, OvsdbError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn uuid(&mut self) -> Result<Uuid, OvsdbError> {
        Ok(Uuid::from_bytes(
            self.take(16)?.try_into().expect("16 bytes"),
        ))
    }

    fn atom(&mut self, t: AtomicType) -> Result<Atom, OvsdbError> {
        Ok(match t {
            AtomicType::Integer => {
                let z = self.varint()?;
                Atom::Integer(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            AtomicType::Real => {
                let r = f64::from_bits(u64::from_le_bytes(
                    self.take(8)?.try_into().expect("8 bytes"),
                ));
                if !r.is_finite() {
                    return Err(bad("non-finite real"));
                }
                Atom::real(r)
            }
            AtomicType::Boolean => match self.take(1)?[0] {
                0 => Atom::Boolean(false),
                1 => Atom::Boolean(true),
                _ => return Err(bad("boolean")),
            },
            AtomicType::String => {
                let n = self.varint()? as usize;
                let s =
                    std::str::from_utf8(self.take(n)?).map_err(|_| bad("string is not UTF-8"))?;
                Atom::string(s)
            }
            AtomicType::Uuid => Atom::Uuid(self.uuid()?),
        })
    }

    fn datum(&mut self, t: &ColumnType) -> Result<Datum, OvsdbError> {
        let n = self.varint()? as usize;
        if n < t.min as usize || n > t.max as usize || n as u64 > self.0.remaining() {
            return Err(bad("element count outside the column's bounds"));
        }
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            keys.push(self.atom(t.key.atomic)?);
        }
        let d = match &t.value {
            None => Datum::from_set(keys),
            Some(vt) => {
                let mut pairs = Vec::with_capacity(n);
                for k in keys {
                    pairs.push((k, self.atom(vt.atomic)?));
                }
                Datum::from_map(pairs)
            }
        }
        .map_err(|_| bad("duplicate elements"))?;
        Ok(d)
    }

    /// A row of `table` with UUID `u`, as [`put_row`] wrote it.
    fn row(&mut self, table: &TableSchema, u: Uuid) -> Result<Row, OvsdbError> {
        let v = self.uuid()?;
        let mut cols = Vec::with_capacity(table.columns.len());
        for c in &table.columns {
            cols.push(self.datum(&c.type_)?);
        }
        Ok(Row::new(u, v, cols))
    }
}

pub(crate) fn decode(schema: Arc<DatabaseSchema>, bytes: &[u8]) -> Result<Database, OvsdbError> {
    decode_with(schema, Reader(Slice { b: bytes, pos: 0 }))
}

fn decode_with<S: Source>(
    schema: Arc<DatabaseSchema>,
    mut r: Reader<S>,
) -> Result<Database, OvsdbError> {
    if r.take(4)? != MAGIC {
        return Err(bad("bad magic"));
    }
    if r.take(1)?[0] != FORMAT {
        return Err(bad("unknown format version"));
    }
    let mut tables = Vec::with_capacity(schema.tables.len());
    for ts in &schema.tables {
        let n = r.varint()? as usize;
        let mut rows = Rows::default();
        for _ in 0..n {
            let u = r.uuid()?;
            let row = r.row(ts, u)?;
            if rows.insert(u, row).is_some() {
                return Err(bad("duplicate row"));
            }
        }
        tables.push(rows);
    }
    if r.0.remaining() != 0 {
        return Err(bad("trailing bytes"));
    }
    Database::from_parts(schema, tables)
}

impl Database {
    /// The whole state in a compact binary form; equal states give equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        encode(self)
    }

    /// [`Database::snapshot`] written to `w` in pieces, never whole in memory; returns the
    /// number of bytes written.
    pub fn write_snapshot<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<u64> {
        encode_into(self, w)
    }

    /// [`Database::from_snapshot`] from the next `len` bytes of `r` (a snapshot file), read as
    /// they are decoded: the encoded bytes are never held whole beside the database built from
    /// them. Reads exactly `len` bytes when it succeeds.
    pub fn from_snapshot_reader<R: std::io::Read>(
        schema: Arc<DatabaseSchema>,
        r: R,
        len: u64,
    ) -> Result<Database, OvsdbError> {
        let stream = Stream {
            r,
            remaining: len,
            buf: Vec::new(),
        };
        decode_with(schema, Reader(stream))
    }

    /// Rebuilds a database from [`Database::snapshot`] output for the same schema.
    pub fn from_snapshot(
        schema: Arc<DatabaseSchema>,
        bytes: &[u8],
    ) -> Result<Database, OvsdbError> {
        decode(schema, bytes)
    }
}

impl ChangeSet {
    /// The change set in the snapshot's row encoding (see the module header), for keeping the
    /// `monitor_cond_since` history in snapshots. Tables not in `schema` are left out.
    pub fn encode(&self, schema: &DatabaseSchema) -> Vec<u8> {
        encode_changes(schema, self)
    }

    /// Reads back [`ChangeSet::encode`] output for the same schema.
    pub fn decode(schema: &DatabaseSchema, bytes: &[u8]) -> Result<ChangeSet, OvsdbError> {
        decode_changes(schema, bytes)
    }
}
