//! Parsing `<monitor-request>`s (RFC 7047 §4.1.5, plus `where` for `monitor_cond` and
//! `monitor_cond_since`) and `<monitor-cond-change-request>`s, with ovsdb-server's error
//! objects (`ovsdb_jsonrpc_parse_monitor_request`, checked against 3.1).
//!
//! Rules the server follows and clients may rely on:
//! * the value of a table may be one request or an array of them; the columns of several
//!   requests are unioned, but a column named twice is an error, even across requests;
//! * without `columns` every column is monitored, `_version` included (but not `_uuid`,
//!   which is the key of a row update; `_uuid` may still be named explicitly and then is
//!   reported like a column);
//! * each column remembers the `select` of the request that named it, the table reports
//!   the union of all `select`s;
//! * every request's `where` is parsed, but only the first request's applies (a first
//!   request without `where` means "every row").

use std::collections::BTreeMap;

use serde_json::Value;

use super::filter::Filter;
use super::select::Select;
use crate::datum::Datum;
use crate::error::OvsdbError;
use crate::parser::{Kind, Parser};
use crate::schema::{ColumnRef, DatabaseSchema, TableSchema};

/// One monitored column, with what composing its row updates needs precomputed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MonitoredColumn {
    pub(crate) name: String,
    pub(crate) column: ColumnRef,
    /// The `select` of the request that named this column.
    pub(crate) select: Select,
    /// `max > 1`: a `modify` carries a diff rather than the new value.
    pub(crate) composite: bool,
    /// Omitted from v2 `initial` and `insert` when equal to this.
    pub(crate) default: Datum,
}

/// What is monitored of one table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableMonitor {
    /// Sorted by column (`_uuid`, `_version`, then schema order).
    pub(crate) columns: Vec<MonitoredColumn>,
    /// Union of the requests' `select`s.
    pub(crate) select: Select,
    pub(crate) filter: Filter,
}

/// Parses the `{table: request | [request…]}` param of a monitor method.
pub(crate) fn parse_requests(
    schema: &DatabaseSchema,
    conditional: bool,
    json: &Value,
) -> Result<BTreeMap<String, TableMonitor>, OvsdbError> {
    let Some(obj) = json.as_object() else {
        return Err(OvsdbError::syntax(json, "monitor-requests must be object"));
    };
    let mut tables = BTreeMap::new();
    for (name, value) in obj {
        let table = schema
            .table(name)
            .ok_or_else(|| OvsdbError::syntax_msg(format!("no table named {name}")))?;
        let mut tm = TableMonitor {
            columns: Vec::new(),
            select: Select::NONE,
            filter: Filter::All,
        };
        let mut filter = None;
        match value {
            Value::Array(reqs) => {
                for req in reqs {
                    parse_request(table, conditional, req, &mut tm, &mut filter)?;
                }
            }
            req => parse_request(table, conditional, req, &mut tm, &mut filter)?,
        }
        tm.columns.sort_by_key(|c| c.column);
        tm.filter = filter.unwrap_or_default();
        tables.insert(name.clone(), tm);
    }
    Ok(tables)
}

fn parse_request(
    table: &TableSchema,
    conditional: bool,
    req: &Value,
    tm: &mut TableMonitor,
    filter: &mut Option<Filter>,
) -> Result<(), OvsdbError> {
    let name = table.name();
    let mut p = object_parser(req, format!("table {name}"))?;
    let where_ = if conditional {
        p.optional("where", Kind::Array)
    } else {
        None
    };
    let columns = p.optional("columns", Kind::Array);
    let select_json = p.optional("select", Kind::Object);
    p.finish()?;

    let select = match select_json {
        None => Select::ALL,
        Some(sj) => {
            let mut p = Parser::new(sj, format!("table {name} select"));
            let mut select = Select::NONE;
            for (member, flag) in Select::MEMBERS {
                if p.optional(member, Kind::Boolean)
                    .and_then(Value::as_bool)
                    .unwrap_or(true)
                {
                    select |= flag;
                }
            }
            p.finish()?;
            select
        }
    };
    tm.select |= select;

    match columns {
        Some(cj) => {
            let names = cj.as_array().expect("checked by the parser");
            for n in names {
                let n = n
                    .as_str()
                    .ok_or_else(|| OvsdbError::syntax(cj, "array of column names expected"))?;
                let column = table.column_ref(n).ok_or_else(|| {
                    OvsdbError::syntax(cj, format!("{n} is not a valid column name"))
                })?;
                add_column(table, tm, column, select).map_err(|n| {
                    OvsdbError::syntax(cj, format!("column {n} mentioned more than once"))
                })?;
            }
        }
        None => {
            let all = std::iter::once(ColumnRef::Version)
                .chain((0..table.columns.len()).map(ColumnRef::Column));
            for column in all {
                add_column(table, tm, column, select).map_err(|n| {
                    OvsdbError::syntax_msg(format!("column {n} mentioned more than once"))
                })?;
            }
        }
    }

    if conditional {
        let f = match where_ {
            Some(w) => Filter::from_json(table, w)?,
            None => Filter::All,
        };
        filter.get_or_insert(f);
    }
    Ok(())
}

/// Adds a column; on a duplicate returns its name.
fn add_column<'t>(
    table: &'t TableSchema,
    tm: &mut TableMonitor,
    column: ColumnRef,
    select: Select,
) -> Result<(), &'t str> {
    let name = table.column_ref_name(column);
    if tm.columns.iter().any(|c| c.column == column) {
        return Err(name);
    }
    let t = table.column_ref_type(column);
    tm.columns.push(MonitoredColumn {
        name: name.to_string(),
        column,
        select,
        composite: t.max > 1,
        default: Datum::default_for(t),
    });
    Ok(())
}

/// A parser for a member that must be an object. ovsdb-server reports a non-object
/// without the `syntax` member, so that case is answered here.
fn object_parser(json: &Value, context: String) -> Result<Parser<&Value>, OvsdbError> {
    if !json.is_object() {
        return Err(OvsdbError::syntax_msg(format!(
            "Parsing {context} failed: Object expected."
        )));
    }
    Ok(Parser::new(json, context))
}

/// Parses the `{table: [{"where": …}…]}` param of `monitor_cond_change` against the tables
/// of a monitor. Returns the new condition of each table that gets one (for one table the
/// last `where` wins). Without `conditional` (a v1 monitor) the `where`s are not even
/// parsed, as in 3.1, and nothing is returned.
pub(crate) fn parse_cond_change(
    schema: &DatabaseSchema,
    monitored: &BTreeMap<String, TableMonitor>,
    conditional: bool,
    json: &Value,
) -> Result<Vec<(String, Filter)>, OvsdbError> {
    let Some(obj) = json.as_object() else {
        return Err(OvsdbError::syntax_msg(
            "monitor-cond-change-requests must be object",
        ));
    };
    let mut out = Vec::new();
    for (name, value) in obj {
        let table = schema
            .table(name)
            .ok_or_else(|| OvsdbError::syntax_msg(format!("no table named {name}")))?;
        if !monitored.contains_key(name) {
            return Err(OvsdbError::syntax_msg(format!(
                "no table named {name} in monitor session"
            )));
        }
        let Some(reqs) = value.as_array() else {
            return Err(OvsdbError::syntax_msg(format!(
                "table {name} no monitor-cond-change JSON array"
            )));
        };
        let mut last = None;
        for req in reqs {
            let mut p = object_parser(req, format!("table {name}"))?;
            let columns = p.optional("columns", Kind::Array);
            let where_ = p.optional("where", Kind::Array);
            p.finish()?;
            if columns.is_some() {
                return Err(OvsdbError::syntax(req, "changing columns is unsupported"));
            }
            if let (true, Some(w)) = (conditional, where_) {
                last = Some(Filter::from_json(table, w)?);
            }
        }
        if let Some(f) = last {
            out.push((name.clone(), f));
        }
    }
    Ok(out)
}
