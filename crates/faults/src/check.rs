//! The verdict on a history: the set workload's safety properties (no lost acknowledged insert,
//! no phantom, no duplicate, members agree) and the register workload's linearizability, per key.
//!
//! Indeterminate (`info`) operations are never counted as successes or failures: an
//! indeterminate insert may or may not be in the final read; an indeterminate register write
//! may take effect at any time after it was invoked, or never.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::history::{FinalRead, History, RegisterEvent, SetEvent, Status};
use crate::linearizability::{self, Verdict};

/// Search steps allowed per key before the register check gives up on it (reported, not
/// counted as an anomaly).
pub const DEFAULT_MAX_STEPS: u64 = 20_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// An acknowledged insert missing from these members' final read.
    LostWrite { value: i64, missing_on: Vec<String> },
    /// A value in a final read that no client ever tried to insert.
    Phantom { value: i64, member: String },
    /// A value present although the server answered that its insert failed.
    FailedButPresent { value: i64, member: String },
    /// A value present more than once in one member's final read (applied twice).
    Duplicate {
        value: i64,
        member: String,
        copies: usize,
    },
    /// An indeterminate insert seen by one member's final read and missing from a later one.
    Divergence {
        value: i64,
        present_on: Vec<String>,
        missing_on: Vec<String>,
    },
    /// The set workload had no final read to check against.
    NoFinalRead,
    /// A large-workload row served with other content than was sent: (length, hash) each.
    Corrupt {
        key: i64,
        member: String,
        sent: (usize, u64),
        served: (usize, u64),
    },
    /// Some but not all rows of one transaction on a member.
    PartialTransaction {
        first_key: i64,
        rows: usize,
        present: usize,
        member: String,
    },
    /// A member process exited without being stopped by the suite.
    MemberExited(String),
    /// An anomaly of the large-value workload (its keys are rows of `Blob`).
    Large(Box<Anomaly>),
    /// No member led with a quorum for longer than allowed (outside the nemesis's deliberate
    /// whole-cluster outages).
    Leaderless {
        longest_ms: u64,
        from_ms: u64,
        limit_ms: u64,
    },
    /// No order of the operations on this register is consistent with their results.
    NotLinearizable {
        key: i64,
        operations: usize,
        linearized: usize,
    },
}

impl Anomaly {
    /// A short name of the kind of anomaly, for counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::LostWrite { .. } => "lost write",
            Anomaly::Phantom { .. } => "phantom",
            Anomaly::FailedButPresent { .. } => "failed but present",
            Anomaly::Duplicate { .. } => "duplicate",
            Anomaly::Divergence { .. } => "divergence",
            Anomaly::NoFinalRead => "no final read",
            Anomaly::NotLinearizable { .. } => "not linearizable",
            Anomaly::Corrupt { .. } => "corrupt content",
            Anomaly::PartialTransaction { .. } => "partial transaction",
            Anomaly::Leaderless { .. } => "leaderless stretch",
            Anomaly::MemberExited(_) => "member exited",
            Anomaly::Large(a) => match a.kind() {
                "lost write" => "large: lost write",
                "phantom" => "large: phantom",
                "failed but present" => "large: failed but present",
                "duplicate" => "large: duplicate",
                "divergence" => "large: divergence",
                "no final read" => "large: no final read",
                "corrupt content" => "large: corrupt content",
                "partial transaction" => "large: partial transaction",
                _ => "large: other",
            },
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::LostWrite { value, missing_on } => {
                write!(f, "lost write: acknowledged insert {value} missing on {}", missing_on.join(", "))
            }
            Anomaly::Phantom { value, member } => write!(f, "phantom: {value} on {member} was never inserted"),
            Anomaly::FailedButPresent { value, member } => {
                write!(f, "failed insert {value} is present on {member}")
            }
            Anomaly::Duplicate { value, member, copies } => write!(f, "duplicate: {value} appears {copies} times on {member}"),
            Anomaly::Divergence { value, present_on, missing_on } => write!(
                f,
                "divergence: {value} present on {} but missing on {}",
                present_on.join(", "),
                missing_on.join(", ")
            ),
            Anomaly::NoFinalRead => write!(f, "set: no member answered the final read"),
            Anomaly::Corrupt { key, member, sent, served } => write!(
                f,
                "row {key} on {member}: {} bytes hashing to {:016x}, sent {} bytes hashing to {:016x}",
                served.0, served.1, sent.0, sent.1
            ),
            Anomaly::PartialTransaction { first_key, rows, present, member } => write!(
                f,
                "transaction of {rows} rows from {first_key}: {present} of them on {member}"
            ),
            Anomaly::Large(a) => write!(f, "large: {a}"),
            Anomaly::MemberExited(what) => write!(f, "member crashed: {what}"),
            Anomaly::Leaderless { longest_ms, from_ms, limit_ms } => write!(
                f,
                "no leader for {longest_ms} ms from {:.1} s (limit {limit_ms} ms)",
                *from_ms as f64 / 1000.0
            ),
            Anomaly::NotLinearizable { key, operations, linearized } => write!(
                f,
                "register {key}: not linearizable ({operations} operations, at most {linearized} placed in a valid order)"
            ),
        }
    }
}

/// The outcome of checking one run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Independent histories checked: the set history, and one per register key.
    pub histories: usize,
    /// Operations in them (every invoked operation, whatever its outcome).
    pub operations: usize,
    pub anomalies: Vec<Anomaly>,
    /// Register keys the search could not decide in budget (not counted as anomalies).
    pub undecided: Vec<i64>,
    pub set_counts: Counts,
    pub register_counts: Counts,
    pub large_counts: Counts,
    /// Longest stretch without a leader (ms) and when it began (s), if the leader was watched.
    pub longest_leaderless: Option<(u64, f64)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
}

impl Counts {
    fn add(&mut self, s: Status) {
        match s {
            Status::Ok => self.ok += 1,
            Status::Fail => self.fail += 1,
            Status::Info => self.info += 1,
        }
    }
}

impl Report {
    /// How many anomalies of each kind, e.g. `lost write: 12, not linearizable: 3`.
    pub fn by_kind(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &self.anomalies {
            *counts.entry(a.kind()).or_insert(0) += 1;
        }
        counts
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The last line of the suite's output.
    pub fn summary_line(&self) -> String {
        format!(
            "{} histories, {} operations, {} anomalies",
            self.histories,
            self.operations,
            self.anomalies.len()
        )
    }
}

/// Checks everything recorded in `history`.
pub fn check(history: &History, max_steps: u64) -> Report {
    let mut report = Report::default();
    if !history.set.is_empty() || !history.final_reads.is_empty() {
        report.histories += 1;
        report.operations += history.set.len();
        for e in &history.set {
            report.set_counts.add(e.status);
        }
        report
            .anomalies
            .extend(check_set(&history.set, &history.final_reads));
    }
    if !history.large.is_empty() || !history.large_reads.is_empty() {
        report.histories += 1;
        report.operations += history.large.len();
        for e in &history.large {
            report.large_counts.add(e.status);
        }
        report.anomalies.extend(crate::large::check_large(
            &history.large,
            &history.large_reads,
        ));
    }
    let mut by_key: BTreeMap<i64, Vec<&RegisterEvent>> = BTreeMap::new();
    for e in &history.register {
        by_key.entry(e.key).or_default().push(e);
        report.register_counts.add(e.status);
    }
    for (key, events) in by_key {
        report.histories += 1;
        report.operations += events.len();
        match check_register(&events, max_steps) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { linearized } => {
                report.anomalies.push(Anomaly::NotLinearizable {
                    key,
                    operations: events.len(),
                    linearized,
                })
            }
            Verdict::Unknown { .. } => report.undecided.push(key),
        }
    }
    report
}

/// The register starts at 0 (the suite creates every row with value 0 before the run).
pub fn check_register(events: &[&RegisterEvent], max_steps: u64) -> Verdict {
    linearizability::check(&linearizability::operations(events), 0, max_steps)
}

/// The set workload: every acknowledged insert is in every member's final read; nothing is there
/// that was never attempted, failed, or is there twice; no value seen by one final read is
/// missing from a later one. `finals` are in the order they were taken.
/// A value first seen by one final read must be in every later one (reads are linearizable and
/// nothing deletes): the divergence if a later read (`members[i]` took `present[i]`) lacks it.
pub(crate) fn divergence<V>(
    value: i64,
    members: &[String],
    present: &[BTreeMap<i64, V>],
) -> Option<Anomaly> {
    let first = present.iter().position(|p| p.contains_key(&value))?;
    let missing_on: Vec<String> = members[first..]
        .iter()
        .zip(&present[first..])
        .filter(|(_, p)| !p.contains_key(&value))
        .map(|(m, _)| m.clone())
        .collect();
    if missing_on.is_empty() {
        return None;
    }
    let present_on = members
        .iter()
        .zip(present)
        .filter(|(_, p)| p.contains_key(&value))
        .map(|(m, _)| m.clone())
        .collect();
    Some(Anomaly::Divergence {
        value,
        present_on,
        missing_on,
    })
}

pub fn check_set(events: &[SetEvent], finals: &[FinalRead]) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    if finals.is_empty() {
        anomalies.push(Anomaly::NoFinalRead);
        return anomalies;
    }
    let mut attempted: BTreeMap<i64, Status> = BTreeMap::new();
    for e in events {
        attempted.insert(e.value, e.status);
    }
    let present: Vec<BTreeMap<i64, usize>> = finals
        .iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            for v in &r.values {
                *m.entry(*v).or_insert(0) += 1;
            }
            m
        })
        .collect();
    for (value, status) in &attempted {
        if *status == Status::Ok {
            let missing_on: Vec<String> = finals
                .iter()
                .zip(&present)
                .filter(|(_, p)| !p.contains_key(value))
                .map(|(r, _)| r.member.clone())
                .collect();
            if !missing_on.is_empty() {
                anomalies.push(Anomaly::LostWrite {
                    value: *value,
                    missing_on,
                });
            }
        }
    }
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    for (read, p) in finals.iter().zip(&present) {
        for (value, copies) in p {
            seen.insert(*value);
            match attempted.get(value) {
                None => anomalies.push(Anomaly::Phantom {
                    value: *value,
                    member: read.member.clone(),
                }),
                Some(Status::Fail) => anomalies.push(Anomaly::FailedButPresent {
                    value: *value,
                    member: read.member.clone(),
                }),
                _ => {}
            }
            if *copies > 1 {
                anomalies.push(Anomaly::Duplicate {
                    value: *value,
                    member: read.member.clone(),
                    copies: *copies,
                });
            }
        }
    }
    // Indeterminate inserts may still commit while the final reads are taken (a member may
    // have been retrying one), so a value may appear in a later read only. But a value seen by
    // one read must be in every later one: reads are linearizable and nothing deletes.
    for value in seen {
        if attempted.get(&value) != Some(&Status::Info) {
            continue;
        }
        let members: Vec<String> = finals.iter().map(|r| r.member.clone()).collect();
        anomalies.extend(divergence(value, &members, &present));
    }
    anomalies
}
