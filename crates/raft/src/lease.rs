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

use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::Instant;

use openraft::ServerState;
use uuid::Uuid;

use crate::locks::LockEvent;
use crate::member::Member;

pub(crate) async fn run(member: Weak<Member>) {
    let Some(m) = member.upgrade() else { return };
    let lease = m.config().lock_lease;
    let me = m.identity().node_id;
    let incarnation = m.incarnation();
    drop(m);

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
    let mut revoked: BTreeSet<(String, Uuid)> = BTreeSet::new();
    loop {
        tokio::time::sleep(lease / 4).await;
        let Some(m) = member.upgrade() else { return };

        // Leader: expire the lock requests of silent members.
        if m.status().state == ServerState::Leader {
            let since = *leader_since.get_or_insert_with(Instant::now);
            if since.elapsed() > lease {
                let holders = m.with_state(|s| s.locks.members());
                for node in holders.into_iter().filter(|n| *n != me) {
                    let silent = m.peer_contact(node).is_none_or(|t| t.elapsed() > lease);
                    if silent {
                        tracing::warn!(
                            member = format_args!("{node:016x}"),
                            "lock lease expired; releasing its locks"
                        );
                        if let Err(e) = m.expire_member(node, None).await {
                            tracing::warn!("could not expire locks: {e}");
                        }
                    }
                }
            }
        } else {
            leader_since = None;
        }

        // Every member: without quorum contact for half a lease, our lock owners must stop
        // acting as owners. Half: the leader's view of our last contact is never earlier than
        // ours of its, and it expires our locks only after a whole lease, so our owners stand
        // down first and two owners never overlap (clock rates aside).
        let cut_off = m.without_quorum().is_none_or(|d| d > lease / 2);
        if !cut_off && m.connected() {
            if !revoked.is_empty() {
                let still_owned: Vec<(String, Uuid)> = m.with_state(|s| {
                    revoked
                        .iter()
                        .filter(|(name, session)| s.locks.owner(name) == Some(*session))
                        .cloned()
                        .collect()
                });
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
            let owned = m.with_state(|s| s.locks.owned_through(me));
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
