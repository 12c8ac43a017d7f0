//! One run of the suite: start the cluster, run both workloads through random members while the
//! faults are injected, heal, read the final state through every member, check.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::check::{self, Report};
use crate::cluster::Cluster;
use crate::history::History;
use crate::large::{self, LargePlan};
use crate::nemesis::{self, Fault};
use crate::netns::Net;
use crate::workload::{self, KeyPlan, Shared};

pub struct Options {
    pub halyard: PathBuf,
    pub workdir: PathBuf,
    pub schema: PathBuf,
    pub members: usize,
    /// `None`: the short CI schedule (every fault once); `Some(d)`: random faults for `d`.
    pub soak: Option<Duration>,
    pub unsafe_ack: bool,
    pub set_clients: usize,
    pub register_groups: usize,
    pub clients_per_group: usize,
    pub op_timeout: Duration,
    pub election_timer_ms: u64,
    pub max_steps: u64,
    /// Clients of the large-value workload (0: none).
    pub large_clients: usize,
    /// Bytes per second the large clients may send together.
    pub large_rate: f64,
    /// Longest stretch without a leader allowed, in election timers.
    pub leaderless_timers: u64,
    /// Kick followers after each fault until the cluster is back at `members`.
    pub steady_voters: bool,
}

/// What the short run injects, in order: every kind of fault once (the membership change twice:
/// after the non-voting member's promotion one member is kicked, then one joins).
pub const QUICK_SCHEDULE: [Fault; 10] = [
    Fault::KillLeader,
    Fault::KillFollower,
    Fault::KillAll,
    Fault::PauseLeader,
    Fault::PauseFollower,
    Fault::IsolateLeader,
    Fault::Bridge,
    Fault::NonVoting,
    Fault::Membership,
    Fault::Membership,
];

pub struct Outcome {
    pub history: History,
    pub report: Report,
    pub faults: Vec<String>,
}

pub async fn run(net: Net, opts: &Options) -> Result<Outcome> {
    let mut cluster = Cluster::new(
        net,
        &opts.halyard,
        &opts.workdir,
        &opts.schema,
        opts.election_timer_ms,
    );
    let t0 = Instant::now();
    let say = |msg: &str| println!("[{:7.1}s] {msg}", t0.elapsed().as_secs_f64());
    say(&format!(
        "starting a {}-member cluster in namespaces hfx-{}-*",
        opts.members,
        cluster.net.tag()
    ));
    cluster
        .start(opts.members)
        .await
        .context("starting the cluster")?;
    let first = cluster.member(1).client_addr();
    let expected = opts.soak.unwrap_or(Duration::from_secs(90));
    let plan = KeyPlan::for_duration(
        opts.register_groups,
        Duration::from_secs(4),
        expected + Duration::from_secs(60),
    );
    workload::create_registers(first, plan.total).await?;
    if opts.unsafe_ack {
        cluster.restart_unsafe().await?;
    }
    say(&format!(
        "cluster up; {} set clients, {} register clients on {} keys at a time, {} large-value clients ({:.1} MB/s){}",
        opts.set_clients,
        opts.register_groups * opts.clients_per_group,
        opts.register_groups,
        opts.large_clients,
        opts.large_rate / 1e6,
        if opts.unsafe_ack {
            "; members run with --unsafe-ack-before-commit (broken on purpose)"
        } else {
            ""
        }
    ));

    let shared = Arc::new(Shared {
        start: Instant::now(),
        targets: RwLock::new(Vec::new()),
        stop: Default::default(),
        op_timeout: opts.op_timeout,
        leader_watch: Default::default(),
        huge_tries: Default::default(),
        huge_acked: Default::default(),
    });
    nemesis::set_targets(&cluster, &shared);
    let mut set_tasks = Vec::new();
    for id in 0..opts.set_clients {
        let s = shared.clone();
        set_tasks.push(tokio::spawn(
            async move { workload::set_client(id, &s).await },
        ));
    }
    let mut register_tasks = Vec::new();
    for group in 0..opts.register_groups {
        for c in 0..opts.clients_per_group {
            let s = shared.clone();
            let id = group * opts.clients_per_group + c;
            register_tasks.push(tokio::spawn(async move {
                workload::register_client(id, group, plan, &s).await
            }));
        }
    }

    let large_plan = LargePlan {
        clients: opts.large_clients,
        rate: opts.large_rate,
        // Into the fault schedule (after the first kills), so the huge transaction meets faults.
        huge_after: Duration::from_secs(10),
    };
    let mut large_tasks = Vec::new();
    for id in 0..opts.large_clients {
        let s = shared.clone();
        large_tasks.push(tokio::spawn(async move {
            large::large_client(id, large_plan, &s).await
        }));
    }
    let watch_from = shared.now();
    let watch_task = {
        let s = shared.clone();
        let timer = opts.election_timer_ms;
        tokio::spawn(async move { large::watch_leader(&s, &s.leader_watch, timer).await })
    };

    let mut faults = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let schedule: Box<dyn Iterator<Item = Fault>> = match opts.soak {
        None => Box::new(QUICK_SCHEDULE.into_iter()),
        Some(_) => Box::new(std::iter::repeat_with(|| {
            Fault::ALL[fastrand::usize(..Fault::ALL.len())]
        })),
    };
    let soak_end = opts.soak.map(|d| Instant::now() + d);
    let mut result = Ok(());
    for fault in schedule {
        if soak_end.is_some_and(|end| Instant::now() >= end) {
            break;
        }
        let hold = match opts.soak {
            None => Duration::from_secs(3),
            Some(_) => Duration::from_millis(fastrand::u64(1000..6000)),
        };
        match nemesis::inject(&mut cluster, &shared, fault, hold).await {
            Ok(what) => {
                say(&what);
                faults.push(what);
            }
            Err(e) => {
                result = Err(e.context(format!("injecting {fault:?}")));
                break;
            }
        }
        if opts.steady_voters {
            match nemesis::restore_size(&mut cluster, &shared).await {
                Ok(done) => {
                    for what in done {
                        say(&what);
                        faults.push(what);
                    }
                }
                Err(e) => {
                    result = Err(e.context("kicking back to the initial size"));
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Heal, let the clients see a healthy cluster for a moment, then stop them.
    let healed = cluster.heal_all();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The run is not done before the huge transaction has had its chance on a healthy cluster.
    let huge_deadline = Instant::now() + Duration::from_secs(60);
    while opts.large_clients > 0
        && !shared.huge_acked.load(Ordering::Relaxed)
        && shared.huge_tries.load(Ordering::Relaxed) < large::HUGE_TRIES
        && Instant::now() < huge_deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut history = History::default();
    for t in set_tasks {
        history.set.extend(t.await?);
    }
    for t in register_tasks {
        history.register.extend(t.await?);
    }
    for t in large_tasks {
        history.large.extend(t.await?);
    }
    let watch_to = shared.now();
    watch_task.await?;
    result?;
    healed?;
    say("workloads stopped; reading the final state through every member");

    if cluster.wait_leader(Duration::from_secs(60)).await.is_none() {
        say("no leader 60 s after healing");
    }
    for i in cluster.in_cluster() {
        let m = cluster.member(i);
        if let Some(read) =
            workload::final_read(&m.name(), m.client_addr(), Duration::from_secs(60)).await
        {
            history.final_reads.push(read);
        }
        if opts.large_clients > 0 {
            if let Some(read) =
                large::final_read(&m.name(), m.client_addr(), Duration::from_secs(120)).await
            {
                history.large_reads.push(read);
            }
        }
    }
    std::fs::write(opts.workdir.join("history.jsonl"), history.to_jsonl())?;
    cluster.reap_exited();
    let exits = std::mem::take(&mut cluster.exits);
    cluster.shutdown();
    let mut report = check::check(&history, opts.max_steps);
    report
        .anomalies
        .extend(exits.into_iter().map(check::Anomaly::MemberExited));
    let seen = shared.leader_watch.seen_ns.lock().unwrap().clone();
    let excused = shared.leader_watch.excused_ns.lock().unwrap().clone();
    if let Some((len, at)) = large::longest_leaderless(&seen, &excused, watch_from, watch_to) {
        let limit_ms = opts.leaderless_timers * opts.election_timer_ms;
        let longest_ms = len / 1_000_000;
        report.longest_leaderless = Some((longest_ms, at as f64 / 1e9));
        if longest_ms > limit_ms {
            report.anomalies.push(check::Anomaly::Leaderless {
                longest_ms,
                from_ms: at / 1_000_000,
                limit_ms,
            });
        }
    }
    Ok(Outcome {
        history,
        report,
        faults,
    })
}
