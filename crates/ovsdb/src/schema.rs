//! Database schemas (RFC 7047 §3.2 `<database-schema>`, `<table-schema>`,
//! `<column-schema>`, `<type>`, `<base-type>`) plus the Open vSwitch extensions:
//! `indexes`, `maxRows`, `isRoot` (and the "no table is root ⇒ every table is root" rule),
//! `ephemeral`, `mutable`, `refType`, version `x.y.z` and `cksum`.
//!
//! Parsing follows ovsdb-server's `ovsdb_schema_from_json` check by check, with its error
//! texts; `to_json` gives the normalised form of `get_schema` (protocol doc §3.6).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::atom::is_id;
use crate::datum::Datum;
use crate::error::OvsdbError;
use crate::parser::{Kind, Parser};

/// The five atomic types of RFC 7047.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AtomicType {
    Integer,
    Real,
    Boolean,
    String,
    Uuid,
}

impl AtomicType {
    pub fn as_str(self) -> &'static str {
        match self {
            AtomicType::Integer => "integer",
            AtomicType::Real => "real",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        }
    }

    pub fn from_name(s: &str) -> Option<AtomicType> {
        Some(match s {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            _ => return None,
        })
    }

    fn from_json(json: &Value) -> Result<AtomicType, OvsdbError> {
        let s = json.as_str().unwrap_or("");
        AtomicType::from_name(s)
            .ok_or_else(|| OvsdbError::syntax(json, format!("\"{s}\" is not an atomic-type")))
    }
}

/// Strong or weak reference (`refType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefType {
    Strong,
    Weak,
}

/// A `<base-type>`: an atomic type plus its constraints. Unset bounds hold the widest value
/// (as ovsdb-server stores them), which is also what decides whether `to_json` emits them.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseType {
    pub atomic: AtomicType,
    /// Allowed values, a set of atoms of `atomic` type.
    pub enum_: Option<Datum>,
    pub min_integer: i64,
    pub max_integer: i64,
    pub min_real: f64,
    pub max_real: f64,
    pub min_length: u32,
    pub max_length: u32,
    pub ref_table: Option<String>,
    pub ref_type: RefType,
    /// Index of `ref_table` in [`DatabaseSchema::tables`], resolved after parsing.
    pub ref_table_index: Option<usize>,
}

impl BaseType {
    pub fn new(atomic: AtomicType) -> BaseType {
        BaseType {
            atomic,
            enum_: None,
            min_integer: i64::MIN,
            max_integer: i64::MAX,
            min_real: -f64::MAX,
            max_real: f64::MAX,
            min_length: 0,
            max_length: u32::MAX,
            ref_table: None,
            ref_type: RefType::Strong,
            ref_table_index: None,
        }
    }

    /// True when this base type carries no constraint at all (so it prints as a bare
    /// atomic-type string).
    pub fn is_unconstrained(&self) -> bool {
        self.enum_.is_none()
            && self.min_integer == i64::MIN
            && self.max_integer == i64::MAX
            && self.min_real == -f64::MAX
            && self.max_real == f64::MAX
            && self.min_length == 0
            && self.max_length == u32::MAX
            && self.ref_table.is_none()
    }

    pub fn is_strong_ref(&self) -> bool {
        self.ref_table.is_some() && self.ref_type == RefType::Strong
    }

    pub fn is_weak_ref(&self) -> bool {
        self.ref_table.is_some() && self.ref_type == RefType::Weak
    }

    /// The same atomic type without any constraint (used by mutation arguments).
    pub fn without_constraints(&self) -> BaseType {
        BaseType::new(self.atomic)
    }

    fn from_json(json: &Value) -> Result<BaseType, OvsdbError> {
        if json.is_string() {
            return Ok(BaseType::new(AtomicType::from_json(json)?));
        }
        let mut p = Parser::new(json, "ovsdb type");
        let t = match p.required("type", Kind::String) {
            Some(t) => AtomicType::from_json(t)?,
            None => return Err(p.take_error().expect("parser error")),
        };
        let mut base = BaseType::new(t);
        let mut error = None;
        if let Some(e) = p.optional("enum", Kind::Any) {
            let enum_type = ColumnType {
                key: BaseType::new(t),
                value: None,
                min: 0,
                max: u32::MAX,
            };
            match Datum::from_json(e, &enum_type, &mut None) {
                Ok(d) => base.enum_ = Some(d),
                Err(e) => error = Some(e),
            }
        } else {
            match t {
                AtomicType::Integer => {
                    let min = p.optional("minInteger", Kind::Integer);
                    let max = p.optional("maxInteger", Kind::Integer);
                    if let Some(crate::atom::JsonNum::Int(i)) =
                        min.and_then(crate::atom::json_number)
                    {
                        base.min_integer = i;
                    }
                    if let Some(crate::atom::JsonNum::Int(i)) =
                        max.and_then(crate::atom::json_number)
                    {
                        base.max_integer = i;
                    }
                    if base.min_integer > base.max_integer {
                        error = Some(OvsdbError::syntax(json, "minInteger exceeds maxInteger"));
                    }
                }
                AtomicType::Real => {
                    let min = p.optional("minReal", Kind::Number);
                    let max = p.optional("maxReal", Kind::Number);
                    if let Some(v) = min.and_then(Value::as_f64) {
                        base.min_real = v;
                    }
                    if let Some(v) = max.and_then(Value::as_f64) {
                        base.max_real = v;
                    }
                    if base.min_real > base.max_real {
                        error = Some(OvsdbError::syntax(json, "minReal exceeds maxReal"));
                    }
                }
                AtomicType::String => {
                    for (name, slot) in [("minLength", 0usize), ("maxLength", 1)] {
                        if error.is_some() {
                            break;
                        }
                        if let Some(v) = p.optional(name, Kind::Integer) {
                            match crate::atom::json_number(v) {
                                Some(crate::atom::JsonNum::Int(i))
                                    if (0..=u32::MAX as i64).contains(&i) =>
                                {
                                    if slot == 0 {
                                        base.min_length = i as u32;
                                    } else {
                                        base.max_length = i as u32;
                                    }
                                }
                                _ => {
                                    error = Some(OvsdbError::syntax(
                                        v,
                                        format!("{name} out of valid range 0 to {}", u32::MAX),
                                    ))
                                }
                            }
                        }
                    }
                    if error.is_none() && base.min_length > base.max_length {
                        error = Some(OvsdbError::syntax(json, "minLength exceeds maxLength"));
                    }
                }
                AtomicType::Uuid => {
                    if let Some(rt) = p.optional("refTable", Kind::Id) {
                        base.ref_table = Some(rt.as_str().unwrap_or_default().to_string());
                        if let Some(kind) = p.optional("refType", Kind::Id) {
                            match kind.as_str().unwrap_or_default() {
                                "strong" => base.ref_type = RefType::Strong,
                                "weak" => base.ref_type = RefType::Weak,
                                other => {
                                    error = Some(OvsdbError::syntax(
                                        json,
                                        format!(
                                        "refType must be \"strong\" or \"weak\" (not \"{other}\")"
                                    ),
                                    ))
                                }
                            }
                        }
                    }
                }
                AtomicType::Boolean => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => p.finish().map(|_| base),
        }
    }

    fn to_json(&self) -> Value {
        if self.is_unconstrained() {
            return json!(self.atomic.as_str());
        }
        let mut m = Map::new();
        m.insert("type".into(), json!(self.atomic.as_str()));
        if let Some(e) = &self.enum_ {
            m.insert("enum".into(), e.to_json());
        }
        if self.min_integer != i64::MIN {
            m.insert("minInteger".into(), json!(self.min_integer));
        }
        if self.max_integer != i64::MAX {
            m.insert("maxInteger".into(), json!(self.max_integer));
        }
        if self.min_real != -f64::MAX {
            m.insert("minReal".into(), crate::atom::real_to_json(self.min_real));
        }
        if self.max_real != f64::MAX {
            m.insert("maxReal".into(), crate::atom::real_to_json(self.max_real));
        }
        if self.min_length != 0 {
            m.insert("minLength".into(), json!(self.min_length));
        }
        if self.max_length != u32::MAX {
            m.insert("maxLength".into(), json!(self.max_length));
        }
        if let Some(t) = &self.ref_table {
            m.insert("refTable".into(), json!(t));
            if self.ref_type == RefType::Weak {
                m.insert("refType".into(), json!("weak"));
            }
        }
        Value::Object(m)
    }
}

/// A column `<type>`: key, optional value (then it is a map), and element count bounds.
/// `max == u32::MAX` means "unlimited".
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    pub key: BaseType,
    pub value: Option<BaseType>,
    pub min: u32,
    pub max: u32,
}

impl ColumnType {
    pub fn scalar(atomic: AtomicType) -> ColumnType {
        ColumnType {
            key: BaseType::new(atomic),
            value: None,
            min: 1,
            max: 1,
        }
    }

    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    pub fn is_scalar(&self) -> bool {
        self.min == 1 && self.max == 1 && self.value.is_none()
    }

    pub fn is_optional(&self) -> bool {
        self.min == 0 && self.max == 1
    }

    pub fn is_set(&self) -> bool {
        self.value.is_none() && !self.is_scalar()
    }

    /// "optional scalar" per the condition extension: min 0, max 1, no value.
    pub fn is_optional_scalar(&self) -> bool {
        self.min == 0 && self.max == 1 && self.value.is_none()
    }

    /// Whether any key or value holds a reference of the given kind.
    pub fn has_ref(&self, rt: RefType) -> bool {
        let f = |b: &BaseType| b.ref_table.is_some() && b.ref_type == rt;
        f(&self.key) || self.value.as_ref().is_some_and(f)
    }

    /// ovsdb-server's `ovsdb_type_to_english`, used in mutation errors:
    /// "set of 1 to 3 strings", "map of up to 2 (string, integer) pairs".
    pub fn to_english(&self) -> String {
        let key = self.key.atomic.as_str();
        if self.is_scalar() {
            return key.to_string();
        }
        let (kind, what) = match &self.value {
            Some(v) => ("map", format!("({key}, {}) pairs", v.atomic.as_str())),
            None => ("set", format!("{key}s")),
        };
        if self.max == u32::MAX {
            if self.min > 0 {
                format!("{kind} of {} or more {what}", self.min)
            } else {
                format!("{kind} of {what}")
            }
        } else if self.min > 0 {
            if self.min == self.max {
                format!("{kind} of exactly {} {what}", self.min)
            } else {
                format!("{kind} of {} to {} {what}", self.min, self.max)
            }
        } else {
            format!("{kind} of up to {} {what}", self.max)
        }
    }

    fn from_json(json: &Value) -> Result<ColumnType, OvsdbError> {
        if json.is_string() {
            return Ok(ColumnType {
                key: BaseType::from_json(json)?,
                value: None,
                min: 1,
                max: 1,
            });
        }
        if !json.is_object() {
            return Err(OvsdbError::syntax(json, "ovsdb type expected"));
        }
        let mut p = Parser::new(json, "ovsdb type");
        let key = p.required("key", Kind::StringOrObject);
        let value = p.optional("value", Kind::StringOrObject);
        let min = p.optional("min", Kind::Integer);
        let max = p.optional("max", Kind::IntegerOrString);
        p.finish()?;
        let key = BaseType::from_json(key.expect("checked"))?;
        let value = value.map(BaseType::from_json).transpose()?;
        let n_from = |v: Option<&Value>, dflt: u32| -> Result<u32, OvsdbError> {
            match v {
                None => Ok(dflt),
                Some(j) => match crate::atom::json_number(j) {
                    Some(crate::atom::JsonNum::Int(i)) if i >= 0 && i < u32::MAX as i64 => {
                        Ok(i as u32)
                    }
                    _ => Err(OvsdbError::syntax(j, "bad min or max value")),
                },
            }
        };
        let min = n_from(min, 1)?;
        let max = match max {
            Some(Value::String(s)) if s == "unlimited" => u32::MAX,
            other => n_from(other, 1)?,
        };
        if min > 1 || max < 1 {
            return Err(OvsdbError::syntax(
                json,
                "ovsdb type fails constraint checks",
            ));
        }
        Ok(ColumnType {
            key,
            value,
            min,
            max,
        })
    }

    pub fn to_json(&self) -> Value {
        if self.is_scalar() && self.key.is_unconstrained() {
            return self.key.to_json();
        }
        let mut m = Map::new();
        m.insert("key".into(), self.key.to_json());
        if let Some(v) = &self.value {
            m.insert("value".into(), v.to_json());
        }
        if self.min != 1 {
            m.insert("min".into(), json!(self.min));
        }
        if self.max != 1 {
            m.insert(
                "max".into(),
                if self.max == u32::MAX {
                    json!("unlimited")
                } else {
                    json!(self.max)
                },
            );
        }
        Value::Object(m)
    }
}

/// One column of a table. `index` is its position in [`TableSchema::columns`] (columns are
/// kept sorted by name) and in every [`crate::Row`] of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSchema {
    pub name: String,
    pub type_: ColumnType,
    pub ephemeral: bool,
    pub mutable: bool,
    pub index: usize,
}

impl ColumnSchema {
    fn from_json(json: &Value, name: &str) -> Result<ColumnSchema, OvsdbError> {
        let mut p = Parser::new(json, format!("schema for column {name}"));
        let mutable = p.optional("mutable", Kind::Boolean);
        let ephemeral = p.optional("ephemeral", Kind::Boolean);
        let type_json = p.required("type", Kind::StringOrObject);
        p.finish()?;
        let type_ = ColumnType::from_json(type_json.expect("checked"))?;
        Ok(ColumnSchema {
            name: name.to_string(),
            type_,
            ephemeral: ephemeral.and_then(Value::as_bool).unwrap_or(false),
            mutable: mutable.and_then(Value::as_bool).unwrap_or(true),
            index: 0,
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), self.type_.to_json());
        if self.ephemeral {
            m.insert("ephemeral".into(), json!(true));
        }
        if !self.mutable {
            m.insert("mutable".into(), json!(false));
        }
        Value::Object(m)
    }

    /// `mutable:false` is ignored for weak-reference columns, which the engine must be
    /// able to change when referenced rows go away.
    pub fn is_mutable(&self) -> bool {
        self.mutable || self.type_.has_ref(RefType::Weak)
    }
}

/// A column as named in conditions, `columns`, indexes...: one of the two implicit
/// columns or a schema column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColumnRef {
    Uuid,
    Version,
    Column(usize),
}

/// One table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub name: String,
    /// Sorted by name; `columns[i].index == i`.
    pub columns: Vec<ColumnSchema>,
    pub max_rows: Option<u64>,
    /// Effective root-ness (after the "no table is root ⇒ all root" rule).
    pub is_root: bool,
    /// `isRoot` as written in the schema.
    pub declared_root: bool,
    pub indexes: Vec<Vec<ColumnRef>>,
    by_name: NameIndex,
}

/// Names → positions, looked up on every operation of every transaction (`table`,
/// `row` members, conditions). Hashed (seeded foldhash, never iterated): bisection over
/// the 27 table names of OVN Northbound cost five string comparisons per lookup.
#[derive(Debug, Clone, PartialEq, Default)]
struct NameIndex(HashMap<String, usize, crate::database::LookupHasher>);

impl NameIndex {
    fn get(&self, name: &str) -> Option<usize> {
        self.0.get(name).copied()
    }
}

impl FromIterator<(String, usize)> for NameIndex {
    fn from_iter<I: IntoIterator<Item = (String, usize)>>(iter: I) -> NameIndex {
        NameIndex(iter.into_iter().collect())
    }
}

static UUID_TYPE: std::sync::LazyLock<ColumnType> =
    std::sync::LazyLock::new(|| ColumnType::scalar(AtomicType::Uuid));

impl TableSchema {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.by_name.get(name).map(|i| &self.columns[i])
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name)
    }

    /// Resolves a column name including `_uuid` and `_version`.
    pub fn column_ref(&self, name: &str) -> Option<ColumnRef> {
        match name {
            "_uuid" => Some(ColumnRef::Uuid),
            "_version" => Some(ColumnRef::Version),
            _ => self.column_index(name).map(ColumnRef::Column),
        }
    }

    pub fn column_ref_name(&self, c: ColumnRef) -> &str {
        match c {
            ColumnRef::Uuid => "_uuid",
            ColumnRef::Version => "_version",
            ColumnRef::Column(i) => &self.columns[i].name,
        }
    }

    pub fn column_ref_type(&self, c: ColumnRef) -> &ColumnType {
        match c {
            ColumnRef::Uuid | ColumnRef::Version => &UUID_TYPE,
            ColumnRef::Column(i) => &self.columns[i].type_,
        }
    }

    fn from_json(json: &Value, name: &str) -> Result<TableSchema, OvsdbError> {
        let mut p = Parser::new(json, format!("table schema for table {name}"));
        let columns = p.required("columns", Kind::Object);
        let max_rows = p.optional("maxRows", Kind::Integer);
        let is_root = p.optional("isRoot", Kind::Boolean);
        let indexes = p.optional("indexes", Kind::Array);
        p.finish()?;
        let max_rows = match max_rows.and_then(crate::atom::json_number) {
            Some(crate::atom::JsonNum::Int(n)) if n <= 0 => {
                return Err(OvsdbError::syntax(json, "maxRows must be at least 1"))
            }
            Some(crate::atom::JsonNum::Int(n)) if n < u32::MAX as i64 => Some(n as u64),
            _ => None,
        };
        let columns = columns.and_then(Value::as_object).expect("checked");
        if columns.is_empty() {
            return Err(OvsdbError::syntax(
                json,
                "table must have at least one column",
            ));
        }
        let mut cols: Vec<ColumnSchema> = Vec::new();
        let mut names: Vec<&String> = columns.keys().collect();
        names.sort();
        for cname in names {
            check_name(json, cname)?;
            cols.push(ColumnSchema::from_json(&columns[cname.as_str()], cname)?);
        }
        for (i, c) in cols.iter_mut().enumerate() {
            c.index = i;
        }
        let by_name: NameIndex = cols
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let mut t = TableSchema {
            name: name.to_string(),
            columns: cols,
            max_rows,
            is_root: is_root.and_then(Value::as_bool).unwrap_or(false),
            declared_root: is_root.and_then(Value::as_bool).unwrap_or(false),
            indexes: Vec::new(),
            by_name,
        };
        if let Some(indexes) = indexes.and_then(Value::as_array) {
            for ij in indexes {
                let index = t.parse_column_set(ij)?;
                if index.is_empty() {
                    return Err(OvsdbError::syntax(
                        json,
                        "index must have at least one column",
                    ));
                }
                for c in &index {
                    if let ColumnRef::Column(i) = c {
                        if t.columns[*i].ephemeral {
                            return Err(OvsdbError::syntax(
                                json,
                                format!(
                                    "ephemeral columns (such as {}) may not be indexed",
                                    t.columns[*i].name
                                ),
                            ));
                        }
                    }
                }
                t.indexes.push(index);
            }
        }
        Ok(t)
    }

    /// An array of distinct column names (`ovsdb_column_set_from_json`).
    pub fn parse_column_set<'a>(
        &self,
        json: impl crate::json::JsonLike<'a>,
    ) -> Result<Vec<ColumnRef>, OvsdbError> {
        let bad = || OvsdbError::syntax(json, "array of distinct column names expected");
        let arr = json.elems().ok_or_else(bad)?;
        let mut out = Vec::with_capacity(arr.len());
        for s in arr {
            let s = s.as_str().ok_or_else(bad)?;
            let c = self.column_ref(s).ok_or_else(|| {
                OvsdbError::syntax(json, format!("{s} is not a valid column name"))
            })?;
            if out.contains(&c) {
                return Err(bad());
            }
            out.push(c);
        }
        Ok(out)
    }

    fn to_json(&self, all_root: bool) -> Value {
        let mut m = Map::new();
        let mut cols = Map::new();
        for c in &self.columns {
            cols.insert(c.name.clone(), c.to_json());
        }
        m.insert("columns".into(), Value::Object(cols));
        if !all_root && self.is_root {
            m.insert("isRoot".into(), json!(true));
        }
        if let Some(n) = self.max_rows {
            m.insert("maxRows".into(), json!(n));
        }
        if !self.indexes.is_empty() {
            let idx: Vec<Value> = self
                .indexes
                .iter()
                .map(|i| Value::Array(i.iter().map(|c| json!(self.column_ref_name(*c))).collect()))
                .collect();
            m.insert("indexes".into(), Value::Array(idx));
        }
        Value::Object(m)
    }
}

fn check_name(json: &Value, name: &str) -> Result<(), OvsdbError> {
    if name.starts_with('_') {
        Err(OvsdbError::syntax(
            json,
            "names beginning with \"_\" are reserved",
        ))
    } else if !is_id(name) {
        Err(OvsdbError::syntax(json, "name must be a valid id"))
    } else {
        Ok(())
    }
}

/// A whole database schema.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseSchema {
    pub name: String,
    pub version: Option<String>,
    pub cksum: Option<String>,
    /// Sorted by name.
    pub tables: Vec<TableSchema>,
    by_name: NameIndex,
}

impl DatabaseSchema {
    pub fn from_json(json: &Value) -> Result<DatabaseSchema, OvsdbError> {
        let mut p = Parser::new(json, "database schema");
        let name = p.required("name", Kind::Id);
        let version = p.optional("version", Kind::String);
        let cksum = p.optional("cksum", Kind::String);
        let tables = p.required("tables", Kind::Object);
        p.finish()?;
        let version = version.and_then(Value::as_str).map(str::to_string);
        if let Some(v) = &version {
            if !is_valid_version(v) {
                return Err(OvsdbError::syntax(
                    json,
                    format!("schema version \"{v}\" not in format x.y.z"),
                ));
            }
        }
        let tables = tables.and_then(Value::as_object).expect("checked");
        let mut names: Vec<&String> = tables.keys().collect();
        names.sort();
        let mut ts = Vec::new();
        for tname in names {
            check_name(json, tname)?;
            ts.push(TableSchema::from_json(&tables[tname.as_str()], tname)?);
        }
        if !ts.iter().any(|t| t.is_root) {
            for t in &mut ts {
                t.is_root = true;
            }
        }
        let by_name: NameIndex = ts
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        for t in &mut ts {
            for c in &mut t.columns {
                for (base, which) in [
                    (Some(&mut c.type_.key), "key"),
                    (c.type_.value.as_mut(), "value"),
                ] {
                    let Some(base) = base else { continue };
                    if let Some(rt) = &base.ref_table {
                        match by_name.get(rt) {
                            Some(i) => base.ref_table_index = Some(i),
                            None => {
                                return Err(OvsdbError::syntax_msg(format!(
                                    "column {} {which} refers to undefined table {rt}",
                                    c.name
                                )))
                            }
                        }
                    }
                }
            }
        }
        // A strong reference to a non-root table cannot be ephemeral (ovsdb-server forces
        // it persistent: replaying a log would otherwise garbage-collect live rows).
        let roots: Vec<bool> = ts.iter().map(|t| t.is_root).collect();
        for t in &mut ts {
            for c in &mut t.columns {
                let strong_nonroot = |b: &BaseType| {
                    b.is_strong_ref() && b.ref_table_index.is_some_and(|i| !roots[i])
                };
                if strong_nonroot(&c.type_.key)
                    || c.type_.value.as_ref().is_some_and(strong_nonroot)
                {
                    c.ephemeral = false;
                }
            }
        }
        Ok(DatabaseSchema {
            name: name.and_then(Value::as_str).unwrap_or_default().to_string(),
            version,
            cksum: cksum.and_then(Value::as_str).map(str::to_string),
            tables: ts,
            by_name,
        })
    }

    /// The normalised JSON of `get_schema` (protocol doc §3.6).
    pub fn to_json(&self) -> Value {
        let all_root = self.tables.iter().all(|t| t.is_root);
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if let Some(v) = &self.version {
            m.insert("version".into(), json!(v));
        }
        if let Some(c) = &self.cksum {
            m.insert("cksum".into(), json!(c));
        }
        let mut tables = Map::new();
        for t in &self.tables {
            tables.insert(t.name.clone(), t.to_json(all_root));
        }
        m.insert("tables".into(), Value::Object(tables));
        Value::Object(m)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.by_name.get(name).map(|i| &self.tables[i])
    }

    pub fn table_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name)
    }

    /// Turns every ephemeral column persistent (clustered databases do not support
    /// ephemeral columns); returns how many columns changed.
    pub fn make_all_persistent(&mut self) -> usize {
        let mut n = 0;
        for t in &mut self.tables {
            for c in &mut t.columns {
                if c.ephemeral {
                    c.ephemeral = false;
                    n += 1;
                }
            }
        }
        n
    }
}

fn is_valid_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && p.parse::<u32>().is_ok()
        })
}
