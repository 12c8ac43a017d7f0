//! Rows: one table row as stored and as reported in change sets (RFC 7047 §3.1 `<row>`).
//! A row holds its UUID, its `_version` and one datum per schema column, indexed like
//! [`crate::TableSchema::columns`]. It is an `Arc` inside, so cloning is one increment.

use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::atom::Atom;
use crate::datum::Datum;
use crate::schema::{ColumnRef, TableSchema};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Row(Arc<RowData>);

#[derive(Debug, PartialEq, Eq, Hash)]
struct RowData {
    uuid: Uuid,
    version: Uuid,
    columns: Box<[Datum]>,
}

impl Row {
    pub fn new(uuid: Uuid, version: Uuid, columns: Vec<Datum>) -> Row {
        Row(Arc::new(RowData {
            uuid,
            version,
            columns: columns.into_boxed_slice(),
        }))
    }

    pub fn uuid(&self) -> &Uuid {
        &self.0.uuid
    }

    pub fn version(&self) -> &Uuid {
        &self.0.version
    }

    /// Atoms in its columns (each map pair counts once, as ovsdb-server counts them).
    pub fn atoms(&self) -> usize {
        self.0.columns.iter().map(Datum::len).sum()
    }

    /// All column datums, in schema column order.
    pub fn columns(&self) -> &[Datum] {
        &self.0.columns
    }

    /// The datum of schema column `index`.
    pub fn get(&self, index: usize) -> &Datum {
        &self.0.columns[index]
    }

    /// The datum of a column by name (including `_uuid` and `_version`).
    pub fn get_by_name(&self, table: &TableSchema, name: &str) -> Option<Datum> {
        table.column_ref(name).map(|c| self.get_ref(c))
    }

    /// The datum of a column reference; `_uuid`/`_version` are built on the fly.
    pub fn get_ref(&self, c: ColumnRef) -> Datum {
        match c {
            ColumnRef::Uuid => Datum::from_atom(Atom::Uuid(self.0.uuid)),
            ColumnRef::Version => Datum::from_atom(Atom::Uuid(self.0.version)),
            ColumnRef::Column(i) => self.0.columns[i].clone(),
        }
    }

    /// Whether two rows are the same object (cheap identity test).
    pub fn ptr_eq(&self, other: &Row) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// `{"_uuid":…,"_version":…,col:…}` with every column, as `select` without `columns`.
    pub fn to_json(&self, table: &TableSchema) -> Value {
        let mut m = Map::new();
        m.insert("_uuid".into(), Atom::Uuid(self.0.uuid).to_json());
        m.insert("_version".into(), Atom::Uuid(self.0.version).to_json());
        for (c, d) in table.columns.iter().zip(self.0.columns.iter()) {
            m.insert(c.name.clone(), d.to_json());
        }
        Value::Object(m)
    }
}
