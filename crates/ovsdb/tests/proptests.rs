//! Property tests: JSON round trips of datums of every type, and determinism of the
//! engine (the same transactions applied to fresh databases give byte-identical
//! snapshots, which also survive a snapshot round trip, and so do their change sets).

mod common;
use common::*;
use ovsdb::{Atom, AtomicType, ChangeSet, ColumnType, Database, Datum, SeqEnv};
use proptest::prelude::*;
use serde_json::{json, Value};

fn atom_strategy(t: AtomicType) -> BoxedStrategy<Atom> {
    match t {
        AtomicType::Integer => any::<i64>().prop_map(Atom::Integer).boxed(),
        AtomicType::Real => prop_oneof![
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Atom::real),
            (-1000i64..1000).prop_map(|i| Atom::real(i as f64)),
        ]
        .boxed(),
        AtomicType::Boolean => any::<bool>().prop_map(Atom::Boolean).boxed(),
        AtomicType::String => "\\PC{0,12}".prop_map(|s: String| Atom::string(&s)).boxed(),
        AtomicType::Uuid => any::<u128>()
            .prop_map(|u| Atom::Uuid(uuid::Uuid::from_u128(u)))
            .boxed(),
    }
}

fn atomic() -> impl Strategy<Value = AtomicType> {
    prop_oneof![
        Just(AtomicType::Integer),
        Just(AtomicType::Real),
        Just(AtomicType::Boolean),
        Just(AtomicType::String),
        Just(AtomicType::Uuid),
    ]
}

fn type_and_datum() -> impl Strategy<Value = (ColumnType, Datum)> {
    (
        atomic(),
        proptest::option::of(atomic()),
        0u32..2,
        prop_oneof![Just(1u32), Just(3), Just(u32::MAX)],
    )
        .prop_flat_map(|(k, v, min, max)| {
            let t = ColumnType {
                key: ovsdb::BaseType::new(k),
                value: v.map(ovsdb::BaseType::new),
                min,
                max,
            };
            let n = (min as usize)..=(max.min(5) as usize);
            let keys = proptest::collection::btree_set(atom_strategy(k), n.clone());
            let values =
                proptest::collection::vec(atom_strategy(v.unwrap_or(AtomicType::Integer)), 5);
            (Just(t), keys, values)
        })
        .prop_filter_map("count within bounds", |(t, keys, values)| {
            let keys: Vec<Atom> = keys.into_iter().collect();
            if keys.len() < t.min as usize || keys.len() > t.max as usize {
                return None;
            }
            let d = if t.value.is_some() {
                Datum::from_map(keys.into_iter().zip(values).collect()).ok()?
            } else {
                Datum::from_set(keys).ok()?
            };
            Some((t, d))
        })
}

proptest! {
    #[test]
    fn datum_json_round_trip((t, d) in type_and_datum()) {
        let j = d.to_json();
        // Through text as well, as on the wire.
        let text = j.to_string();
        let back: Value = serde_json::from_str(&text).unwrap();
        let parsed = Datum::from_json(&back, &t, &mut None).unwrap();
        prop_assert_eq!(&parsed, &d);
        prop_assert_eq!(parsed.to_json(), j.clone());
        if t.is_map() {
            prop_assert_eq!(&j[0], &json!("map"));
        } else if d.len() == 1 {
            prop_assert!(j.get(0) != Some(&json!("set")), "1-element sets are bare atoms");
        }
        // Integral reals have no decimal point.
        if let Some(Atom::Real(r)) = d.as_scalar() {
            if r.fract() == 0.0 && r.abs() < 1e15 {
                prop_assert!(!text.contains('.'), "{}", text);
            }
        }
    }
}

/// A random operation on the test schema, built from small integers so that sequences
/// hit conflicts, references, garbage collection and weak references often.
fn op_strategy() -> impl Strategy<Value = Value> {
    let small = 0i64..4;
    prop_oneof![
        (small.clone(), small.clone()).prop_map(|(k, a)| json!({"op":"insert","table":"I","row":{"k":k,"a":a,"b":a}})),
        small.clone().prop_map(|x| json!({"op":"insert","table":"C","row":{"x":x}})),
        small.clone().prop_map(|k| json!({"op":"delete","table":"I","where":[["k","==",k]]})),
        (small.clone(), small.clone()).prop_map(|(k, n)| json!({"op":"update","table":"I","where":[["k","==",k]],"row":{"k":n}})),
        small.clone().prop_map(|x| json!({"op":"mutate","table":"C","where":[["x","<=",x]],"mutations":[["x","+=",1]]})),
        small.clone().prop_map(|n| json!({"op":"insert","table":"B","row":{"name":format!("b{n}")},"uuid-name":format!("b{n}")})),
        (small.clone(), any::<bool>()).prop_map(|(n, weak)| {
            let col = if weak { "wref" } else { "sref" };
            json!({"op":"insert","table":"A","row":{"e":"red", col:["named-uuid",format!("b{n}")]}})
        }),
        small.clone().prop_map(|n| json!({"op":"mutate","table":"A","where":[],"mutations":[["sref","delete",["set",[]]],["i","+=",n]]})),
        Just(json!({"op":"update","table":"A","where":[],"row":{"sref":["set",[]]}})),
        small.clone().prop_map(|n| json!({"op":"delete","table":"B","where":[["name","==",format!("b{n}")]]})),
        Just(json!({"op":"delete","table":"A","where":[["i",">",2]]})),
        Just(json!({"op":"select","table":"I","where":[],"columns":["k"],"sort":["k"]})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn determinism(txns in proptest::collection::vec(proptest::collection::vec(op_strategy(), 1..5), 1..25)) {
        let run = || {
            let mut db = Database::new(test_schema());
            let mut env = SeqEnv::new(7);
            let mut results = Vec::new();
            for ops in &txns {
                let out = db.transact(ops, &mut env);
                results.push((out.result, out.changes));
            }
            (db, results)
        };
        let (a, ra) = run();
        let (b, rb) = run();
        prop_assert_eq!(&ra, &rb);
        // Change sets survive their snapshot encoding (the monitor_cond_since history).
        for changes in ra.iter().filter_map(|(_, c)| c.as_ref()) {
            let bytes = changes.encode(&test_schema());
            prop_assert_eq!(&ChangeSet::decode(&test_schema(), &bytes).unwrap(), changes);
        }
        let sa = a.snapshot();
        prop_assert_eq!(&sa, &b.snapshot());
        let c = Database::from_snapshot(test_schema(), &sa).unwrap();
        prop_assert_eq!(&c.snapshot(), &sa);
        prop_assert!(c == a);
        // Decoded from a stream that hands out a few bytes per read, it is the same database.
        let d = Database::from_snapshot_reader(test_schema(), Dribble(&sa, 0), sa.len() as u64).unwrap();
        prop_assert!(d == a);
        // Derived state rebuilt from the snapshot equals the incrementally kept state.
        for (u, _) in a.rows("B") {
            prop_assert_eq!(a.ref_count("B", u), c.ref_count("B", u));
            prop_assert!(a.ref_count("B", u) > 0, "non-root rows left must be referenced");
        }
    }
}

#[test]
fn snapshot_rejects_garbage() {
    let s = test_schema();
    assert!(Database::from_snapshot(s.clone(), b"nope").is_err());
    let mut f = Fixture::new();
    f.ok(json!([{"op":"insert","table":"C","row":{"x":-5}},{"op":"insert","table":"A","row":{"e":"green","r":0.25,"s":"héllo","m":["map",[["k",1]]]}}]));
    let snap = f.db.snapshot();
    for cut in [5, snap.len() / 2, snap.len() - 1] {
        assert!(
            Database::from_snapshot(s.clone(), &snap[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    let mut extra = snap.clone();
    extra.push(0);
    assert!(Database::from_snapshot(s.clone(), &extra).is_err());
    let back = Database::from_snapshot(s.clone(), &snap).unwrap();
    assert!(back == f.db);

    // The same from a stream: cut short, or longer than its length says, it is an error; it
    // reads exactly its length, leaving what follows in the stream.
    let read =
        |bytes: &[u8], len: u64| Database::from_snapshot_reader(s.clone(), Dribble(bytes, 0), len);
    for cut in [5, snap.len() / 2, snap.len() - 1] {
        assert!(
            read(&snap[..cut], snap.len() as u64).is_err(),
            "stream cut at {cut}"
        );
        assert!(
            read(&snap, cut as u64).is_err(),
            "length {cut} of {}",
            snap.len()
        );
    }
    assert!(read(&extra, extra.len() as u64).is_err(), "a trailing byte");
    assert!(read(b"nope", 4).is_err());
    let mut stream = std::io::Cursor::new([&snap[..], b"after"].concat());
    let back = Database::from_snapshot_reader(s, &mut stream, snap.len() as u64).unwrap();
    assert!(back == f.db);
    assert_eq!(stream.position(), snap.len() as u64);
}

/// A reader that hands out 1 to 7 bytes per read.
struct Dribble<'a>(&'a [u8], usize);

impl std::io::Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.1 % 7 + 1).min(buf.len()).min(self.0.len());
        self.1 += 1;
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// A database too large to encode in one piece streams to its writer in pieces of bounded
/// size, and the pieces are exactly `snapshot()`'s bytes.
#[test]
fn a_large_snapshot_streams_in_bounded_pieces() {
    struct Pieces(Vec<usize>, Vec<u8>);
    impl std::io::Write for Pieces {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.len());
            self.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut f = Fixture::new();
    let value = "v".repeat(1000);
    for chunk in 0..20 {
        let ops: Vec<Value> = (0..100)
            .map(|i| json!({"op":"insert","table":"A","row":{"e":"green","s": format!("{chunk}-{i}-{value}")}}))
            .collect();
        f.ok(Value::Array(ops));
    }
    let whole = f.db.snapshot();
    assert!(whole.len() > 1_500_000, "{} bytes", whole.len());
    let mut pieces = Pieces(Vec::new(), Vec::new());
    let n = f.db.write_snapshot(&mut pieces).unwrap();
    assert_eq!(n, whole.len() as u64);
    assert!(pieces.1 == whole, "streamed bytes differ from snapshot()");
    assert!(pieces.0.len() > 4, "{} pieces", pieces.0.len());
    let largest = pieces.0.iter().max().unwrap();
    assert!(*largest < 300 * 1024, "a piece of {largest} bytes");
}

/// Arbitrary JSON (shaped loosely like operations) never panics the engine.
fn json_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        prop_oneof![
            Just("insert"),
            Just("select"),
            Just("update"),
            Just("mutate"),
            Just("delete"),
            Just("wait"),
            Just("commit"),
            Just("abort"),
            Just("comment"),
            Just("assert"),
            Just("A"),
            Just("B"),
            Just("C"),
            Just("I"),
            Just("W"),
            Just("i"),
            Just("si"),
            Just("m"),
            Just("sref"),
            Just("wref"),
            Just("_uuid"),
            Just("=="),
            Just("<"),
            Just("includes"),
            Just("+="),
            Just("insert"),
            Just("delete"),
            Just("set"),
            Just("map"),
            Just("uuid"),
            Just("named-uuid"),
            Just("x"),
            Just("00000000-0000-0000-0000-000000000001")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("op"),
                        Just("table"),
                        Just("row"),
                        Just("where"),
                        Just("mutations"),
                        Just("columns"),
                        Just("sort"),
                        Just("until"),
                        Just("rows"),
                        Just("timeout"),
                        Just("uuid-name"),
                        Just("uuid"),
                        Just("durable"),
                        Just("lock"),
                        Just("comment"),
                        Just("e"),
                        Just("i"),
                        Just("si"),
                        Just("m"),
                        Just("sref")
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn never_panics(ops in proptest::collection::vec(json_strategy(), 0..4)) {
        let mut f = Fixture::new();
        f.ok(json!([{"op":"insert","table":"A","row":{"e":"red","i":1,"si":["set",[1,2]]}}]));
        let out = f.db.transact(&ops, &mut f.env);
        prop_assert!(out.result.is_array() || out.blocked);
    }
}

#[test]
fn integral_reals_print_without_decimal_point() {
    for (x, text) in [
        (0.0, "0"),
        (2.0, "2"),
        (-3.0, "-3"),
        (1e15, "1000000000000000"),
    ] {
        assert_eq!(Atom::real(x).to_json().to_string(), text);
    }
    for x in [1e17, 1e300, 123456789e10, f64::MAX, 0.1, 1e-300, 5e-324] {
        let s = Atom::real(x).to_json().to_string();
        assert_eq!(s.parse::<f64>().unwrap(), x, "{s} round-trips");
        if x.fract() == 0.0 && x.abs() < 9.2e18 {
            assert!(!s.contains('.') && !s.contains('e'), "{s}");
        }
    }
}
