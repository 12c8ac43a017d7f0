//! The replicated OVSDB lock table (RFC 7047 §4.1.8–4.1.10, with ovsdb-server's `steal` rules).
//!
//! Locks are cluster-wide (architecture, "Replicated state"): acquire, steal, release and expiry
//! are log entries, so every member sees the same owner and `assert` is checked at apply time
//! against it. Each lock is a FIFO whose head is the owner. Unlike ovsdb-server 3.1, a waiter that
//! unlocks does not make the owner receive a spurious `locked` notification.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Mode {
    Lock,
    Steal,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Waiter {
    session: Uuid,
    member: u64,
    /// The serving process's run (a member restarted under the same id is a new incarnation).
    incarnation: Uuid,
    mode: Mode,
}

/// What a lock change means for a session, to be told by the member that serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockEvent {
    /// The session now owns the lock (it was waiting).
    Locked,
    /// Another session stole the lock from it.
    Stolen,
    /// Its member's lease expired (dead, partitioned, or restarted) and the session lost its
    /// place: `owned` says whether it held the lock. The serving member, if the session is
    /// still alive there, tells it `stolen` (if owned) and queues it again.
    Expired { owned: bool },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LockTable {
    locks: BTreeMap<String, VecDeque<Waiter>>,
}

pub(crate) type Events = Vec<(Uuid, String, LockEvent)>;

impl LockTable {
    pub fn owner(&self, name: &str) -> Option<Uuid> {
        self.locks
            .get(name)
            .and_then(|q| q.front())
            .map(|w| w.session)
    }

    /// `lock` or `steal`. `Err` carries the refusal ovsdb-server gives for a second request.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn acquire(
        &mut self,
        session: Uuid,
        member: u64,
        incarnation: Uuid,
        name: &str,
        steal: bool,
        events: &mut Events,
    ) -> Result<bool, String> {
        let queue = self.locks.entry(name.to_string()).or_default();
        if queue.iter().any(|w| w.session == session) {
            return Err(format!(
                "must issue \"unlock\" before new \"{}\"",
                if steal { "steal" } else { "lock" }
            ));
        }
        if !steal {
            queue.push_back(Waiter {
                session,
                member,
                incarnation,
                mode: Mode::Lock,
            });
            return Ok(queue.len() == 1);
        }
        if let Some(victim) = queue.pop_front() {
            events.push((victim.session, name.to_string(), LockEvent::Stolen));
            // A victim that had queued with `lock` keeps its place to get the lock back later.
            if victim.mode == Mode::Lock {
                queue.push_front(victim);
            }
        }
        queue.push_front(Waiter {
            session,
            member,
            incarnation,
            mode: Mode::Steal,
        });
        Ok(true)
    }

    /// `unlock`. A session that is not in the queue is not refused: the front end already
    /// answered an `unlock` without `lock` or `steal` itself, so the session did lock, and it
    /// is missing only because a `steal` dropped it (its own `steal` was stolen), which
    /// ovsdb-server also answers with `{}`.
    pub(crate) fn release(&mut self, session: Uuid, name: &str, events: &mut Events) {
        self.remove_where(name, |w| w.session == session, events);
    }

    pub(crate) fn release_sessions(&mut self, sessions: &[Uuid], events: &mut Events) {
        let names: Vec<String> = self.locks.keys().cloned().collect();
        for name in names {
            self.remove_where(&name, |w| sessions.contains(&w.session), events);
        }
    }

    /// Expires the lock requests made through `member`, except those of incarnation `keep`.
    pub(crate) fn release_member(&mut self, member: u64, keep: Option<Uuid>, events: &mut Events) {
        let names: Vec<String> = self.locks.keys().cloned().collect();
        for name in names {
            let expired = |w: &Waiter| w.member == member && Some(w.incarnation) != keep;
            if let Some(queue) = self.locks.get(&name) {
                for (pos, w) in queue.iter().enumerate() {
                    if expired(w) {
                        events.push((
                            w.session,
                            name.clone(),
                            LockEvent::Expired { owned: pos == 0 },
                        ));
                    }
                }
            }
            self.remove_where(&name, expired, events);
        }
    }

    /// The (lock, session, incarnation) triples whose owner is served by `member`.
    pub fn owned_through(&self, member: u64) -> Vec<(String, Uuid, Uuid)> {
        self.locks
            .iter()
            .filter_map(|(name, q)| {
                q.front()
                    .filter(|w| w.member == member)
                    .map(|w| (name.clone(), w.session, w.incarnation))
            })
            .collect()
    }

    /// Members through which some lock is held or waited for.
    pub fn members(&self) -> std::collections::BTreeSet<u64> {
        self.locks
            .values()
            .flat_map(|q| q.iter().map(|w| w.member))
            .collect()
    }

    /// Whether `session` holds or waits for any lock.
    pub fn involves(&self, session: Uuid) -> bool {
        self.locks
            .values()
            .any(|q| q.iter().any(|w| w.session == session))
    }

    pub fn len(&self) -> usize {
        self.locks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    fn remove_where(
        &mut self,
        name: &str,
        pred: impl Fn(&Waiter) -> bool,
        events: &mut Events,
    ) -> bool {
        let Some(queue) = self.locks.get_mut(name) else {
            return false;
        };
        let old_owner = queue.front().map(|w| w.session);
        let before = queue.len();
        queue.retain(|w| !pred(w));
        let removed = queue.len() != before;
        let new_owner = queue.front().map(|w| w.session);
        if let Some(owner) = new_owner {
            if new_owner != old_owner {
                events.push((owner, name.to_string(), LockEvent::Locked));
            }
        }
        if queue.is_empty() {
            self.locks.remove(name);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn fifo_lock_and_unlock_hands_over() {
        let mut t = LockTable::default();
        let mut ev = Events::new();
        assert_eq!(
            t.acquire(s(1), 1, Uuid::nil(), "L", false, &mut ev),
            Ok(true)
        );
        assert_eq!(
            t.acquire(s(2), 2, Uuid::nil(), "L", false, &mut ev),
            Ok(false)
        );
        assert!(t
            .acquire(s(2), 2, Uuid::nil(), "L", false, &mut ev)
            .is_err());
        assert!(ev.is_empty());
        t.release(s(1), "L", &mut ev);
        assert_eq!(ev, vec![(s(2), "L".to_string(), LockEvent::Locked)]);
        assert_eq!(t.owner("L"), Some(s(2)));
    }

    #[test]
    fn waiter_unlock_does_not_notify_owner() {
        let mut t = LockTable::default();
        let mut ev = Events::new();
        t.acquire(s(1), 1, Uuid::nil(), "L", false, &mut ev)
            .unwrap();
        t.acquire(s(2), 1, Uuid::nil(), "L", false, &mut ev)
            .unwrap();
        t.release(s(2), "L", &mut ev);
        assert!(
            ev.is_empty(),
            "ovsdb-server 3.1 sends a spurious `locked` here; we do not"
        );
    }

    #[test]
    fn steal_from_lock_holder_keeps_it_queued() {
        let mut t = LockTable::default();
        let mut ev = Events::new();
        t.acquire(s(1), 1, Uuid::nil(), "L", false, &mut ev)
            .unwrap();
        assert_eq!(
            t.acquire(s(2), 2, Uuid::nil(), "L", true, &mut ev),
            Ok(true)
        );
        assert_eq!(ev, vec![(s(1), "L".to_string(), LockEvent::Stolen)]);
        ev.clear();
        t.release(s(2), "L", &mut ev);
        assert_eq!(ev, vec![(s(1), "L".to_string(), LockEvent::Locked)]);
    }

    #[test]
    fn steal_from_thief_drops_it() {
        let mut t = LockTable::default();
        let mut ev = Events::new();
        t.acquire(s(1), 1, Uuid::nil(), "L", true, &mut ev).unwrap();
        t.acquire(s(2), 2, Uuid::nil(), "L", true, &mut ev).unwrap();
        ev.clear();
        t.release(s(2), "L", &mut ev);
        assert!(ev.is_empty());
        assert_eq!(t.owner("L"), None);
        assert!(t.is_empty());
    }

    #[test]
    fn unlock_after_own_steal_was_stolen() {
        let mut t = LockTable::default();
        let mut ev = Events::new();
        t.acquire(s(1), 1, Uuid::nil(), "L", true, &mut ev).unwrap();
        t.acquire(s(2), 2, Uuid::nil(), "L", true, &mut ev).unwrap();
        assert_eq!(ev, vec![(s(1), "L".to_string(), LockEvent::Stolen)]);
        ev.clear();
        t.release(s(1), "L", &mut ev);
        assert!(ev.is_empty(), "the thief is not told anything: {ev:?}");
        assert_eq!(t.owner("L"), Some(s(2)));
        assert_eq!(
            t.acquire(s(1), 1, Uuid::nil(), "L", false, &mut ev),
            Ok(false)
        );
    }

    #[test]
    fn expiry_keeps_the_current_incarnation() {
        let mut t = LockTable::default();
        let mut ev = Events::new();
        let (old, new) = (Uuid::from_u128(100), Uuid::from_u128(200));
        t.acquire(s(1), 7, old, "A", false, &mut ev).unwrap();
        t.acquire(s(2), 7, new, "A", false, &mut ev).unwrap();
        t.release_member(7, Some(new), &mut ev);
        assert_eq!(
            ev,
            vec![
                (s(1), "A".to_string(), LockEvent::Expired { owned: true }),
                (s(2), "A".to_string(), LockEvent::Locked)
            ]
        );
        assert_eq!(t.owned_through(7), vec![("A".to_string(), s(2), new)]);
    }

    #[test]
    fn member_expiry_releases_and_hands_over() {
        let mut t = LockTable::default();
        let mut ev = Events::new();
        t.acquire(s(1), 7, Uuid::nil(), "A", false, &mut ev)
            .unwrap();
        t.acquire(s(2), 8, Uuid::nil(), "A", false, &mut ev)
            .unwrap();
        t.acquire(s(1), 7, Uuid::nil(), "B", false, &mut ev)
            .unwrap();
        t.release_member(7, None, &mut ev);
        assert_eq!(
            ev,
            vec![
                (s(1), "A".to_string(), LockEvent::Expired { owned: true }),
                (s(2), "A".to_string(), LockEvent::Locked),
                (s(1), "B".to_string(), LockEvent::Expired { owned: true }),
            ]
        );
        assert_eq!(t.owner("B"), None);
        ev.clear();
        t.release_sessions(&[s(2)], &mut ev);
        assert!(t.is_empty());
    }
}
