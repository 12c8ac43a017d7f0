//! The divergence guard: the worst bug a replicated database can have is two replicas that
//! applied the same log differently. Every member folds each applied command and its outcome
//! into a running digest (FNV-1a, stable across builds and platforms, unlike std's hasher), keeps
//! the digests of its recent log indexes, and the leader periodically asks every member for its
//! latest (index, digest) and compares with its own at that index. A mismatch is logged as an
//! error naming both members and the index; it is not repaired automatically.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use crate::command::{Command, Outcome};
use crate::member::Member;

/// How many recent (index, digest) pairs a member keeps for comparison.
pub const KEPT: usize = 8192;
/// How often the leader compares the members' digests.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    if h == 0 {
        h = FNV_OFFSET;
    }
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The digest after applying `cmd` with `outcome` on top of `digest`.
pub fn fold(digest: u64, cmd: &Command, outcome: &Outcome) -> u64 {
    fold_id(digest, cmd.id, outcome)
}

/// The digest after applying the command with id `id` with `outcome` on top of `digest`.
pub fn fold_id(digest: u64, id: uuid::Uuid, outcome: &Outcome) -> u64 {
    let h = fnv(digest, id.as_bytes());
    match outcome {
        Outcome::Transact { result } => fnv(h, result.as_bytes()),
        other => fnv(h, format!("{other:?}").as_bytes()),
    }
}

/// Digests of recent log indexes on this member.
#[derive(Default)]
pub struct Recent(Mutex<VecDeque<(u64, u64)>>);

impl Recent {
    pub fn record(&self, index: u64, digest: u64) {
        let mut q = self.0.lock().unwrap();
        if q.len() == KEPT {
            q.pop_front();
        }
        q.push_back((index, digest));
    }

    pub fn latest(&self) -> Option<(u64, u64)> {
        self.0.lock().unwrap().back().copied()
    }

    pub fn at(&self, index: u64) -> Option<u64> {
        let q = self.0.lock().unwrap();
        q.iter().rev().find(|(i, _)| *i == index).map(|(_, d)| *d)
    }
}

/// The leader's periodic comparison.
pub(crate) async fn run(member: Weak<Member>) {
    let mut reported: BTreeMap<u64, u64> = BTreeMap::new();
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(m) = member.upgrade() else { return };
        if !m.status().is_leader {
            continue;
        }
        let me = m.identity().node_id;
        for (node, addr) in m.peers() {
            if node == me {
                continue;
            }
            let Ok(mut client) = crate::network::client(&addr) else {
                continue;
            };
            let mut req = tonic::Request::new(crate::pb::Empty {});
            req.set_timeout(Duration::from_secs(2));
            let Ok(reply) = client.status(req).await else {
                continue;
            };
            let Ok(status) = serde_json::from_str::<serde_json::Value>(&reply.into_inner().json)
            else {
                continue;
            };
            let (Some(index), Some(theirs)) = (
                status["digest"]["index"].as_u64(),
                status["digest"]["value"]
                    .as_str()
                    .and_then(|v| u64::from_str_radix(v, 16).ok()),
            ) else {
                continue;
            };
            match m.digest_at(index) {
                Some(ours) if ours != theirs && !reported.contains_key(&node) => {
                    reported.insert(node, index);
                    tracing::error!(
                            member = format_args!("{node:016x}"),
                            index,
                            ours = format_args!("{ours:016x}"),
                            theirs = format_args!("{theirs:016x}"),
                            "REPLICA DIVERGENCE: this member and the leader applied the log differently; \
                             take it out of service and rebuild it from a healthy member"
                        );
                }
                Some(ours) if ours == theirs => {
                    reported.remove(&node);
                }
                Some(_) => {} // already reported
                None => {}    // too old or not yet applied here
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CommandKind;
    use uuid::Uuid;

    #[test]
    fn fold_is_order_and_content_sensitive() {
        let cmd = |n| Command {
            id: Uuid::from_u128(n),
            origin: 1,
            kind: CommandKind::ExpireMember {
                member: 1,
                keep: None,
            },
        };
        let ok = |s: &str| Outcome::Transact {
            result: s.to_string(),
        };
        let a = fold(fold(0, &cmd(1), &ok("[{}]")), &cmd(2), &ok("[]"));
        assert_eq!(a, fold(fold(0, &cmd(1), &ok("[{}]")), &cmd(2), &ok("[]")));
        assert_ne!(a, fold(fold(0, &cmd(2), &ok("[]")), &cmd(1), &ok("[{}]")));
        assert_ne!(
            a,
            fold(fold(0, &cmd(1), &ok("[{\"count\":1}]")), &cmd(2), &ok("[]"))
        );
        // A fixed vector: the digest must not change between builds or platforms.
        assert_eq!(fnv(0, b"halyard"), fnv(FNV_OFFSET, b"halyard"));
        assert_eq!(format!("{:016x}", fnv(0, b"a")), "af63dc4c8601ec8c");
    }
}
