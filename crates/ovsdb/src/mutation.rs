//! Mutations (RFC 7047 §5.1 `<mutation>`, used by the `mutate` operation): the arithmetic
//! mutators on integer/real scalars and sets, and `insert`/`delete` on sets and maps, with
//! ovsdb-server's failure texts (protocol doc §5.4). Unlike ovsdb-server 3.1,
//! `INT64_MIN *= -1` is reported as out of range (as `/= -1` and `%= -1` are).

use crate::atom::Atom;
use crate::datum::{Datum, NamedUuids};
use crate::error::{ErrorTag, OvsdbError};
use crate::json::JsonLike;
use crate::schema::{AtomicType, ColumnType, TableSchema};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutator {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Insert,
    Delete,
}

impl Mutator {
    pub fn from_name(s: &str) -> Option<Mutator> {
        Some(match s {
            "+=" => Mutator::Add,
            "-=" => Mutator::Sub,
            "*=" => Mutator::Mul,
            "/=" => Mutator::Div,
            "%=" => Mutator::Mod,
            "insert" => Mutator::Insert,
            "delete" => Mutator::Delete,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mutator::Add => "+=",
            Mutator::Sub => "-=",
            Mutator::Mul => "*=",
            Mutator::Div => "/=",
            Mutator::Mod => "%=",
            Mutator::Insert => "insert",
            Mutator::Delete => "delete",
        }
    }
}

/// One parsed mutation: column index, mutator and argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub column: usize,
    pub mutator: Mutator,
    pub arg: Datum,
}

/// Parses a `mutations` array.
pub fn parse_mutations<'a>(
    table: &TableSchema,
    json: impl JsonLike<'a>,
    named: NamedUuids<'_, '_>,
) -> Result<Vec<Mutation>, OvsdbError> {
    let arr = json
        .elems()
        .ok_or_else(|| OvsdbError::syntax(json, "Parse error in mutation."))?;
    let mut out = Vec::with_capacity(arr.len());
    for m in arr {
        out.push(parse_one(table, m, named)?);
    }
    Ok(out)
}

fn parse_one<'a>(
    table: &TableSchema,
    json: impl JsonLike<'a>,
    named: NamedUuids<'_, '_>,
) -> Result<Mutation, OvsdbError> {
    let parse_err = || OvsdbError::syntax(json, "Parse error in mutation.");
    let mut arr = json.elems().ok_or_else(parse_err)?;
    if arr.len() != 3 {
        return Err(parse_err());
    }
    let (c, m, arg_json) = (arr.next(), arr.next(), arr.next().expect("3 elements"));
    let (Some(col_name), Some(mname)) = (c.and_then(|c| c.as_str()), m.and_then(|m| m.as_str()))
    else {
        return Err(parse_err());
    };
    let (index, column) = match table.column(col_name) {
        Some(c) => (Some(c.index), Some(c)),
        None if col_name == "_uuid" || col_name == "_version" => (None, None),
        None => {
            return Err(OvsdbError::new(
                ErrorTag::UnknownColumn,
                format!("No column {col_name} in table {}.", table.name),
            )
            .with_syntax(json))
        }
    };
    let (Some(index), Some(column)) = (index, column.filter(|c| c.is_mutable())) else {
        return Err(OvsdbError::constraint(format!(
            "Cannot mutate immutable column {col_name} in table {}.",
            table.name
        ))
        .with_syntax(json));
    };
    let mutator = Mutator::from_name(mname).ok_or_else(|| {
        OvsdbError::new(
            ErrorTag::UnknownMutator,
            format!("No mutator named {mname}."),
        )
    })?;
    let ct = &column.type_;
    let mismatch = || {
        OvsdbError::syntax(
            json,
            format!(
                "Type mismatch: \"{}\" operator may not be applied to column {} of type {}.",
                mutator.as_str(),
                col_name,
                ct.to_english()
            ),
        )
    };
    let arg = match mutator {
        Mutator::Add | Mutator::Sub | Mutator::Mul | Mutator::Div | Mutator::Mod => {
            let numeric = match ct.key.atomic {
                AtomicType::Integer => true,
                AtomicType::Real => mutator != Mutator::Mod,
                _ => false,
            };
            if ct.is_map() || !numeric {
                return Err(mismatch());
            }
            // The argument is one scalar and the column's constraints do not apply to it.
            let at = ColumnType {
                key: ct.key.without_constraints(),
                value: None,
                min: 1,
                max: 1,
            };
            Datum::from_json(arg_json, &at, named)?
        }
        Mutator::Insert | Mutator::Delete => {
            if ct.is_scalar() {
                return Err(mismatch());
            }
            let max = if mutator == Mutator::Delete {
                u32::MAX
            } else {
                ct.max
            };
            match Datum::from_json_bounded(arg_json, ct, 0, max, named) {
                Ok(d) => d,
                Err(_) if ct.is_map() && mutator == Mutator::Delete => {
                    // A map may also lose keys given as a set of keys. Like ovsdb-server's
                    // ovsdb_mutation_from_json, any failure as a map (a duplicate key
                    // included) retries as a set, and the set's error is the one reported.
                    let mut at = ct.clone();
                    at.value = None;
                    Datum::from_json_bounded(arg_json, &at, 0, max, named)?
                }
                Err(e) => return Err(e),
            }
        }
    };
    Ok(Mutation {
        column: index,
        mutator,
        arg,
    })
}

/// Applies `mutations` in order to the columns of one row.
pub fn apply(
    table: &TableSchema,
    columns: &mut [Datum],
    mutations: &[Mutation],
) -> Result<(), OvsdbError> {
    for m in mutations {
        let ct = &table.columns[m.column].type_;
        let dst = &mut columns[m.column];
        match m.mutator {
            Mutator::Insert => {
                let r = dst.union(&m.arg);
                check_count(&r, ct)?;
                *dst = r;
            }
            Mutator::Delete => {
                let r = dst.difference(&m.arg);
                check_count(&r, ct)?;
                *dst = r;
            }
            _ => {
                let y = m.arg.as_scalar().expect("scalar argument");
                let mut out = Vec::with_capacity(dst.len());
                for x in dst.keys() {
                    out.push(scalar(m.mutator, x, y)?);
                }
                for a in &out {
                    a.check_constraints(&ct.key)?;
                }
                *dst = Datum::from_set(out).map_err(|_| {
                    OvsdbError::constraint(format!(
                        "Result of \"{}\" operation contains duplicates.",
                        m.mutator.as_str()
                    ))
                })?;
            }
        }
    }
    Ok(())
}

fn check_count(d: &Datum, t: &ColumnType) -> Result<(), OvsdbError> {
    let n = d.len();
    if n < t.min as usize || n > t.max as usize {
        return Err(OvsdbError::constraint(format!(
            "Attempted to store {n} elements in {}.",
            t.to_english()
        )));
    }
    Ok(())
}

fn scalar(m: Mutator, x: &Atom, y: &Atom) -> Result<Atom, OvsdbError> {
    let range = || {
        OvsdbError::new(
            ErrorTag::RangeError,
            format!("Result of \"{}\" operation is out of range.", m.as_str()),
        )
    };
    let domain = || OvsdbError::new(ErrorTag::DomainError, "Division by zero.");
    match (x, y) {
        (Atom::Integer(x), Atom::Integer(y)) => {
            let (x, y) = (*x, *y);
            let r = match m {
                Mutator::Add => x.checked_add(y),
                Mutator::Sub => x.checked_sub(y),
                Mutator::Mul => x.checked_mul(y),
                Mutator::Div => {
                    if y == 0 {
                        return Err(domain());
                    }
                    x.checked_div(y)
                }
                Mutator::Mod => {
                    if y == 0 {
                        return Err(domain());
                    }
                    // Like ovsdb-server, INT64_MIN %= -1 is out of range.
                    x.checked_rem(y)
                }
                _ => unreachable!("not a scalar mutator"),
            };
            r.map(Atom::Integer).ok_or_else(range)
        }
        (Atom::Real(x), Atom::Real(y)) => {
            let r = match m {
                Mutator::Add => x + y,
                Mutator::Sub => x - y,
                Mutator::Mul => x * y,
                Mutator::Div => {
                    if *y == 0.0 {
                        return Err(domain());
                    }
                    x / y
                }
                _ => unreachable!("not a real mutator"),
            };
            if r.is_finite() {
                Ok(Atom::real(r))
            } else {
                Err(range())
            }
        }
        _ => unreachable!("argument type checked at parse time"),
    }
}
