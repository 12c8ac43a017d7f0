//! Atoms: the scalar values of RFC 7047 §5.1 (`<atom>`), their JSON notation, their
//! canonical ordering (the one ovsdb-server uses to sort sets and maps) and the
//! base-type constraint checks of ovsdb-server's `ovsdb_atom_check_constraints`.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::error::OvsdbError;
use crate::json::JsonLike;
use crate::schema::{AtomicType, BaseType};

/// One OVSDB atom. Strings are reference counted so that copying rows is cheap.
#[derive(Debug, Clone)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(Arc<str>),
    Uuid(Uuid),
}

impl Atom {
    /// A real atom; `-0.0` is normalised to `0.0` so that equal values have one encoding.
    pub fn real(x: f64) -> Atom {
        Atom::Real(if x == 0.0 { 0.0 } else { x })
    }

    pub fn string(s: &str) -> Atom {
        Atom::String(Arc::from(s))
    }

    pub fn atomic_type(&self) -> AtomicType {
        match self {
            Atom::Integer(_) => AtomicType::Integer,
            Atom::Real(_) => AtomicType::Real,
            Atom::Boolean(_) => AtomicType::Boolean,
            Atom::String(_) => AtomicType::String,
            Atom::Uuid(_) => AtomicType::Uuid,
        }
    }

    /// The default atom of a type (RFC 7047 §5.1; ovsdb-protocol.md §4.1).
    pub fn default_for(t: AtomicType) -> Atom {
        match t {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(empty_str()),
            AtomicType::Uuid => Atom::Uuid(Uuid::nil()),
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_real(&self) -> Option<f64> {
        match self {
            Atom::Real(r) => Some(*r),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_uuid(&self) -> Option<&Uuid> {
        match self {
            Atom::Uuid(u) => Some(u),
            _ => None,
        }
    }

    /// Parses an atom of type `t`. `named` resolves `["named-uuid", name]`; when it is
    /// `None` named UUIDs are not accepted (as outside a transaction).
    pub fn from_json<'a>(
        json: impl JsonLike<'a>,
        t: AtomicType,
        named: crate::datum::NamedUuids<'_, '_>,
    ) -> Result<Atom, OvsdbError> {
        let expected = || OvsdbError::syntax(json, format!("expected {}", t.as_str()));
        match t {
            AtomicType::Integer => match json_number(json) {
                Some(JsonNum::Int(i)) => Ok(Atom::Integer(i)),
                _ => Err(expected()),
            },
            AtomicType::Real => match json_number(json) {
                Some(JsonNum::Int(i)) => Ok(Atom::real(i as f64)),
                Some(JsonNum::Real(r)) => Ok(Atom::real(r)),
                None => Err(expected()),
            },
            AtomicType::Boolean => match json.as_bool() {
                Some(b) => Ok(Atom::Boolean(b)),
                _ => Err(expected()),
            },
            AtomicType::String => match json.as_str() {
                Some("") => Ok(Atom::String(empty_str())),
                Some(s) => Ok(Atom::String(Arc::from(s))),
                _ => Err(expected()),
            },
            AtomicType::Uuid => parse_uuid_atom(json, named).map(Atom::Uuid),
        }
    }

    /// ovsdb-server's JSON notation for this atom.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => Value::from(*i),
            Atom::Real(r) => real_to_json(*r),
            Atom::Boolean(b) => Value::Bool(*b),
            Atom::String(s) => Value::String(s.to_string()),
            Atom::Uuid(u) => Value::Array(vec![
                Value::String("uuid".into()),
                // Encoded into a buffer: `to_string` goes through the formatting
                // machinery, a visible cost on every insert's result and every row read.
                Value::String(
                    u.hyphenated()
                        .encode_lower(&mut uuid::Uuid::encode_buffer())
                        .to_owned(),
                ),
            ]),
        }
    }

    /// The human-readable form used inside error messages (`ovsdb_atom_to_string`):
    /// strings are quoted only when they would otherwise be ambiguous.
    pub fn to_display_string(&self) -> String {
        let mut s = String::new();
        self.write_display(&mut s);
        s
    }

    pub(crate) fn write_display(&self, out: &mut String) {
        match self {
            Atom::Integer(i) => {
                let _ = write!(out, "{i}");
            }
            Atom::Real(r) => out.push_str(&format_g15(*r)),
            Atom::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
            Atom::String(s) => {
                if string_needs_quotes(s) {
                    out.push_str(&Value::String(s.to_string()).to_string());
                } else {
                    out.push_str(s);
                }
            }
            Atom::Uuid(u) => {
                let _ = write!(out, "{}", u.hyphenated());
            }
        }
    }

    /// Checks this atom against the constraints of `base` (range, length, enum), with the
    /// exact texts of ovsdb-server.
    pub fn check_constraints(&self, base: &BaseType) -> Result<(), OvsdbError> {
        if let Some(e) = &base.enum_ {
            if !e.contains_key(self) {
                return Err(OvsdbError::constraint(format!(
                    "{} is not one of the allowed values ({})",
                    self.to_display_string(),
                    e.to_display_string_set()
                )));
            }
            return Ok(());
        }
        match self {
            Atom::Integer(i) => {
                let (min, max) = (base.min_integer, base.max_integer);
                if *i >= min && *i <= max {
                    Ok(())
                } else if min != i64::MIN {
                    if max != i64::MAX {
                        Err(OvsdbError::constraint(format!(
                            "{i} is not in the valid range {min} to {max} (inclusive)"
                        )))
                    } else {
                        Err(OvsdbError::constraint(format!(
                            "{i} is less than minimum allowed value {min}"
                        )))
                    }
                } else {
                    Err(OvsdbError::constraint(format!(
                        "{i} is greater than maximum allowed value {max}"
                    )))
                }
            }
            Atom::Real(r) => {
                let (min, max) = (base.min_real, base.max_real);
                if *r >= min && *r <= max {
                    Ok(())
                } else if min != -f64::MAX {
                    if max != f64::MAX {
                        Err(OvsdbError::constraint(format!(
                            "{} is not in the valid range {} to {} (inclusive)",
                            format_g15(*r),
                            format_g15(min),
                            format_g15(max)
                        )))
                    } else {
                        Err(OvsdbError::constraint(format!(
                            "{} is less than minimum allowed value {}",
                            format_g15(*r),
                            format_g15(min)
                        )))
                    }
                } else {
                    Err(OvsdbError::constraint(format!(
                        "{} is greater than maximum allowed value {}",
                        format_g15(*r),
                        format_g15(max)
                    )))
                }
            }
            Atom::String(s) => {
                if base.min_length == 0 && base.max_length == u32::MAX {
                    return Ok(());
                }
                let n = s.chars().count();
                if n < base.min_length as usize {
                    Err(OvsdbError::constraint(format!(
                        "\"{s}\" length {n} is less than minimum allowed length {}",
                        base.min_length
                    )))
                } else if n > base.max_length as usize {
                    Err(OvsdbError::constraint(format!(
                        "\"{s}\" length {n} is greater than maximum allowed length {}",
                        base.max_length
                    )))
                } else {
                    Ok(())
                }
            }
            Atom::Boolean(_) | Atom::Uuid(_) => Ok(()),
        }
    }

    fn type_rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
        }
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            // Fast paths for the common types; reals go through `cmp` (NaN handling).
            (Atom::Uuid(a), Atom::Uuid(b)) => a == b,
            (Atom::Integer(a), Atom::Integer(b)) => a == b,
            (Atom::String(a), Atom::String(b)) => a == b,
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}

impl Eq for Atom {}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// ovsdb-server's `ovsdb_atom_compare_3way`: numeric for numbers, false < true,
/// byte-wise (strcmp) for strings, and for UUIDs the order of their text form.
impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            // Big-endian integers order like their bytes (and their text).
            (Atom::Uuid(a), Atom::Uuid(b)) => a.as_u128().cmp(&b.as_u128()),
            _ => self.type_rank().cmp(&other.type_rank()),
        }
    }
}

/// The empty string, shared: every string column without a value defaults to it, and an
/// allocation per default would dominate inserting a row.
fn empty_str() -> Arc<str> {
    static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::from("")).clone()
}

impl std::hash::Hash for Atom {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Atom::Integer(i) => i.hash(state),
            Atom::Real(r) => r.to_bits().hash(state),
            Atom::Boolean(b) => b.hash(state),
            Atom::String(s) => s.hash(state),
            Atom::Uuid(u) => u.hash(state),
        }
    }
}

/// A JSON number as ovsdb-server's JSON reader sees it: integral values that fit in an
/// int64 are integers even when written `1.0` or `1e2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum JsonNum {
    Int(i64),
    Real(f64),
}

pub(crate) fn json_number<'a>(v: impl JsonLike<'a>) -> Option<JsonNum> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(JsonNum::Int(i));
    }
    if let Some(u) = n.as_u64() {
        // Above i64::MAX: ovsdb-server's lexer turns it into a real.
        return Some(JsonNum::Real(u as f64));
    }
    let f = n.as_f64()?;
    // 2^63 is exactly representable; anything in [-2^63, 2^63) that is integral fits.
    if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
    {
        Some(JsonNum::Int(f as i64))
    } else {
        Some(JsonNum::Real(f))
    }
}

/// Reals print like ovsdb-server for integral values (no decimal point) and otherwise
/// in the shortest form that round-trips exactly (not `%.15g`, see protocol doc §10).
pub(crate) fn real_to_json(r: f64) -> Value {
    // Integral values that fit an int64 convert exactly; larger ones need an exponent.
    if r.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&r)
    {
        return Value::from(r as i64);
    }
    serde_json::Number::from_f64(r)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn parse_uuid_atom<'a>(
    json: impl JsonLike<'a>,
    named: crate::datum::NamedUuids<'_, '_>,
) -> Result<Uuid, OvsdbError> {
    if let Some(mut a) = json.elems() {
        if a.len() == 2 {
            let (tag, s) = (
                a.next().and_then(|t| t.as_str()),
                a.next().and_then(|s| s.as_str()),
            );
            if let (Some(tag), Some(s)) = (tag, s) {
                if tag == "uuid" {
                    return parse_uuid_str(s).ok_or_else(|| {
                        OvsdbError::syntax(json, format!("\"{s}\" is not a valid UUID"))
                    });
                }
                if tag == "named-uuid" {
                    if let Some(resolve) = named.as_mut() {
                        if !is_id(s) {
                            return Err(OvsdbError::syntax(
                                json,
                                "named-uuid string is not a valid <id>",
                            ));
                        }
                        return Ok(resolve(s));
                    }
                }
            }
        }
    }
    Err(OvsdbError::syntax(json, "expected [\"uuid\", <string>]"))
}

/// Parses the 36-character UUID text form (any case), as `uuid_from_string` does.
pub fn parse_uuid_str(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    let b = s.as_bytes();
    for (i, c) in b.iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) {
            *c == b'-'
        } else {
            c.is_ascii_hexdigit()
        };
        if !ok {
            return None;
        }
    }
    Uuid::parse_str(s).ok()
}

/// RFC 7047 `<id>`: a letter or `_`, then letters, digits or `_`.
pub fn is_id(s: &str) -> bool {
    /// Bytes allowed after the first: ASCII letters, digits and `_`.
    static ID_BYTE: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphanumeric() || c == b'_';
            b += 1;
        }
        t
    };
    let b = s.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    b[1..].iter().all(|&c| ID_BYTE[c as usize])
}

fn string_needs_quotes(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return true,
    }
    if !b[1..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-' || *c == b'.')
    {
        return true;
    }
    s == "true" || s == "false" || parse_uuid_str(s).is_some()
}

/// C's `printf("%.15g", x)`, used by ovsdb-server in error texts.
pub fn format_g15(x: f64) -> String {
    format_g(x, 15)
}

fn format_g(x: f64, prec: usize) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let sci = format!("{:.*e}", prec - 1, x);
    let (mant, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    if exp < -4 || exp >= prec as i32 {
        let mant = strip_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, x)).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

impl From<i64> for Atom {
    fn from(i: i64) -> Atom {
        Atom::Integer(i)
    }
}

impl From<bool> for Atom {
    fn from(b: bool) -> Atom {
        Atom::Boolean(b)
    }
}

impl From<&str> for Atom {
    fn from(s: &str) -> Atom {
        Atom::string(s)
    }
}

impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Atom {
        Atom::Uuid(u)
    }
}

impl From<f64> for Atom {
    fn from(r: f64) -> Atom {
        Atom::real(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorTag;
    use serde_json::json;

    #[test]
    fn g15() {
        for (x, s) in [
            (2.5, "2.5"),
            (-1.5, "-1.5"),
            (1e300, "1e+300"),
            (0.1, "0.1"),
            (100.0, "100"),
            (1e-5, "1e-05"),
            (123456789012345678.0, "1.23456789012346e+17"),
            (0.0001, "0.0001"),
        ] {
            assert_eq!(format_g15(x), s, "{x}");
        }
    }

    #[test]
    fn numbers() {
        let t = AtomicType::Integer;
        for (j, ok) in [
            (json!(1), Some(1)),
            (json!(1.0), Some(1)),
            (json!(1e2), Some(100)),
            (json!(1.5), None),
            (json!(9223372036854775807i64), Some(i64::MAX)),
            (json!(9223372036854775808u64), None),
            (json!("1"), None),
        ] {
            let r = Atom::from_json(&j, t, &mut None);
            match ok {
                Some(v) => assert_eq!(r.unwrap(), Atom::Integer(v)),
                None => {
                    let e = r.unwrap_err();
                    assert_eq!(e.tag, ErrorTag::SyntaxError);
                    assert_eq!(e.details.as_deref(), Some("expected integer"));
                }
            }
        }
        assert_eq!(Atom::real(2.0).to_json().to_string(), "2");
        assert_eq!(Atom::real(0.1).to_json().to_string(), "0.1");
        assert_eq!(
            Atom::real(f64::MAX)
                .to_json()
                .to_string()
                .parse::<f64>()
                .unwrap(),
            f64::MAX
        );
    }

    #[test]
    fn uuid_parse_errors() {
        let e = Atom::from_json(&json!("x"), AtomicType::Uuid, &mut None).unwrap_err();
        assert_eq!(e.details.as_deref(), Some("expected [\"uuid\", <string>]"));
        let e = Atom::from_json(&json!(["uuid", "not-a-uuid"]), AtomicType::Uuid, &mut None)
            .unwrap_err();
        assert_eq!(
            e.details.as_deref(),
            Some("\"not-a-uuid\" is not a valid UUID")
        );
        let u = Atom::from_json(
            &json!(["uuid", "6C10A8B4-0000-4000-8000-000000000001"]),
            AtomicType::Uuid,
            &mut None,
        )
        .unwrap();
        assert_eq!(
            u.to_json(),
            json!(["uuid", "6c10a8b4-0000-4000-8000-000000000001"])
        );
        let mut f = |_: &str| Uuid::from_u128(7);
        let e = Atom::from_json(
            &json!(["named-uuid", "1x"]),
            AtomicType::Uuid,
            &mut Some(&mut f),
        )
        .unwrap_err();
        assert_eq!(
            e.details.as_deref(),
            Some("named-uuid string is not a valid <id>")
        );
    }

    #[test]
    fn display_quoting() {
        for (s, d) in [
            ("a1", "a1"),
            ("ab", "ab"),
            ("true", "\"true\""),
            ("", "\"\""),
            ("1a", "\"1a\""),
            ("a b", "\"a b\""),
        ] {
            assert_eq!(Atom::string(s).to_display_string(), d);
        }
    }
}
