//! `where` clauses (RFC 7047 §5.1 `<condition>`): the eight functions, the boolean
//! `true`/`false` conditions and the optional-scalar extension of ovsdb-server (ordering
//! functions on `min 0, max 1` integer/real columns, false when the column is empty).
//! Argument validation follows `ovsdb_clause_from_json` (protocol doc §5.3).

use uuid::Uuid;

use crate::atom::Atom;

use crate::datum::{Datum, NamedUuids};
use crate::error::{ErrorTag, OvsdbError};
use crate::json::JsonLike;
use crate::schema::{AtomicType, ColumnRef, TableSchema};

/// A condition function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Function {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
    Includes,
    Excludes,
}

impl Function {
    pub fn from_name(s: &str) -> Option<Function> {
        Some(match s {
            "<" => Function::Lt,
            "<=" => Function::Le,
            "==" => Function::Eq,
            "!=" => Function::Ne,
            ">=" => Function::Ge,
            ">" => Function::Gt,
            "includes" => Function::Includes,
            "excludes" => Function::Excludes,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Function::Lt => "<",
            Function::Le => "<=",
            Function::Eq => "==",
            Function::Ne => "!=",
            Function::Ge => ">=",
            Function::Gt => ">",
            Function::Includes => "includes",
            Function::Excludes => "excludes",
        }
    }
}

/// One clause of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// The boolean condition `true` or `false`.
    Const(bool),
    Compare {
        column: ColumnRef,
        function: Function,
        arg: Datum,
    },
}

/// A conjunction of clauses (an empty condition is true).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Condition {
    pub clauses: Vec<Clause>,
}

impl Condition {
    /// Parses a `where` array against `table`.
    pub fn from_json<'a>(
        table: &TableSchema,
        json: impl JsonLike<'a>,
        named: NamedUuids<'_, '_>,
    ) -> Result<Condition, OvsdbError> {
        let arr = json
            .elems()
            .ok_or_else(|| OvsdbError::syntax(json, "Parse error in condition."))?;
        let mut clauses = Vec::with_capacity(arr.len());
        for c in arr {
            clauses.push(Clause::from_json(table, c, named)?);
        }
        Ok(Condition { clauses })
    }

    /// A row UUID that every matching row must have (a `_uuid == X` clause), which lets a
    /// query look the row up instead of scanning the table.
    pub fn uuid_lookup(&self) -> Option<Uuid> {
        self.clauses.iter().find_map(|c| match c {
            Clause::Compare {
                column: ColumnRef::Uuid,
                function: Function::Eq,
                arg,
            } => arg.as_scalar().and_then(|a| a.as_uuid()).copied(),
            _ => None,
        })
    }

    /// The values that the clauses pin `columns` to, in that order, when every column has
    /// a `==` clause (or `includes` on a scalar column, which holds exactly when the single
    /// element is equal): then every matching row holds those values on `columns`, so an
    /// index on them finds every candidate.
    pub fn pinned(&self, table: &TableSchema, columns: &[ColumnRef]) -> Option<Vec<Datum>> {
        columns
            .iter()
            .map(|c| {
                self.clauses.iter().find_map(|cl| match cl {
                    Clause::Compare {
                        column,
                        function: Function::Eq,
                        arg,
                    } if column == c => Some(arg.clone()),
                    Clause::Compare {
                        column,
                        function: Function::Includes,
                        arg,
                    } if column == c && table.column_ref_type(*c).is_scalar() => Some(arg.clone()),
                    _ => None,
                })
            })
            .collect()
    }

    /// Whether the condition is the constant `false` somewhere.
    pub fn is_false(&self) -> bool {
        self.clauses
            .iter()
            .any(|c| matches!(c, Clause::Const(false)))
    }

    /// Evaluates the condition on a row given as its UUID, `_version` and columns.
    pub fn evaluate(&self, uuid: &Uuid, version: &Uuid, columns: &[Datum]) -> bool {
        self.clauses
            .iter()
            .all(|c| c.evaluate(uuid, version, columns))
    }
}

impl Clause {
    fn from_json<'a>(
        table: &TableSchema,
        json: impl JsonLike<'a>,
        named: NamedUuids<'_, '_>,
    ) -> Result<Clause, OvsdbError> {
        if let Some(b) = json.as_bool() {
            return Ok(Clause::Const(b));
        }
        let parse_err = || OvsdbError::syntax(json, "Parse error in condition.");
        let mut arr = json.elems().ok_or_else(parse_err)?;
        if arr.len() != 3 {
            return Err(parse_err());
        }
        let (c, f, arg_json) = (arr.next(), arr.next(), arr.next().expect("3 elements"));
        let (Some(col_name), Some(fname)) =
            (c.and_then(|c| c.as_str()), f.and_then(|f| f.as_str()))
        else {
            return Err(parse_err());
        };
        let column = table.column_ref(col_name).ok_or_else(|| {
            OvsdbError::new(
                ErrorTag::UnknownColumn,
                format!("No column {col_name} in table {}.", table.name),
            )
            .with_syntax(json)
        })?;
        let function = Function::from_name(fname).ok_or_else(|| {
            OvsdbError::new(
                ErrorTag::UnknownFunction,
                format!("No function named {fname}."),
            )
        })?;
        // The argument's element-count bounds depend on the function; the type itself is
        // not copied (it may hold an enum and a table name).
        let t = table.column_ref_type(column);
        let (mut min, mut max) = (t.min, t.max);
        match function {
            Function::Lt | Function::Le | Function::Gt | Function::Ge => {
                let numeric = matches!(t.key.atomic, AtomicType::Integer | AtomicType::Real);
                if !(t.is_scalar() || t.is_optional_scalar()) || !numeric {
                    return Err(OvsdbError::syntax(
                        json,
                        format!(
                            "Type mismatch: \"{}\" operator may not be applied to column {} of type {}.",
                            function.as_str(),
                            col_name,
                            t.to_english()
                        ),
                    ));
                }
                min = 1;
                max = 1;
            }
            Function::Eq | Function::Ne => {}
            Function::Includes => {
                if !t.is_scalar() {
                    min = 0;
                }
            }
            Function::Excludes => {
                if !t.is_scalar() {
                    min = 0;
                    max = u32::MAX;
                }
            }
        }
        let arg = Datum::from_json_bounded(arg_json, t, min, max, named)?;
        Ok(Clause::Compare {
            column,
            function,
            arg,
        })
    }

    fn evaluate(&self, uuid: &Uuid, version: &Uuid, columns: &[Datum]) -> bool {
        match self {
            Clause::Const(b) => *b,
            Clause::Compare {
                column,
                function,
                arg,
            } => {
                let tmp;
                let field = match column {
                    ColumnRef::Column(i) => &columns[*i],
                    ColumnRef::Uuid => {
                        tmp = Datum::from_atom(Atom::Uuid(*uuid));
                        &tmp
                    }
                    ColumnRef::Version => {
                        tmp = Datum::from_atom(Atom::Uuid(*version));
                        &tmp
                    }
                };
                match function {
                    Function::Eq => field == arg,
                    Function::Ne => field != arg,
                    Function::Includes => field.includes(arg),
                    Function::Excludes => field.excludes(arg),
                    Function::Lt | Function::Le | Function::Gt | Function::Ge => {
                        // Optional scalars: ordering is false when the column is empty.
                        let (Some(a), Some(b)) = (field.as_scalar(), arg.as_scalar()) else {
                            return false;
                        };
                        let o = a.cmp(b);
                        match function {
                            Function::Lt => o.is_lt(),
                            Function::Le => o.is_le(),
                            Function::Gt => o.is_gt(),
                            _ => o.is_ge(),
                        }
                    }
                }
            }
        }
    }
}
