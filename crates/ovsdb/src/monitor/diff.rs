//! The `modify` diff of `<row-update2>` (ovsdb-server's `ovsdb_datum_diff`,
//! docs/ovsdb-protocol.md §2.6): for a column whose type has `max > 1` the diff is the symmetric
//! difference of the sets (for maps: removed keys with their old value, added keys and
//! keys whose value changed with the new value), which the client XORs into its copy;
//! for any other column (scalars, optional scalars, `max 1` maps) it is the new value.

use std::cmp::Ordering;

use crate::atom::Atom;
use crate::datum::Datum;

/// The diff from `old` to `new` for a column; `composite` is `max > 1` of its type.
pub(crate) fn diff(old: &Datum, new: &Datum, composite: bool) -> Datum {
    if !composite {
        return new.clone();
    }
    if old.is_map() || new.is_map() {
        map_diff(old.as_map(), new.as_map())
    } else {
        // The symmetric difference, in order: elements only in `old` and only in `new`
        // never coincide, so the merge order is the sorted order.
        let mut out = Vec::new();
        old.set_difference_with(new, |_, a| out.push(a.clone()));
        Datum::from_sorted_set(out)
    }
}

fn map_diff(old: &[(Atom, Atom)], new: &[(Atom, Atom)]) -> Datum {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        match old[i].0.cmp(&new[j].0) {
            Ordering::Less => {
                out.push(old[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(new[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                if old[i].1 != new[j].1 {
                    out.push(new[j].clone());
                }
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&old[i..]);
    out.extend_from_slice(&new[j..]);
    Datum::from_sorted_map(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(v: &[i64]) -> Datum {
        Datum::from_set(v.iter().map(|i| Atom::Integer(*i)).collect()).unwrap()
    }

    fn map(v: &[(&str, i64)]) -> Datum {
        Datum::from_map(
            v.iter()
                .map(|(k, i)| (Atom::string(k), Atom::Integer(*i)))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn rules() {
        // (old, new, composite, expected diff JSON)
        let cases = [
            (
                set(&[1, 2, 3]),
                set(&[2, 3, 4]),
                true,
                json!(["set", [1, 4]]),
            ),
            (set(&[1, 2]), set(&[1]), true, json!(2)),
            (set(&[]), set(&[7, 8]), true, json!(["set", [7, 8]])),
            (set(&[7, 8]), set(&[]), true, json!(["set", [7, 8]])),
            (set(&[1]), set(&[1]), true, json!(["set", []])),
            (
                map(&[("a", 1), ("b", 2), ("c", 3)]),
                map(&[("b", 22), ("c", 3), ("d", 4)]),
                true,
                json!(["map", [["a", 1], ["b", 22], ["d", 4]]]),
            ),
            (map(&[]), map(&[("k", 1)]), true, json!(["map", [["k", 1]]])),
            (map(&[("k", 1)]), map(&[]), true, json!(["map", [["k", 1]]])),
            (set(&[5]), set(&[]), false, json!(["set", []])),
            (set(&[]), set(&[5]), false, json!(5)),
            (set(&[5]), set(&[6]), false, json!(6)),
            (
                map(&[("k", 1)]),
                map(&[("k", 2)]),
                false,
                json!(["map", [["k", 2]]]),
            ),
        ];
        for (old, new, composite, want) in cases {
            assert_eq!(
                diff(&old, &new, composite).to_json(),
                want,
                "{old:?} -> {new:?}"
            );
        }
    }
}
