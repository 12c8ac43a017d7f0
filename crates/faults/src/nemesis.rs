//! The faults injected while the workloads run, at the process and network level: SIGKILL of
//! the leader, a follower or every member at once (then a restart), SIGSTOP/SIGCONT, partitions made with iptables in
//! the members' namespaces (the leader isolated in a minority, a "bridge" where two halves each
//! see one middle member but not each other), a membership change (a new member joins, an
//! old one is kicked), and a non-voting member that joins, is cut off, killed, restarted and
//! promoted.

use std::time::Duration;

use anyhow::Result;

use crate::cluster::Cluster;
use crate::workload::Shared;

/// How long a restarted member may take to load its data and answer again.
const RESTART_WAIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    KillLeader,
    KillFollower,
    /// Every member at once (a power cut): acknowledged writes must have been durable.
    KillAll,
    PauseLeader,
    PauseFollower,
    IsolateLeader,
    Bridge,
    /// A new member joins when there are 3 members or fewer than at the start; otherwise a
    /// follower is kicked (and stopped).
    Membership,
    /// A non-voting member joins (clients use it at once), is cut off from every other member,
    /// then killed and restarted, then promoted to a voter.
    NonVoting,
}

impl Fault {
    pub const ALL: [Fault; 9] = [
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::KillAll,
        Fault::PauseLeader,
        Fault::PauseFollower,
        Fault::IsolateLeader,
        Fault::Bridge,
        Fault::Membership,
        Fault::NonVoting,
    ];
}

/// Injects `fault`, holds it for `hold`, heals it. Returns what was done, for the log.
pub async fn inject(
    cluster: &mut Cluster,
    shared: &Shared,
    fault: Fault,
    hold: Duration,
) -> Result<String> {
    // A member that crashed since the last fault is restarted first (and reported at the end).
    cluster.heal_all()?;
    let Some(leader) = cluster.wait_leader(Duration::from_secs(30)).await else {
        return Ok(format!("{fault:?}: skipped, no leader within 30 s"));
    };
    let followers = followers_of(cluster, leader);
    let follower = followers[fastrand::usize(..followers.len())];
    let what = match fault {
        Fault::KillLeader | Fault::KillFollower => {
            let victim = if fault == Fault::KillLeader {
                leader
            } else {
                follower
            };
            cluster.kill(victim);
            tokio::time::sleep(hold).await;
            cluster.spawn(victim)?;
            format!(
                "SIGKILL m{victim} ({}), restarted after {hold:?}",
                role(victim, leader)
            )
        }
        Fault::KillAll => {
            let all = cluster.in_cluster();
            let down = shared.now();
            for i in &all {
                cluster.kill(*i);
            }
            tokio::time::sleep(hold).await;
            for i in &all {
                cluster.spawn(*i)?;
            }
            // No leader is possible until the processes are back and have loaded their data:
            // the leaderless stretch that counts begins when every member answers again.
            let deadline = tokio::time::Instant::now() + RESTART_WAIT;
            for i in &all {
                cluster.wait_answering(*i, deadline).await;
            }
            shared
                .leader_watch
                .excused_ns
                .lock()
                .unwrap()
                .push((down, shared.now()));
            format!("SIGKILL of every member {all:?}, restarted after {hold:?}")
        }
        Fault::PauseLeader | Fault::PauseFollower => {
            let victim = if fault == Fault::PauseLeader {
                leader
            } else {
                follower
            };
            cluster.pause(victim);
            tokio::time::sleep(hold).await;
            cluster.resume(victim);
            format!(
                "SIGSTOP m{victim} ({}), SIGCONT after {hold:?}",
                role(victim, leader)
            )
        }
        Fault::IsolateLeader => {
            for f in &followers {
                cluster.cut(leader, *f)?;
            }
            tokio::time::sleep(hold).await;
            cluster.heal_all()?;
            format!("partition: leader m{leader} alone (minority) vs {followers:?} (majority) for {hold:?}")
        }
        Fault::Bridge => {
            // Everyone but one middle member is split into two halves that cannot see each
            // other; the middle one sees both (the leader is put in a half, so it must step
            // down or keep a quorum through the middle).
            let middle = follower;
            let others: Vec<usize> = cluster
                .in_cluster()
                .into_iter()
                .filter(|i| *i != middle)
                .collect();
            let (left, right) = others.split_at(others.len() / 2);
            for a in left {
                for b in right {
                    cluster.cut(*a, *b)?;
                }
            }
            tokio::time::sleep(hold).await;
            cluster.heal_all()?;
            format!("bridge partition: {left:?} | m{middle} | {right:?} for {hold:?}")
        }
        Fault::Membership => {
            let members = cluster.in_cluster();
            let join = members.len() <= 3 || members.len() < cluster.initial_size;
            if join && cluster.members.len() < 100 {
                let new = cluster.add_member().await?;
                set_targets(cluster, shared);
                format!(
                    "membership: m{new} joined as a voter ({} members)",
                    members.len() + 1
                )
            } else {
                let out = kick(cluster, shared, follower, leader).await?;
                format!("membership: kicked m{follower} ({out})")
            }
        }
        Fault::NonVoting => {
            let new = cluster.add_member_as(true).await?;
            set_targets(cluster, shared);
            let others: Vec<usize> = cluster
                .in_cluster()
                .into_iter()
                .filter(|i| *i != new)
                .collect();
            for o in &others {
                cluster.cut(new, *o)?;
            }
            tokio::time::sleep(hold / 2).await;
            cluster.heal_all()?;
            cluster.kill(new);
            tokio::time::sleep(hold / 2).await;
            cluster.spawn(new)?;
            // It loads its state before it listens: with the soak's large values, a snapshot of
            // hundreds of MB takes seconds, and a promote sent meanwhile is refused.
            cluster
                .wait_answering(new, tokio::time::Instant::now() + RESTART_WAIT)
                .await;
            let out = cluster.promote(new, leader).await?;
            format!(
                "non-voting m{new} joined, was cut off from {others:?} then killed for {:?} each, restarted, promoted ({out})",
                hold / 2
            )
        }
    };
    Ok(what)
}

/// Removes follower `victim` from the cluster through `leader` (or whoever leads when an
/// election was under way) and stops it; clients stop picking it first.
async fn kick(
    cluster: &mut Cluster,
    shared: &Shared,
    victim: usize,
    leader: usize,
) -> Result<String> {
    // In-flight operations on it become indeterminate.
    shared
        .targets
        .write()
        .unwrap()
        .retain(|(name, _)| *name != format!("m{victim}"));
    let out = match cluster.kick(victim, leader).await {
        // An election was under way (the leader picked above lost its place since):
        // the change was refused, not made; ask again once a leader is in place.
        Err(e) if format!("{e:#}").contains("has to forward request to: None") => {
            let Some(now) = cluster.wait_leader(Duration::from_secs(30)).await else {
                return Err(e);
            };
            let through = if now == victim {
                *cluster
                    .in_cluster()
                    .iter()
                    .find(|i| **i != victim)
                    .unwrap_or(&now)
            } else {
                now
            };
            let out = cluster.kick(victim, through).await?;
            format!("{out}; asked again after a leader change")
        }
        r => r?,
    };
    Ok(out)
}

/// `--steady-voters`: kicks followers until the cluster is back at its initial size, after a
/// fault that grew it (a join, a promotion). Flush hints (three voters) then stay on for most of
/// a soak instead of the minutes the cluster spends at three members otherwise.
pub async fn restore_size(cluster: &mut Cluster, shared: &Shared) -> Result<Vec<String>> {
    let mut done = Vec::new();
    while cluster.in_cluster().len() > cluster.initial_size {
        let Some(leader) = cluster.wait_leader(Duration::from_secs(30)).await else {
            done.push("steady voters: no leader within 30 s, size left as it is".to_string());
            break;
        };
        let followers = followers_of(cluster, leader);
        let victim = followers[fastrand::usize(..followers.len())];
        let out = kick(cluster, shared, victim, leader).await?;
        done.push(format!("steady voters: kicked m{victim} ({out})"));
    }
    Ok(done)
}

/// The members of the cluster other than `leader`.
fn followers_of(cluster: &Cluster, leader: usize) -> Vec<usize> {
    cluster
        .in_cluster()
        .into_iter()
        .filter(|i| *i != leader)
        .collect()
}

fn role(victim: usize, leader: usize) -> &'static str {
    if victim == leader {
        "leader"
    } else {
        "follower"
    }
}

/// Points the clients at every member of the cluster.
pub fn set_targets(cluster: &Cluster, shared: &Shared) {
    let targets = cluster
        .in_cluster()
        .into_iter()
        .map(|i| (format!("m{i}"), cluster.member(i).client_addr()))
        .collect();
    *shared.targets.write().unwrap() = targets;
}
