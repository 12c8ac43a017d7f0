//! The condition of a monitored table (the `where` of `monitor_cond`, `monitor_cond_since`
//! and `monitor_cond_change`). Unlike a `transact` condition it is a **disjunction**: a row
//! is monitored when any clause holds (ovsdb-server's `ovsdb_condition_match_any_clause`;
//! checked against 3.1: `[["x","==",1],["x","==",2]]` selects both rows). An empty `where`
//! selects every row; `[false]` selects none.
//!
//! Parsing and clause evaluation are the engine's ([`crate::condition`]); each clause is
//! kept as a one-clause [`Condition`] so that evaluating it is that code.

use serde_json::Value;

use crate::condition::{Clause, Condition};
use crate::error::OvsdbError;
use crate::row::Row;
use crate::schema::TableSchema;

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Filter {
    /// No condition, an empty one, or one with a `true` clause.
    #[default]
    All,
    /// Rows for which any of these one-clause conditions holds (none when empty).
    Any(Vec<Condition>),
}

impl Filter {
    /// Parses a `where` array (already known to be an array) against `table`.
    pub(crate) fn from_json(table: &TableSchema, json: &Value) -> Result<Filter, OvsdbError> {
        let cond = Condition::from_json(table, json, &mut None)?;
        if cond.clauses.is_empty()
            || cond
                .clauses
                .iter()
                .any(|c| matches!(c, Clause::Const(true)))
        {
            return Ok(Filter::All);
        }
        Ok(Filter::Any(
            cond.clauses
                .into_iter()
                .filter(|c| !matches!(c, Clause::Const(false)))
                .map(|c| Condition { clauses: vec![c] })
                .collect(),
        ))
    }

    pub(crate) fn matches(&self, row: &Row) -> bool {
        match self {
            Filter::All => true,
            Filter::Any(clauses) => clauses
                .iter()
                .any(|c| c.evaluate(row.uuid(), row.version(), row.columns())),
        }
    }
}
