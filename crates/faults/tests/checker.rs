//! The checker on hand-written histories: linearizable and not, with indeterminate operations,
//! and the set workload's lost writes, phantoms, duplicates and divergence.

use halyard_faults::check::{check, check_set, Anomaly, DEFAULT_MAX_STEPS};
use halyard_faults::history::{FinalRead, History, RegisterEvent, RegisterOp, SetEvent, Status};
use halyard_faults::linearizability::Verdict;

fn reg(
    key: i64,
    op: RegisterOp,
    status: Status,
    read: Option<i64>,
    invoke: u64,
    complete: u64,
) -> RegisterEvent {
    RegisterEvent {
        client: 0,
        key,
        op,
        status,
        read,
        invoke_ns: invoke,
        complete_ns: complete,
        member: "m1".into(),
    }
}

fn read(v: i64, t0: u64, t1: u64) -> RegisterEvent {
    reg(0, RegisterOp::Read, Status::Ok, Some(v), t0, t1)
}

fn write(v: i64, status: Status, t0: u64, t1: u64) -> RegisterEvent {
    reg(0, RegisterOp::Write(v), status, None, t0, t1)
}

fn cas(old: i64, new: i64, status: Status, t0: u64, t1: u64) -> RegisterEvent {
    reg(0, RegisterOp::Cas(old, new), status, None, t0, t1)
}

fn verdict(events: &[RegisterEvent]) -> Verdict {
    let refs: Vec<&RegisterEvent> = events.iter().collect();
    halyard_faults::check::check_register(&refs, DEFAULT_MAX_STEPS)
}

fn linearizable(events: &[RegisterEvent]) -> bool {
    match verdict(events) {
        Verdict::Linearizable => true,
        Verdict::NotLinearizable { .. } => false,
        Verdict::Unknown { .. } => panic!("undecided on a tiny history"),
    }
}

#[test]
fn sequential_register() {
    assert!(linearizable(&[
        read(0, 0, 1),
        write(3, Status::Ok, 2, 3),
        read(3, 4, 5),
        cas(3, 4, Status::Ok, 6, 7),
        cas(3, 1, Status::Fail, 8, 9),
        read(4, 10, 11),
    ]));
}

#[test]
fn stale_read_is_not_linearizable() {
    assert!(!linearizable(&[write(1, Status::Ok, 0, 1), read(0, 2, 3)]));
}

#[test]
fn reads_cannot_go_back_in_time() {
    // The write overlaps both reads, but once one read saw 1 a later read cannot see 0.
    assert!(linearizable(&[
        write(1, Status::Ok, 0, 10),
        read(0, 1, 2),
        read(1, 3, 4)
    ]));
    assert!(!linearizable(&[
        write(1, Status::Ok, 0, 10),
        read(1, 1, 2),
        read(0, 3, 4)
    ]));
}

#[test]
fn acknowledged_cas_needs_its_old_value() {
    assert!(!linearizable(&[
        write(2, Status::Ok, 0, 1),
        cas(1, 3, Status::Ok, 2, 3)
    ]));
    // Concurrent with a write of 1, the cas may come after it.
    assert!(linearizable(&[
        write(1, Status::Ok, 0, 5),
        cas(1, 3, Status::Ok, 2, 6),
        read(3, 7, 8)
    ]));
}

#[test]
fn failed_cas_is_an_observation() {
    // The register is 0 and nothing else happens: a cas expecting 0 cannot fail.
    assert!(!linearizable(&[
        read(0, 0, 1),
        cas(0, 1, Status::Fail, 2, 3)
    ]));
    assert!(linearizable(&[
        write(2, Status::Ok, 0, 1),
        cas(0, 1, Status::Fail, 2, 3),
        read(2, 4, 5)
    ]));
}

#[test]
fn indeterminate_write_may_take_effect_late_or_never() {
    // Never: later reads still see 0.
    assert!(linearizable(&[
        write(1, Status::Info, 0, 1),
        read(0, 2, 3),
        read(0, 4, 5)
    ]));
    // Late: long after the client gave up.
    assert!(linearizable(&[
        write(1, Status::Info, 0, 1),
        read(0, 2, 3),
        read(1, 100, 101)
    ]));
    // But once, and not before it was invoked.
    assert!(!linearizable(&[
        write(1, Status::Info, 0, 1),
        read(1, 2, 3),
        read(0, 4, 5)
    ]));
    assert!(!linearizable(&[
        read(1, 0, 1),
        write(1, Status::Info, 2, 3)
    ]));
}

#[test]
fn indeterminate_cas_applies_only_on_its_old_value() {
    assert!(linearizable(&[
        cas(0, 5, Status::Info, 0, 1),
        read(5, 10, 11)
    ]));
    assert!(linearizable(&[
        cas(0, 5, Status::Info, 0, 1),
        read(0, 10, 11)
    ]));
    // The register holds 2 from before the cas was invoked: it cannot produce 5.
    assert!(!linearizable(&[
        write(2, Status::Ok, 0, 1),
        cas(0, 5, Status::Info, 2, 3),
        read(5, 10, 11)
    ]));
}

#[test]
fn incomplete_reads_are_ignored() {
    assert!(linearizable(&[
        reg(0, RegisterOp::Read, Status::Info, None, 0, 1),
        write(1, Status::Ok, 2, 3),
        read(1, 4, 5)
    ]));
}

/// A register driven by a random sequential execution, each operation given a random interval
/// around its linearization point: always linearizable; a read of a never-written value is not.
#[test]
fn generated_histories() {
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..20 {
        let mut state = 0i64;
        let mut events = Vec::new();
        for i in 0..120u64 {
            let point = i * 100;
            let (t0, t1) = (point - rng.u64(0..=point.min(400)), point + rng.u64(1..400));
            let ev = match rng.u8(0..4) {
                0 | 1 => read(state, t0, t1),
                2 => {
                    let v = rng.i64(0..4);
                    state = v;
                    write(v, Status::Ok, t0, t1)
                }
                _ => {
                    let (old, new) = (rng.i64(0..4), rng.i64(0..4));
                    if old == state {
                        state = new;
                        cas(old, new, Status::Ok, t0, t1)
                    } else {
                        cas(old, new, Status::Fail, t0, t1)
                    }
                }
            };
            // Some writes and cas become indeterminate (the client timed out), as in a real run.
            let ev = match ev.op {
                RegisterOp::Write(_) | RegisterOp::Cas(..)
                    if ev.status == Status::Ok && rng.u8(0..10) == 0 =>
                {
                    RegisterEvent {
                        status: Status::Info,
                        ..ev
                    }
                }
                _ => ev,
            };
            events.push(ev);
        }
        assert!(linearizable(&events), "round {round}");
        let victim = events
            .iter()
            .position(|e| e.op == RegisterOp::Read)
            .unwrap();
        events[victim].read = Some(99);
        assert!(
            !linearizable(&events),
            "round {round}: a read of 99 must be caught"
        );
    }
}

fn add(value: i64, status: Status) -> SetEvent {
    SetEvent {
        client: 0,
        value,
        status,
        invoke_ns: 0,
        complete_ns: 1,
        member: "m1".into(),
    }
}

fn final_read(member: &str, values: &[i64]) -> FinalRead {
    FinalRead {
        member: member.into(),
        values: values.to_vec(),
    }
}

#[test]
fn set_without_anomalies() {
    let events = [
        add(1, Status::Ok),
        add(2, Status::Info),
        add(3, Status::Info),
        add(4, Status::Fail),
    ];
    // Indeterminate inserts may be in or out, as long as every member agrees.
    let finals = [final_read("m1", &[1, 2]), final_read("m2", &[2, 1])];
    assert_eq!(check_set(&events, &finals), vec![]);
    // ... or appear late (committed between two final reads).
    let finals = [
        final_read("m1", &[1]),
        final_read("m2", &[1, 3]),
        final_read("m3", &[3, 1]),
    ];
    assert_eq!(check_set(&events, &finals), vec![]);
}

#[test]
fn set_anomalies() {
    let events = [
        add(1, Status::Ok),
        add(2, Status::Ok),
        add(3, Status::Info),
        add(4, Status::Fail),
        add(5, Status::Ok),
    ];
    let finals = [
        final_read("m1", &[1, 3, 4, 5, 5, 7]),
        final_read("m2", &[1, 5]),
    ];
    let anomalies = check_set(&events, &finals);
    assert!(anomalies.contains(&Anomaly::LostWrite {
        value: 2,
        missing_on: vec!["m1".into(), "m2".into()]
    }));
    assert!(anomalies.contains(&Anomaly::Phantom {
        value: 7,
        member: "m1".into()
    }));
    assert!(anomalies.contains(&Anomaly::FailedButPresent {
        value: 4,
        member: "m1".into()
    }));
    assert!(anomalies.contains(&Anomaly::Duplicate {
        value: 5,
        member: "m1".into(),
        copies: 2
    }));
    assert!(anomalies.contains(&Anomaly::Divergence {
        value: 3,
        present_on: vec!["m1".into()],
        missing_on: vec!["m2".into()]
    }));
    assert_eq!(anomalies.len(), 5, "{anomalies:?}");
}

#[test]
fn set_without_a_final_read_is_an_anomaly() {
    assert_eq!(
        check_set(&[add(1, Status::Ok)], &[]),
        vec![Anomaly::NoFinalRead]
    );
}

#[test]
fn report_counts_histories_operations_anomalies() {
    let history = History {
        set: vec![add(1, Status::Ok), add(2, Status::Ok)],
        register: vec![
            write(1, Status::Ok, 0, 1),
            read(1, 2, 3),
            reg(7, RegisterOp::Write(2), Status::Ok, None, 0, 1),
            reg(7, RegisterOp::Read, Status::Ok, Some(0), 2, 3),
        ],
        final_reads: vec![final_read("m1", &[1, 2])],
        ..Default::default()
    };
    let report = check(&history, DEFAULT_MAX_STEPS);
    assert_eq!(
        report.summary_line(),
        "3 histories, 6 operations, 1 anomalies"
    );
    assert_eq!(
        report.anomalies,
        vec![Anomaly::NotLinearizable {
            key: 7,
            operations: 2,
            linearized: 1
        }]
    );
}

/// Brute force over every order (and, for indeterminate operations, over taking effect or not):
/// an oracle independent of the search, for small histories.
fn brute_force(events: &[RegisterEvent]) -> bool {
    // Reads that did not complete observed nothing; refused writes did nothing.
    let ops: Vec<&RegisterEvent> = events
        .iter()
        .filter(|e| !(e.op == RegisterOp::Read && e.status != Status::Ok))
        .filter(|e| !(matches!(e.op, RegisterOp::Write(_)) && e.status == Status::Fail))
        .collect();
    let info: Vec<usize> = (0..ops.len())
        .filter(|i| ops[*i].status == Status::Info)
        .collect();
    for mask in 0..(1u32 << info.len()) {
        let chosen: Vec<usize> = (0..ops.len())
            .filter(|i| {
                info.iter()
                    .position(|j| j == i)
                    .is_none_or(|b| mask & (1 << b) != 0)
            })
            .collect();
        if permutations_fit(&ops, &chosen, &mut Vec::new(), 0) {
            return true;
        }
    }
    false
}

fn permutations_fit(
    ops: &[&RegisterEvent],
    chosen: &[usize],
    order: &mut Vec<usize>,
    state: i64,
) -> bool {
    if order.len() == chosen.len() {
        return true;
    }
    for &i in chosen {
        if order.contains(&i) {
            continue;
        }
        // Real time: i cannot go before an operation that completed before i was invoked.
        let blocked = chosen.iter().any(|&j| {
            j != i
                && !order.contains(&j)
                && ops[j].status != Status::Info
                && ops[j].complete_ns < ops[i].invoke_ns
        });
        if blocked {
            continue;
        }
        let e = ops[i];
        let next = match (e.op, e.status) {
            (RegisterOp::Read, _) => (e.read == Some(state)).then_some(state),
            (RegisterOp::Write(v), _) => Some(v),
            (RegisterOp::Cas(o, n), Status::Ok) => (state == o).then_some(n),
            (RegisterOp::Cas(o, _), Status::Fail) => (state != o).then_some(state),
            // Taking effect (this branch of the mask): it succeeds exactly when the value is `o`.
            (RegisterOp::Cas(o, n), Status::Info) => Some(if state == o { n } else { state }),
        };
        if let Some(next) = next {
            order.push(i);
            if permutations_fit(ops, chosen, order, next) {
                return true;
            }
            order.pop();
        }
    }
    false
}

#[test]
fn search_agrees_with_brute_force_on_random_small_histories() {
    let mut rng = fastrand::Rng::with_seed(42);
    let (mut yes, mut no) = (0, 0);
    for _ in 0..3000 {
        let n = rng.usize(1..=6);
        let events: Vec<RegisterEvent> = (0..n)
            .map(|_| {
                let t0 = rng.u64(0..20);
                let t1 = t0 + rng.u64(0..8);
                let status = match rng.u8(0..6) {
                    0 => Status::Info,
                    1 => Status::Fail,
                    _ => Status::Ok,
                };
                let op = match rng.u8(0..3) {
                    0 => RegisterOp::Read,
                    1 => RegisterOp::Write(rng.i64(0..3)),
                    _ => RegisterOp::Cas(rng.i64(0..3), rng.i64(0..3)),
                };
                let read = (op == RegisterOp::Read && status == Status::Ok).then(|| rng.i64(0..3));
                reg(0, op, status, read, t0, t1)
            })
            .collect();
        let expected = brute_force(&events);
        assert_eq!(linearizable(&events), expected, "{events:#?}");
        if expected {
            yes += 1;
        } else {
            no += 1;
        }
    }
    // Both verdicts must be well represented for the comparison to mean anything.
    assert!(yes > 300 && no > 300, "{yes} linearizable, {no} not");
}
