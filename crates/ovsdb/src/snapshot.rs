//! Snapshot encoding of a whole database (Halyard's own format, not ovsdb-server's file
//! format): compact, and byte-identical for equal states because tables are in schema
//! order, rows in UUID order and datums in canonical order.
//!
//! Layout: magic `HYDB`, format version 1, then per schema table: row count, and per row
//! its UUID (16 bytes), `_version` (16 bytes) and one datum per column. A datum is its
//! element count followed by the atoms (keys, then values for maps), each encoded by the
//! column's atomic type: integer = zigzag varint, real = 8 bytes little-endian, boolean =
//! 1 byte, string = varint length + UTF-8, uuid = 16 bytes. Counts are varints.

use std::sync::Arc;

use uuid::Uuid;

use crate::atom::Atom;
use crate::database::{Database, Rows};
use crate::datum::Datum;
use crate::error::{ErrorTag, OvsdbError};
use crate::row::Row;
use crate::schema::{AtomicType, ColumnType, DatabaseSchema};

const MAGIC: &[u8; 4] = b"HYDB";
const FORMAT: u8 = 1;

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

pub(crate) fn encode(db: &Database) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    for (ti, _) in db.schema().tables.iter().enumerate() {
        let rows = &db.tables[ti].rows;
        put_varint(&mut out, rows.len() as u64);
        for (u, row) in rows.sorted() {
            out.extend_from_slice(u.as_bytes());
            out.extend_from_slice(row.version().as_bytes());
            for d in row.columns() {
                put_varint(&mut out, d.len() as u64);
                for k in d.keys() {
                    put_atom(&mut out, k);
                }
                for v in d.values() {
                    put_atom(&mut out, v);
                }
            }
        }
    }
    out
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

fn bad(what: &str) -> OvsdbError {
    OvsdbError::new(ErrorTag::SyntaxError, format!("invalid snapshot: {what}"))
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], OvsdbError> {
        if self.b.len() - self.pos < n {
            return Err(bad("truncated"));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
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
        if n < t.min as usize || n > t.max as usize || n > self.b.len() {
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
}

pub(crate) fn decode(schema: Arc<DatabaseSchema>, bytes: &[u8]) -> Result<Database, OvsdbError> {
    let mut r = Reader { b: bytes, pos: 0 };
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
            let v = r.uuid()?;
            let mut cols = Vec::with_capacity(ts.columns.len());
            for c in &ts.columns {
                cols.push(r.datum(&c.type_)?);
            }
            if rows.insert(u, Row::new(u, v, cols)).is_some() {
                return Err(bad("duplicate row"));
            }
        }
        tables.push(rows);
    }
    if r.pos != bytes.len() {
        return Err(bad("trailing bytes"));
    }
    Database::from_parts(schema, tables)
}

impl Database {
    /// The whole state in a compact binary form; equal states give equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        encode(self)
    }

    /// Rebuilds a database from [`Database::snapshot`] output for the same schema.
    pub fn from_snapshot(
        schema: Arc<DatabaseSchema>,
        bytes: &[u8],
    ) -> Result<Database, OvsdbError> {
        decode(schema, bytes)
    }
}
