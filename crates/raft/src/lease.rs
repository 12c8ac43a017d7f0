//! Lock leases: what makes cluster-wide OVSDB locks safe when a member dies or is cut off.
//!
//! - At start, a member expires the lock requests of its previous incarnation (its sessions
//!   died with the old process).
//! - The leader expires the lock requests made through a member that has not answered a Raft
//!   RPC for a lease (a new leader first waits a lease, so an election alone expires nothing).
//! - A member without quorum contact for half a lease tells its own lock owners `stolen` (the
//!   leader will expire them after a whole lease, so the two never overlap); when it is back in
//!   contact and they still own their locks (the lease had not run out at the leader), it
//!   queues them again so they are told `locked`.
//! - The fast path, for the common failure (the leader dies, and with it the session of the
//!   active `ovn-northd`): a leader whose quorum has not acknowledged it for the *stand-down*
//!   time (half an election timer) tells its own lock owners `stolen`. A new leader of term
//!   t+1 knows that the leader of term t, which it followed, lost its quorum before t+1 was
//!   elected (a quorum voted in t+1 and no longer acknowledges t; openraft's voters also refuse
//!   to vote while they still hear a leader). So once the new leader has been leader for the
//!   stand-down time plus a margin (one check interval, a tenth for clock rates, 50 ms), and its
//!   predecessor has not answered it since the election, the predecessor's owners have stood
//!   down, dead or alive: it expires them then, instead of after a whole lease. Only for the
//!   leader of the term just before its own: a leader of an older term may have become a
//!   follower of a later leader that a minority still hears, and keeps the whole lease.

use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::locks::LockEvent;
use crate::member::Member;
use crate::types::NodeId;

pub(crate) async fn run(member: Weak<Member>) {
    let Some(m) = member.upgrade() else { return };
    let lease = m.config().lock_lease;
    let configured = m.config().lock_standdown();
    let me = m.identity().node_id;
    let incarnation = m.incarnation();
    drop(m);
    // `cluster/change-election-timer` may replace the configured timer with an agreed one; while
    // members may disagree (a change being applied), owners stand down on the shorter of the
    // two and a new leader waits for the longer.
    let standdowns = |m: &Member| {
        let agreed = Duration::from_millis(m.election_timeout_ms() / 2);
        (configured.min(agreed), configured.max(agreed))
    };

    // Expire what the previous incarnation held, retrying until a leader commits it.
    loop {
        let Some(m) = member.upgrade() else { return };
        match m.expire_member(me, Some(incarnation)).await {
            Ok(()) => break,
            Err(e) => tracing::debug!("could not yet expire the previous incarnation's locks: {e}"),
        }
        drop(m);
        tokio::time::sleep(lease / 4).await;
    }

    let mut leader_since: Option<Instant> = None;
    // The leader this member last followed, and its term.
    let mut followed: Option<(NodeId, u64)> = None;
    // When leader: the predecessor whose owners the fast path may expire (see the module doc).
    let mut predecessor: Option<NodeId> = None;
    let mut revoked: BTreeSet<(String, Uuid)> = BTreeSet::new();
    loop {
        let (standdown, wait) = {
            let Some(m) = member.upgrade() else { return };
            standdowns(&m)
        };
        // Short enough that the stand-down and the fast path happen close to their times (each
        // check reads the metrics and the lock table's holders: cheap).
        let tick = (standdown / 10)
            .min(lease / 4)
            .max(Duration::from_millis(10));
        let margin = tick + wait / 10 + Duration::from_millis(50);
        tokio::time::sleep(tick).await;
        let Some(m) = member.upgrade() else { return };
        let status = m.status();

        // Leader: expire the lock requests of silent members.
        if status.is_leader {
            let since = *leader_since.get_or_insert_with(|| {
                predecessor = followed
                    .filter(|(id, term)| *id != me && term + 1 == status.term)
                    .map(|(id, _)| id);
                Instant::now()
            });
            let holders = m.shared().locks().members();
            for node in holders.into_iter().filter(|n| *n != me) {
                let contact = m.peer_contact(node);
                let expire = if Some(node) == predecessor
                    && contact.is_none_or(|t| t < since)
                    && since.elapsed() > wait + margin
                {
                    true
                } else {
                    since.elapsed() > lease && contact.is_none_or(|t| t.elapsed() > lease)
                };
                if expire {
                    let fast = Some(node) == predecessor;
                    tracing::warn!(
                        member = format_args!("{node:016x}"),
                        term = status.term,
                        "lock lease expired; releasing its locks{}",
                        if fast {
                            " (the previous leader, silent since this member's election)"
                        } else {
                            ""
                        }
                    );
                    if let Err(e) = m.expire_member(node, None).await {
                        tracing::warn!("could not expire locks: {e}");
                    } else if fast {
                        predecessor = None;
                    }
                }
            }
        } else {
            leader_since = None;
            predecessor = None;
            if let Some(leader) = status.leader.filter(|l| *l != me) {
                followed = Some((leader, status.term));
            }
        }

        // Every member: without quorum contact for half a lease, our lock owners must stop
        // acting as owners. Half: the leader's view of our last contact is never earlier than
        // ours of its, and it expires our locks only after a whole lease, so our owners stand
        // down first and two owners never overlap (clock rates aside).
        // A leader uses the stand-down time, which the fast path relies on.
        let limit = if status.is_leader {
            standdown
        } else {
            lease / 2
        };
        let cut_off = m.without_quorum().is_none_or(|d| d > limit);
        if !cut_off && m.connected() {
            if !revoked.is_empty() {
                let locks = m.shared().locks();
                let still_owned: Vec<(String, Uuid)> = revoked
                    .iter()
                    .filter(|(name, session)| locks.owner(name) == Some(*session))
                    .cloned()
                    .collect();
                for (name, session) in still_owned {
                    // Back of the queue: the session is told `locked` when it gets the lock again.
                    let requeue = async {
                        m.unlock(session, &name).await?;
                        m.lock(session, &name, false).await
                    };
                    if let Err(e) = requeue.await {
                        tracing::warn!(lock = %name, "could not re-queue a lock after reconnecting: {e}");
                    }
                }
                revoked.clear();
            }
        } else if cut_off {
            let owned = m.shared().locks().owned_through(me);
            let observer = m.shared().observer();
            for (name, session, inc) in owned {
                if inc == incarnation && revoked.insert((name.clone(), session)) {
                    tracing::warn!(lock = %name, "no quorum for the lock lease; telling the owner it lost the lock");
                    if let Some(obs) = &observer {
                        obs.lock_event(session, &name, LockEvent::Stolen);
                    }
                }
            }
        }
    }
}
