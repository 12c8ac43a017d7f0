//! Linearizability of a register history: the Wing–Gong search with Lowe's memoisation, as
//! Porcupine and Knossos implement it.
//!
//! The history is a list of call and return entries in time order. The search walks it, tries
//! to linearize each pending call (apply it to the model state) and, when it meets the return of
//! an operation it has not yet linearized, backtracks. A cache of (set of linearized operations,
//! state) pairs already explored cuts the search to what is actually different.
//!
//! Indeterminate (`info`) operations return at infinity: they may be linearized at any point
//! after their call — or after everything else, which is the same as never taking effect,
//! since nothing observes the state after the last operation.

use std::collections::HashSet;

use crate::history::{RegisterEvent, RegisterOp, Status};

/// What an operation did, as far as the model is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A read that returned this value.
    Read(i64),
    /// A write, acknowledged or indeterminate: when it takes effect the register holds the value.
    Write(i64),
    /// An acknowledged compare-and-set.
    CasOk(i64, i64),
    /// A compare-and-set whose `wait` found a value other than `old`: it observed the register.
    CasFail(i64),
    /// An indeterminate compare-and-set: where it takes effect, it succeeds if the register holds
    /// `old` and changes nothing otherwise.
    CasInfo(i64, i64),
}

/// One operation with its real-time interval. `ret == u64::MAX` for indeterminate ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    pub call: u64,
    pub ret: u64,
    pub kind: Kind,
}

impl Operation {
    /// Applies the operation to `state`: the new state, or `None` if it cannot happen there.
    pub fn step(&self, state: i64) -> Option<i64> {
        match self.kind {
            Kind::Read(v) => (state == v).then_some(state),
            Kind::Write(v) => Some(v),
            Kind::CasOk(old, new) => (state == old).then_some(new),
            Kind::CasFail(old) => (state != old).then_some(state),
            Kind::CasInfo(old, new) => Some(if state == old { new } else { state }),
        }
    }
}

/// Turns recorded events into model operations. Reads that did not complete are dropped: they
/// change nothing and observed nothing.
pub fn operations(events: &[&RegisterEvent]) -> Vec<Operation> {
    events
        .iter()
        .filter_map(|e| {
            let kind = match (e.op, e.status) {
                (RegisterOp::Read, Status::Ok) => Kind::Read(e.read?),
                (RegisterOp::Read, _) => return None,
                (RegisterOp::Write(v), Status::Ok | Status::Info) => Kind::Write(v),
                // A write the server refused outright did nothing.
                (RegisterOp::Write(_), Status::Fail) => return None,
                (RegisterOp::Cas(o, n), Status::Ok) => Kind::CasOk(o, n),
                (RegisterOp::Cas(o, _), Status::Fail) => Kind::CasFail(o),
                (RegisterOp::Cas(o, n), Status::Info) => Kind::CasInfo(o, n),
            };
            let ret = if e.status == Status::Info {
                u64::MAX
            } else {
                e.complete_ns
            };
            Some(Operation {
                call: e.invoke_ns,
                ret,
                kind,
            })
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order fits. `linearized` is the most operations any explored branch managed to place.
    NotLinearizable {
        linearized: usize,
    },
    /// The search gave up after `steps` (the history is too ambiguous to decide in budget).
    Unknown {
        steps: u64,
    },
}

const NIL: usize = usize::MAX;

struct Entry {
    op: usize,
    is_call: bool,
    /// For a call, the index of its return entry.
    partner: usize,
    prev: usize,
    next: usize,
}

/// Decides whether `ops`, starting from `initial`, is linearizable; gives up after `max_steps`
/// search steps.
pub fn check(ops: &[Operation], initial: i64, max_steps: u64) -> Verdict {
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Entries in time order; at equal times calls come first (the operations then overlap,
    // which only ever allows more orders, never reports a false anomaly).
    let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.call, 0, i));
        order.push((op.ret, 1, i));
    }
    order.sort_unstable();
    let head = 2 * n;
    let mut entries: Vec<Entry> = Vec::with_capacity(2 * n + 1);
    let mut return_at = vec![NIL; n];
    for (pos, &(_, kind, op)) in order.iter().enumerate() {
        if kind == 1 {
            return_at[op] = pos;
        }
        entries.push(Entry {
            op,
            is_call: kind == 0,
            partner: NIL,
            prev: if pos == 0 { head } else { pos - 1 },
            next: if pos + 1 == 2 * n { NIL } else { pos + 1 },
        });
    }
    entries.push(Entry {
        op: NIL,
        is_call: false,
        partner: NIL,
        prev: NIL,
        next: 0,
    });
    for e in entries.iter_mut().take(2 * n) {
        if e.is_call {
            e.partner = return_at[e.op];
        }
    }

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut count = 0usize;
    let mut best = 0usize;
    let mut state = initial;
    let mut cache: HashSet<(Vec<u64>, i64)> = HashSet::new();
    let mut calls: Vec<(usize, i64)> = Vec::new();
    let mut cur = entries[head].next;
    let mut steps = 0u64;
    while entries[head].next != NIL {
        steps += 1;
        if steps > max_steps {
            return Verdict::Unknown { steps };
        }
        let e = cur;
        if entries[e].is_call {
            let op = entries[e].op;
            if let Some(next_state) = ops[op].step(state) {
                linearized[op / 64] |= 1 << (op % 64);
                if cache.insert((linearized.clone(), next_state)) {
                    calls.push((e, state));
                    state = next_state;
                    count += 1;
                    best = best.max(count);
                    lift(&mut entries, e);
                    cur = entries[head].next;
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            cur = entries[e].next;
        } else {
            // The return of an operation not yet linearized: this branch is dead.
            let Some((call, previous)) = calls.pop() else {
                return Verdict::NotLinearizable { linearized: best };
            };
            let op = entries[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            count -= 1;
            state = previous;
            unlift(&mut entries, call);
            cur = entries[call].next;
        }
    }
    Verdict::Linearizable
}

/// Removes a call and its return from the list (they stay linked to their old neighbours so
/// `unlift` can put them back).
fn lift(entries: &mut [Entry], call: usize) {
    let ret = entries[call].partner;
    let (p, n) = (entries[call].prev, entries[call].next);
    entries[p].next = n;
    if n != NIL {
        entries[n].prev = p;
    }
    let (p, n) = (entries[ret].prev, entries[ret].next);
    entries[p].next = n;
    if n != NIL {
        entries[n].prev = p;
    }
}

fn unlift(entries: &mut [Entry], call: usize) {
    let ret = entries[call].partner;
    let (p, n) = (entries[ret].prev, entries[ret].next);
    entries[p].next = ret;
    if n != NIL {
        entries[n].prev = ret;
    }
    let (p, n) = (entries[call].prev, entries[call].next);
    entries[p].next = call;
    if n != NIL {
        entries[n].prev = call;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: u64, ret: u64, kind: Kind) -> Operation {
        Operation { call, ret, kind }
    }

    #[test]
    fn sequential_history() {
        let h = [
            op(0, 1, Kind::Write(1)),
            op(2, 3, Kind::Read(1)),
            op(4, 5, Kind::CasOk(1, 2)),
            op(6, 7, Kind::Read(2)),
        ];
        assert_eq!(check(&h, 0, 1_000), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_write_is_caught() {
        let h = [op(0, 1, Kind::Write(1)), op(2, 3, Kind::Read(0))];
        assert!(matches!(
            check(&h, 0, 1_000),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn concurrent_read_may_see_either_value() {
        let h = [
            op(0, 10, Kind::Write(1)),
            op(1, 2, Kind::Read(0)),
            op(3, 4, Kind::Read(1)),
        ];
        assert_eq!(check(&h, 0, 1_000), Verdict::Linearizable);
        // ... but not go back once the new value was seen.
        let h = [
            op(0, 10, Kind::Write(1)),
            op(1, 2, Kind::Read(1)),
            op(3, 4, Kind::Read(0)),
        ];
        assert!(matches!(
            check(&h, 0, 1_000),
            Verdict::NotLinearizable { .. }
        ));
    }
}
