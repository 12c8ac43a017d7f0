//! Datums: the value of one column (RFC 7047 §5.1 `<value>`: `<atom>`, `<set>`, `<map>`),
//! kept sorted in ovsdb-server's canonical order, with the JSON notation both ways and the
//! validation order of ovsdb-server's `ovsdb_datum_from_json` (protocol doc §4.4): shape,
//! element count (syntax errors), each atom's constraints (constraint violation), then
//! duplicates (`ovsdb error`).

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::atom::Atom;
use crate::error::{ErrorTag, OvsdbError};
use crate::schema::ColumnType;

/// A sorted set or sorted map of atoms. Empty values and 1-element sets are stored
/// inline, without a heap allocation, because most columns are scalars or empty; larger
/// ones are shared (`Arc`), so copying a row to modify it does not copy its big sets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Datum(Repr);

/// Canonical: exactly one representation per value (0 → Empty*, 1-element set → One).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Repr {
    One(Atom),
    EmptySet,
    EmptyMap,
    Set(Arc<[Atom]>),
    Map(Arc<[(Atom, Atom)]>),
}

/// Iterator over the keys of a map or the elements of a set.
pub enum Keys<'a> {
    Set(std::slice::Iter<'a, Atom>),
    Map(std::slice::Iter<'a, (Atom, Atom)>),
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a Atom;

    fn next(&mut self) -> Option<&'a Atom> {
        match self {
            Keys::Set(i) => i.next(),
            Keys::Map(i) => i.next().map(|p| &p.0),
        }
    }
}

/// The resolver for `["named-uuid", name]` during a transaction.
pub type NamedUuids<'a, 'b> = &'a mut Option<&'b mut dyn FnMut(&str) -> Uuid>;

impl Datum {
    pub fn empty_set() -> Datum {
        Datum(Repr::EmptySet)
    }

    pub fn empty_map() -> Datum {
        Datum(Repr::EmptyMap)
    }

    pub fn from_atom(a: Atom) -> Datum {
        Datum(Repr::One(a))
    }

    /// A set from atoms in any order; fails if there are duplicates.
    pub fn from_set(mut atoms: Vec<Atom>) -> Result<Datum, OvsdbError> {
        atoms.sort();
        if atoms.windows(2).any(|w| w[0] == w[1]) {
            return Err(OvsdbError::new(
                ErrorTag::OvsdbError,
                "set contains duplicate",
            ));
        }
        Ok(Datum::from_sorted_set(atoms))
    }

    /// A set from atoms already sorted and distinct.
    pub fn from_sorted_set(mut atoms: Vec<Atom>) -> Datum {
        match atoms.len() {
            0 => Datum(Repr::EmptySet),
            1 => Datum(Repr::One(atoms.pop().expect("one"))),
            _ => Datum(Repr::Set(Arc::from(atoms))),
        }
    }

    /// A map from pairs in any order; fails if a key repeats.
    pub fn from_map(mut pairs: Vec<(Atom, Atom)>) -> Result<Datum, OvsdbError> {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(OvsdbError::new(
                ErrorTag::OvsdbError,
                "map contains duplicate key",
            ));
        }
        Ok(Datum::from_sorted_map(pairs))
    }

    /// A map from pairs already sorted by distinct keys.
    pub fn from_sorted_map(pairs: Vec<(Atom, Atom)>) -> Datum {
        if pairs.is_empty() {
            Datum(Repr::EmptyMap)
        } else {
            Datum(Repr::Map(Arc::from(pairs)))
        }
    }

    /// The default value of a column type: empty for `min 0`, else the default atom
    /// (and for a map, the default key → default value pair).
    pub fn default_for(t: &ColumnType) -> Datum {
        match (&t.value, t.min) {
            (Some(_), 0) => Datum::empty_map(),
            (Some(v), _) => Datum::from_sorted_map(vec![(
                Atom::default_for(t.key.atomic),
                Atom::default_for(v.atomic),
            )]),
            (None, 0) => Datum::empty_set(),
            (None, _) => Datum::from_atom(Atom::default_for(t.key.atomic)),
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self.0, Repr::Map(_) | Repr::EmptyMap)
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::One(_) => 1,
            Repr::EmptySet | Repr::EmptyMap => 0,
            Repr::Set(s) => s.len(),
            Repr::Map(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements of a set (empty for a map).
    pub fn as_set(&self) -> &[Atom] {
        match &self.0 {
            Repr::One(a) => std::slice::from_ref(a),
            Repr::Set(s) => s,
            _ => &[],
        }
    }

    /// The pairs of a map (empty for a set).
    pub fn as_map(&self) -> &[(Atom, Atom)] {
        match &self.0 {
            Repr::Map(m) => m,
            _ => &[],
        }
    }

    /// Keys of a map or elements of a set, in order.
    pub fn keys(&self) -> Keys<'_> {
        match &self.0 {
            Repr::Map(m) => Keys::Map(m.iter()),
            _ => Keys::Set(self.as_set().iter()),
        }
    }

    /// Values of a map, in key order (nothing for a set).
    pub fn values(&self) -> impl Iterator<Item = &Atom> {
        self.as_map().iter().map(|p| &p.1)
    }

    /// The single atom of a 1-element set.
    pub fn as_scalar(&self) -> Option<&Atom> {
        match &self.0 {
            Repr::One(a) => Some(a),
            _ => None,
        }
    }

    pub fn contains_key(&self, a: &Atom) -> bool {
        match &self.0 {
            Repr::One(x) => x == a,
            Repr::EmptySet | Repr::EmptyMap => false,
            Repr::Set(s) => s.binary_search(a).is_ok(),
            Repr::Map(m) => m.binary_search_by(|p| p.0.cmp(a)).is_ok(),
        }
    }

    /// The value for `key` in a map.
    pub fn get(&self, key: &Atom) -> Option<&Atom> {
        let m = self.as_map();
        m.binary_search_by(|p| p.0.cmp(key)).ok().map(|i| &m[i].1)
    }

    fn contains_pair(&self, k: &Atom, v: &Atom) -> bool {
        self.get(k) == Some(v)
    }

    /// RFC 7047 `includes`: every element (pair, for maps) of `arg` is in `self`.
    pub fn includes(&self, arg: &Datum) -> bool {
        if arg.is_map() {
            arg.as_map().iter().all(|(k, v)| self.contains_pair(k, v))
        } else {
            arg.as_set().iter().all(|a| self.contains_key(a))
        }
    }

    /// RFC 7047 `excludes`: no element (pair, for maps) of `arg` is in `self`.
    pub fn excludes(&self, arg: &Datum) -> bool {
        if arg.is_map() {
            !arg.as_map().iter().any(|(k, v)| self.contains_pair(k, v))
        } else {
            !arg.as_set().iter().any(|a| self.contains_key(a))
        }
    }

    /// Set/map union where existing map keys keep their value (the `insert` mutator).
    /// Both inputs are sorted, so this is a linear merge.
    pub fn union(&self, other: &Datum) -> Datum {
        if other.is_empty() {
            return self.clone();
        }
        if self.is_map() || other.is_map() {
            let (a, b) = (self.as_map(), other.as_map());
            let mut out = Vec::with_capacity(a.len() + b.len());
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                match a[i].0.cmp(&b[j].0) {
                    Ordering::Less => {
                        out.push(a[i].clone());
                        i += 1;
                    }
                    Ordering::Greater => {
                        out.push(b[j].clone());
                        j += 1;
                    }
                    Ordering::Equal => {
                        out.push(a[i].clone());
                        i += 1;
                        j += 1;
                    }
                }
            }
            out.extend_from_slice(&a[i..]);
            out.extend_from_slice(&b[j..]);
            Datum::from_sorted_map(out)
        } else {
            let (a, b) = (self.as_set(), other.as_set());
            if b.len() * 8 < a.len() {
                // A few elements into a big set (ports into a switch): binary-search each
                // insertion point and copy the runs in between without comparing them.
                let mut out = Vec::with_capacity(a.len() + b.len());
                let mut start = 0;
                for x in b {
                    match a[start..].binary_search(x) {
                        Ok(_) => {}
                        Err(p) => {
                            out.extend_from_slice(&a[start..start + p]);
                            out.push(x.clone());
                            start += p;
                        }
                    }
                }
                out.extend_from_slice(&a[start..]);
                return Datum::from_sorted_set(out);
            }
            let mut out = Vec::with_capacity(a.len() + b.len());
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                match a[i].cmp(&b[j]) {
                    Ordering::Less => {
                        out.push(a[i].clone());
                        i += 1;
                    }
                    Ordering::Greater => {
                        out.push(b[j].clone());
                        j += 1;
                    }
                    Ordering::Equal => {
                        out.push(a[i].clone());
                        i += 1;
                        j += 1;
                    }
                }
            }
            out.extend_from_slice(&a[i..]);
            out.extend_from_slice(&b[j..]);
            Datum::from_sorted_set(out)
        }
    }

    /// Removes the elements of `other` (for a map: pairs that match key and value when
    /// `other` is a map, or whole keys when `other` is a set).
    pub fn difference(&self, other: &Datum) -> Datum {
        if self.is_map() {
            let keep: Vec<(Atom, Atom)> = if other.is_map() {
                self.as_map()
                    .iter()
                    .filter(|(k, v)| !other.contains_pair(k, v))
                    .cloned()
                    .collect()
            } else {
                self.as_map()
                    .iter()
                    .filter(|(k, _)| !other.contains_key(k))
                    .cloned()
                    .collect()
            };
            Datum::from_sorted_map(keep)
        } else {
            let keep: Vec<Atom> = self
                .as_set()
                .iter()
                .filter(|a| !other.contains_key(a))
                .cloned()
                .collect();
            Datum::from_sorted_set(keep)
        }
    }

    /// Keeps the elements for which `f(key, value)` is true (value is None for sets).
    pub fn retain(&self, mut f: impl FnMut(&Atom, Option<&Atom>) -> bool) -> Datum {
        if self.is_empty() {
            return self.clone();
        }
        if self.is_map() {
            Datum::from_sorted_map(
                self.as_map()
                    .iter()
                    .filter(|(k, v)| f(k, Some(v)))
                    .cloned()
                    .collect(),
            )
        } else {
            Datum::from_sorted_set(
                self.as_set()
                    .iter()
                    .filter(|a| f(a, None))
                    .cloned()
                    .collect(),
            )
        }
    }

    /// Parses `json` as a value of type `t`, resolving named UUIDs through `named`.
    pub fn from_json(
        json: &Value,
        t: &ColumnType,
        named: NamedUuids<'_, '_>,
    ) -> Result<Datum, OvsdbError> {
        let is_set_notation =
            matches!(json, Value::Array(a) if a.first().and_then(Value::as_str) == Some("set"));
        if !t.is_map() && !is_set_notation {
            let a = Atom::from_json(json, t.key.atomic, named)?;
            a.check_constraints(&t.key)?;
            return Ok(Datum::from_atom(a));
        }
        let class = if t.is_map() { "map" } else { "set" };
        let inner = match json {
            Value::Array(a) if a.len() == 2 && a[0].as_str() == Some(class) && a[1].is_array() => {
                a[1].as_array().expect("checked")
            }
            _ => {
                return Err(OvsdbError::syntax(
                    json,
                    format!("expected [\"{class}\", <array>]"),
                ))
            }
        };
        let n = inner.len();
        if n < t.min as usize || n > t.max as usize {
            return Err(OvsdbError::syntax(
                json,
                if t.min == 1 && t.max == 1 {
                    format!("{class} must have exactly one member but {n} are present")
                } else {
                    format!(
                        "{class} must have {} to {} members but {n} are present",
                        t.min, t.max
                    )
                },
            ));
        }
        match &t.value {
            None => {
                let mut atoms = Vec::with_capacity(n);
                for e in inner {
                    let a = Atom::from_json(e, t.key.atomic, named)?;
                    a.check_constraints(&t.key)?;
                    atoms.push(a);
                }
                Datum::from_set(atoms)
            }
            Some(vt) => {
                let mut pairs = Vec::with_capacity(n);
                for e in inner {
                    let (kj, vj) = match e {
                        Value::Array(p) if p.len() == 2 => (&p[0], &p[1]),
                        _ => return Err(OvsdbError::syntax(e, "expected 2-element array")),
                    };
                    let k = Atom::from_json(kj, t.key.atomic, named)?;
                    k.check_constraints(&t.key)?;
                    let v = Atom::from_json(vj, vt.atomic, named)?;
                    v.check_constraints(vt)?;
                    pairs.push((k, v));
                }
                Datum::from_map(pairs)
            }
        }
    }

    /// ovsdb-server's notation: maps always `["map",…]`, 1-element sets as the bare atom,
    /// other sets `["set",…]`, all sorted.
    pub fn to_json(&self) -> Value {
        match &self.0 {
            Repr::One(a) => a.to_json(),
            Repr::EmptySet => {
                Value::Array(vec![Value::String("set".into()), Value::Array(Vec::new())])
            }
            Repr::EmptyMap => {
                Value::Array(vec![Value::String("map".into()), Value::Array(Vec::new())])
            }
            Repr::Set(s) => Value::Array(vec![
                Value::String("set".into()),
                Value::Array(s.iter().map(Atom::to_json).collect()),
            ]),
            Repr::Map(m) => Value::Array(vec![
                Value::String("map".into()),
                Value::Array(
                    m.iter()
                        .map(|(k, v)| Value::Array(vec![k.to_json(), v.to_json()]))
                        .collect(),
                ),
            ]),
        }
    }

    /// Checks element count and every atom against `t` (used where values were not parsed
    /// from JSON: defaults, mutation results).
    pub fn check_constraints(&self, t: &ColumnType) -> Result<(), OvsdbError> {
        for a in self.keys() {
            a.check_constraints(&t.key)?;
        }
        if let Some(vt) = &t.value {
            for a in self.values() {
                a.check_constraints(vt)?;
            }
        }
        Ok(())
    }

    /// `ovsdb_datum_to_string` for a column of type `t` (used in error texts).
    pub fn to_display_string(&self, t: &ColumnType) -> String {
        self.display(t.max > 1 || self.is_empty())
    }

    /// Display as an always-bracketed set (the enum list in constraint errors).
    pub fn to_display_string_set(&self) -> String {
        self.display(true)
    }

    fn display(&self, brackets: bool) -> String {
        let is_map = self.is_map();
        let mut s = String::new();
        if brackets {
            s.push(if is_map { '{' } else { '[' });
        }
        let mut first = true;
        if is_map {
            for (k, v) in self.as_map() {
                if !first {
                    s.push_str(", ");
                }
                first = false;
                k.write_display(&mut s);
                s.push('=');
                v.write_display(&mut s);
            }
        } else {
            for a in self.as_set() {
                if !first {
                    s.push_str(", ");
                }
                first = false;
                a.write_display(&mut s);
            }
        }
        if brackets {
            s.push(if is_map { '}' } else { ']' });
        }
        s
    }

    /// Every UUID atom in keys (and values, when `values` is set) - used for references.
    pub fn uuids(&self, keys: bool, values: bool) -> impl Iterator<Item = &Uuid> {
        let k = self.keys().take(if keys { usize::MAX } else { 0 });
        let v = self.values().take(if values { usize::MAX } else { 0 });
        k.chain(v).filter_map(Atom::as_uuid)
    }
}

/// ovsdb-server's `ovsdb_datum_compare_3way`: fewer elements first, then keys in order,
/// then values.
impl Ord for Datum {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (Repr::One(a), Repr::One(b)) => a.cmp(b),
            (Repr::Set(a), Repr::Set(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            _ => self
                .len()
                .cmp(&other.len())
                .then_with(|| self.keys().cmp(other.keys()))
                .then_with(|| self.values().cmp(other.values())),
        }
    }
}

impl PartialOrd for Datum {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<Atom> for Datum {
    fn from(a: Atom) -> Datum {
        Datum::from_atom(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{AtomicType, BaseType};
    use serde_json::json;

    fn ty(j: Value) -> ColumnType {
        let schema = json!({"name":"T","tables":{"t":{"columns":{"c":{"type":j}}}}});
        crate::schema::DatabaseSchema::from_json(&schema)
            .unwrap()
            .tables[0]
            .columns[0]
            .type_
            .clone()
    }

    fn err(v: Value, t: &ColumnType) -> (ErrorTag, String) {
        let e = Datum::from_json(&v, t, &mut None).unwrap_err();
        (e.tag, e.details.unwrap_or_default())
    }

    #[test]
    fn notation_round_trip() {
        let si = ty(json!({"key":"integer","min":0,"max":"unlimited"}));
        let d = Datum::from_json(&json!(["set", [3, 1, 2]]), &si, &mut None).unwrap();
        assert_eq!(d.to_json(), json!(["set", [1, 2, 3]]));
        let one = Datum::from_json(&json!(["set", [5]]), &si, &mut None).unwrap();
        assert_eq!(one.to_json(), json!(5));
        let bare = Datum::from_json(&json!(5), &si, &mut None).unwrap();
        assert_eq!(bare, one);
        let m = ty(json!({"key":"string","value":"integer","min":0,"max":"unlimited"}));
        let d = Datum::from_json(&json!(["map", [["b", 2], ["a", 1]]]), &m, &mut None).unwrap();
        assert_eq!(d.to_json(), json!(["map", [["a", 1], ["b", 2]]]));
        let d1 = Datum::from_json(&json!(["map", [["a", 1]]]), &m, &mut None).unwrap();
        assert_eq!(d1.to_json(), json!(["map", [["a", 1]]]));
        assert_eq!(Datum::default_for(&m).to_json(), json!(["map", []]));
        assert_eq!(Datum::default_for(&si).to_json(), json!(["set", []]));
        let r = ty(json!("real"));
        assert_eq!(Datum::default_for(&r).to_json(), json!(0));
        assert_eq!(
            Datum::default_for(&ty(json!("uuid"))).to_json(),
            json!(["uuid", "00000000-0000-0000-0000-000000000000"])
        );
    }

    #[test]
    fn errors_in_order() {
        let s13 = ty(json!({"key":"string","min":1,"max":3}));
        assert_eq!(
            err(json!(["set", ["a", "b", "c", "d"]]), &s13),
            (
                ErrorTag::SyntaxError,
                "set must have 1 to 3 members but 4 are present".into()
            )
        );
        let sc = ty(json!("string"));
        assert_eq!(
            err(json!(["set", []]), &sc),
            (
                ErrorTag::SyntaxError,
                "set must have exactly one member but 0 are present".into()
            )
        );
        assert_eq!(
            err(json!(["set", ["a", "a"]]), &s13),
            (ErrorTag::OvsdbError, "set contains duplicate".into())
        );
        let m = ty(json!({"key":"string","value":"integer","min":0,"max":"unlimited"}));
        assert_eq!(
            err(json!(["map", [["a", 1], ["a", 2]]]), &m),
            (ErrorTag::OvsdbError, "map contains duplicate key".into())
        );
        assert_eq!(
            err(json!(["set", ["a"]]), &m),
            (ErrorTag::SyntaxError, "expected [\"map\", <array>]".into())
        );
        assert_eq!(
            err(json!(["a", 1]), &m),
            (ErrorTag::SyntaxError, "expected [\"map\", <array>]".into())
        );
        assert_eq!(
            err(json!(["map", [["a"]]]), &m),
            (ErrorTag::SyntaxError, "expected 2-element array".into())
        );
        let ri = ty(
            json!({"key":{"type":"integer","minInteger":0,"maxInteger":10},"min":0,"max":"unlimited"}),
        );
        assert_eq!(
            err(json!(["set", [11, 11]]), &ri),
            (
                ErrorTag::ConstraintViolation,
                "11 is not in the valid range 0 to 10 (inclusive)".into()
            )
        );
        let rr = ty(json!({"key":{"type":"real","minReal":-1.5,"maxReal":1.5}}));
        assert_eq!(
            err(json!(2.5), &rr),
            (
                ErrorTag::ConstraintViolation,
                "2.5 is not in the valid range -1.5 to 1.5 (inclusive)".into()
            )
        );
        let ls = ty(json!({"key":{"type":"string","minLength":2,"maxLength":4}}));
        assert_eq!(
            err(json!("a"), &ls),
            (
                ErrorTag::ConstraintViolation,
                "\"a\" length 1 is less than minimum allowed length 2".into()
            )
        );
        assert_eq!(
            err(json!("abcde"), &ls),
            (
                ErrorTag::ConstraintViolation,
                "\"abcde\" length 5 is greater than maximum allowed length 4".into()
            )
        );
        let e = ty(json!({"key":{"type":"string","enum":["set",["red","green"]]}}));
        assert_eq!(
            err(json!("blue"), &e),
            (
                ErrorTag::ConstraintViolation,
                "blue is not one of the allowed values ([green, red])".into()
            )
        );
        let lo = ty(json!({"key":{"type":"integer","minInteger":3}}));
        assert_eq!(
            err(json!(1), &lo),
            (
                ErrorTag::ConstraintViolation,
                "1 is less than minimum allowed value 3".into()
            )
        );
        let hi = ty(json!({"key":{"type":"integer","maxInteger":3}}));
        assert_eq!(
            err(json!(4), &hi),
            (
                ErrorTag::ConstraintViolation,
                "4 is greater than maximum allowed value 3".into()
            )
        );
        assert_eq!(
            err(json!("true"), &ty(json!("boolean"))),
            (ErrorTag::SyntaxError, "expected boolean".into())
        );
        assert_eq!(
            err(json!(1.5), &ty(json!("integer"))),
            (ErrorTag::SyntaxError, "expected integer".into())
        );
        assert_eq!(
            err(
                json!(["set", [["set", [1]]]]),
                &ty(json!({"key":"integer","max":2}))
            )
            .0,
            ErrorTag::SyntaxError
        );
        let _ = BaseType::new(AtomicType::Integer);
    }

    #[test]
    fn ordering_matches_ovsdb() {
        let a = Datum::from_sorted_set(vec![Atom::Integer(5)]);
        let b = Datum::from_sorted_set(vec![Atom::Integer(1), Atom::Integer(2)]);
        assert!(a < b, "fewer elements sort first");
        let m = Datum::from_map(vec![("a".into(), 1.into())]).unwrap();
        assert!(m.includes(&Datum::from_map(vec![("a".into(), 1.into())]).unwrap()));
        assert!(!m.includes(&Datum::from_map(vec![("a".into(), 2.into())]).unwrap()));
    }
}

#[cfg(test)]
mod union_tests {
    use super::*;

    #[test]
    fn union_big_and_small_agree_with_merge() {
        let big: Vec<Atom> = (0..100).map(|i| Atom::Integer(i * 2)).collect();
        let big = Datum::from_sorted_set(big);
        for small in [
            vec![-1i64],
            vec![3, 5, 7],
            vec![0, 1, 198, 199, 500],
            vec![50],
        ] {
            let s = Datum::from_set(small.iter().map(|i| Atom::Integer(*i)).collect()).unwrap();
            let mut want: Vec<Atom> = big.as_set().to_vec();
            for a in s.as_set() {
                if !want.contains(a) {
                    want.push(a.clone());
                }
            }
            want.sort();
            assert_eq!(
                big.union(&s),
                Datum::from_sorted_set(want.clone()),
                "{small:?}"
            );
            assert_eq!(s.union(&big), Datum::from_sorted_set(want));
        }
    }
}
