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
pub(crate) use crate::bigset::Side;
use crate::bigset::{walk_difference, BigSet, Runs, SMALL_MAX};
use crate::error::{ErrorTag, OvsdbError};
use crate::json::JsonLike;
use crate::schema::ColumnType;

/// A sorted set or sorted map of atoms. Empty values and 1-element sets are stored
/// inline, without a heap allocation, because most columns are scalars or empty; larger
/// ones are shared (`Arc`), so copying a row to modify it does not copy its big sets.
/// Sets of more than [`SMALL_MAX`] elements are chunked ([`BigSet`]) so that inserting
/// into or deleting from them costs a chunk, not the whole set.
#[derive(Debug, Clone)]
pub struct Datum(Repr);

/// One representation per value (0 → Empty*, 1-element set → One, 2..=SMALL_MAX
/// elements → Set, more → Big); only the chunking of a Big varies, and equality,
/// ordering and hashing look through it.
#[derive(Debug, Clone)]
enum Repr {
    One(Atom),
    EmptySet,
    EmptyMap,
    Set(Arc<[Atom]>),
    Map(Arc<[(Atom, Atom)]>),
    Big(Arc<BigSet>),
}

/// Iterator over the keys of a map or the elements of a set.
#[derive(Clone)]
pub enum Keys<'a> {
    Set(std::slice::Iter<'a, Atom>),
    Map(std::slice::Iter<'a, (Atom, Atom)>),
    Big(crate::bigset::Iter<'a>),
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a Atom;

    fn next(&mut self) -> Option<&'a Atom> {
        match self {
            Keys::Set(i) => i.next(),
            Keys::Map(i) => i.next().map(|p| &p.0),
            Keys::Big(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Keys::Set(i) => i.size_hint(),
            Keys::Map(i) => i.size_hint(),
            Keys::Big(i) => i.size_hint(),
        }
    }
}

impl ExactSizeIterator for Keys<'_> {}

impl PartialEq for Datum {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::One(a), Repr::One(b)) => a == b,
            (Repr::EmptySet, Repr::EmptySet) | (Repr::EmptyMap, Repr::EmptyMap) => true,
            (Repr::Set(a), Repr::Set(b)) => a == b,
            (Repr::Map(a), Repr::Map(b)) => a == b,
            (Repr::Big(a), Repr::Big(b)) => {
                Arc::ptr_eq(a, b)
                    || (a.len() == b.len()
                        && walk_difference(self.runs(), other.runs(), |_, _| false))
            }
            _ => false,
        }
    }
}

impl Eq for Datum {}

impl std::hash::Hash for Datum {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(&self.0).hash(state);
        match &self.0 {
            Repr::One(a) => a.hash(state),
            Repr::EmptySet | Repr::EmptyMap => {}
            Repr::Set(s) => s.hash(state),
            Repr::Map(m) => m.hash(state),
            Repr::Big(b) => {
                state.write_usize(b.len());
                for a in b.iter() {
                    a.hash(state);
                }
            }
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
            n if n <= SMALL_MAX => Datum(Repr::Set(Arc::from(atoms))),
            _ => Datum(Repr::Big(Arc::new(BigSet::from_sorted(&atoms)))),
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
            Repr::Big(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements of a set as runs of sorted atoms (nothing for a map).
    pub(crate) fn runs(&self) -> Runs<'_> {
        match &self.0 {
            Repr::One(a) => Runs::One(std::slice::from_ref(a)),
            Repr::Set(s) => Runs::One(s),
            Repr::Big(b) => Runs::Many(b.chunks()),
            _ => Runs::One(&[]),
        }
    }

    /// Calls `visit` for every element of set `self` that set `new` lacks (`Side::Old`)
    /// and every element of `new` that `self` lacks (`Side::New`), in order, skipping
    /// the chunks the two versions of a big set share.
    pub(crate) fn set_difference_with(&self, new: &Datum, mut visit: impl FnMut(Side, &Atom)) {
        walk_difference(self.runs(), new.runs(), |side, a| {
            visit(side, a);
            true
        });
    }

    /// The elements of a set in a vector (empty for a map).
    pub fn set_to_vec(&self) -> Vec<Atom> {
        match &self.0 {
            Repr::Big(b) => b.to_vec(),
            Repr::Map(_) | Repr::EmptyMap => Vec::new(),
            _ => self.keys().cloned().collect(),
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
            Repr::One(a) => Keys::Set(std::slice::from_ref(a).iter()),
            Repr::Set(s) => Keys::Set(s.iter()),
            Repr::Big(b) => Keys::Big(b.iter()),
            Repr::EmptySet | Repr::EmptyMap => Keys::Set([].iter()),
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
            Repr::Big(b) => b.contains(a),
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
            arg.keys().all(|a| self.contains_key(a))
        }
    }

    /// RFC 7047 `excludes`: no element (pair, for maps) of `arg` is in `self`.
    pub fn excludes(&self, arg: &Datum) -> bool {
        if arg.is_map() {
            !arg.as_map().iter().any(|(k, v)| self.contains_pair(k, v))
        } else {
            !arg.keys().any(|a| self.contains_key(a))
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
            if let Repr::Big(big) = &self.0 {
                if other.len() * 8 < big.len() {
                    return match big.with_inserted(other.keys()) {
                        Some(s) => Datum(Repr::Big(Arc::new(s))),
                        None => self.clone(),
                    };
                }
            }
            if matches!(other.0, Repr::Big(_)) || matches!(self.0, Repr::Big(_)) {
                return Datum::from_sorted_set(merge_sets(self.keys(), other.keys()));
            }
            let (a, b) = (self.flat_set(), other.flat_set());
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
            if let Repr::Big(big) = &self.0 {
                if other.len() * 8 < big.len() {
                    return match big.with_removed(other.keys()) {
                        Some(s) if s.len() <= SMALL_MAX => Datum::from_sorted_set(s.to_vec()),
                        Some(s) => Datum(Repr::Big(Arc::new(s))),
                        None => self.clone(),
                    };
                }
            }
            let keep: Vec<Atom> = self
                .keys()
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
            Datum::from_sorted_set(self.keys().filter(|a| f(a, None)).cloned().collect())
        }
    }

    /// Parses `json` as a value of type `t`, resolving named UUIDs through `named`.
    pub fn from_json<'a>(
        json: impl JsonLike<'a>,
        t: &ColumnType,
        named: NamedUuids<'_, '_>,
    ) -> Result<Datum, OvsdbError> {
        Datum::from_json_bounded(json, t, t.min, t.max, named)
    }

    /// [`Datum::from_json`] with the element count bounds `min..=max` in place of the
    /// type's (mutator arguments), without copying the type.
    pub(crate) fn from_json_bounded<'a>(
        json: impl JsonLike<'a>,
        t: &ColumnType,
        min: u32,
        max: u32,
        named: NamedUuids<'_, '_>,
    ) -> Result<Datum, OvsdbError> {
        let outer = json.elems();
        let tag = outer
            .clone()
            .and_then(|mut a| a.next())
            .and_then(|e| e.as_str());
        if !t.is_map() && tag != Some("set") {
            let a = Atom::from_json(json, t.key.atomic, named)?;
            a.check_constraints(&t.key)?;
            return Ok(Datum::from_atom(a));
        }
        let class = if t.is_map() { "map" } else { "set" };
        let inner = match outer {
            Some(mut a) if a.len() == 2 && tag == Some(class) => {
                a.next();
                a.next().and_then(|e| e.elems())
            }
            _ => None,
        };
        let Some(inner) = inner else {
            return Err(OvsdbError::syntax(
                json,
                format!("expected [\"{class}\", <array>]"),
            ));
        };
        let n = inner.len();
        if n < min as usize || n > max as usize {
            return Err(OvsdbError::syntax(
                json,
                if min == 1 && max == 1 {
                    format!("{class} must have exactly one member but {n} are present")
                } else {
                    format!("{class} must have {min} to {max} members but {n} are present")
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
                    let (kj, vj) = match e.elems() {
                        Some(mut p) if p.len() == 2 => (p.next().expect("2"), p.next().expect("2")),
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
            Repr::Set(_) | Repr::Big(_) => Value::Array(vec![
                Value::String("set".into()),
                Value::Array(self.keys().map(Atom::to_json).collect()),
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
            for a in self.keys() {
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

impl Datum {
    /// The elements of a flat (not chunked) set.
    fn flat_set(&self) -> &[Atom] {
        match &self.0 {
            Repr::One(a) => std::slice::from_ref(a),
            Repr::Set(s) => s,
            _ => &[],
        }
    }
}

/// The union of two sorted sets.
fn merge_sets<'a>(
    a: impl Iterator<Item = &'a Atom>,
    b: impl Iterator<Item = &'a Atom>,
) -> Vec<Atom> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut out = Vec::with_capacity(a.size_hint().0 + b.size_hint().0);
    loop {
        let next = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Less => a.next(),
                Ordering::Greater => b.next(),
                Ordering::Equal => {
                    b.next();
                    a.next()
                }
            },
        };
        out.push(next.expect("peeked").clone());
    }
    out
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
            let mut want: Vec<Atom> = big.set_to_vec();
            for a in s.keys() {
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

#[cfg(test)]
mod big_set_tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::hash::{Hash, Hasher};

    fn from_model(m: &BTreeSet<i64>) -> Datum {
        Datum::from_sorted_set(m.iter().map(|i| Atom::Integer(*i)).collect())
    }

    fn hash_of(d: &Datum) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        d.hash(&mut h);
        h.finish()
    }

    proptest! {
        /// Sets edited by the mutators across the flat/chunked threshold behave exactly
        /// like the same sets built in one go: equality, ordering, hashing, JSON, lookups.
        #[test]
        fn mutated_sets_equal_fresh_ones(
            start in proptest::collection::btree_set(0i64..300, 0..200),
            edits in proptest::collection::vec((any::<bool>(), proptest::collection::vec(0i64..300, 0..30)), 1..25),
        ) {
            let mut model = start.clone();
            let mut d = from_model(&start);
            for (insert, xs) in edits {
                let arg = Datum::from_set(
                    xs.iter().collect::<BTreeSet<_>>().into_iter().map(|i| Atom::Integer(*i)).collect(),
                ).unwrap();
                if insert {
                    d = d.union(&arg);
                    model.extend(&xs);
                } else {
                    d = d.difference(&arg);
                    for x in &xs { model.remove(x); }
                }
                let fresh = from_model(&model);
                prop_assert_eq!(&d, &fresh);
                prop_assert_eq!(d.cmp(&fresh), Ordering::Equal);
                prop_assert_eq!(hash_of(&d), hash_of(&fresh));
                prop_assert_eq!(d.to_json(), fresh.to_json());
                prop_assert_eq!(d.len(), model.len());
                prop_assert_eq!(d.keys().count(), model.len());
                for x in [0i64, 7, 150, 299] {
                    prop_assert_eq!(d.contains_key(&Atom::Integer(x)), model.contains(&x));
                }
                let mut smaller = model.clone();
                if let Some(x) = smaller.pop_first() {
                    let s = from_model(&smaller);
                    prop_assert_ne!(&d, &s);
                    prop_assert_eq!(d.cmp(&s), Ordering::Greater);
                    let mut diff = Vec::new();
                    s.set_difference_with(&d, |side, a| diff.push((side, a.clone())));
                    prop_assert_eq!(diff, vec![(Side::New, Atom::Integer(x))]);
                }
            }
        }
    }
}
