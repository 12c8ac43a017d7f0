//! The Raft runtime's watchdog: a warning when the member's Raft runtime has run none of its
//! tasks for longer than [`halyard_raft::config::RAFT_STALL_WARN`], naming what its threads
//! were doing, and a second line with the stall's length when it runs again.
//!
//! The Raft runtime has one worker (`config::RAFT_RUNTIME_THREADS`): a task that blocks it (a
//! system call waiting on a busy disk, a lock held by a thread that waits on one) holds up
//! openraft's core, its heartbeats and votes, and the cluster sees a dead leader. ovsdb-server
//! warns of its own stalls the same way ("Unreasonably long ...ms poll interval"). The watchdog
//! is a thread of its own, outside the runtime it watches; a ticker task on the runtime records
//! when and on which thread it last ran. What the kernel says of the runtime's threads (state,
//! wait channel, kernel stack when readable) tells a thread waiting on the disk (`D`) from one
//! waiting on a lock (a futex) or running.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use halyard_raft::config::{RAFT_STALL_TICK, RAFT_STALL_WARN};

struct Beat {
    start: Instant,
    /// Milliseconds since `start` at the ticker's last run.
    last_ms: AtomicU64,
    /// The thread the ticker last ran on: the runtime's worker then.
    last_tid: AtomicU64,
    /// Stalls over (counted when they end).
    stalls: AtomicU64,
}

impl Beat {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// Starts the ticker on `runtime` and the watchdog thread. Both live as long as the process.
pub fn spawn(runtime: &tokio::runtime::Handle) -> std::io::Result<()> {
    spawn_with(runtime, RAFT_STALL_TICK, RAFT_STALL_WARN).map(drop)
}

/// [`spawn`] with other timers; the returned count of stalls over is for tests.
fn spawn_with(
    runtime: &tokio::runtime::Handle,
    tick: Duration,
    warn: Duration,
) -> std::io::Result<Arc<Beat>> {
    let beat = Arc::new(Beat {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
        last_tid: AtomicU64::new(0),
        stalls: AtomicU64::new(0),
    });
    let ticker = beat.clone();
    runtime.spawn(async move {
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            ticker.last_ms.store(ticker.now_ms(), Ordering::Relaxed);
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as u64;
            ticker.last_tid.store(tid, Ordering::Relaxed);
        }
    });
    let watched = beat.clone();
    std::thread::Builder::new()
        .name("halyard-watch".into())
        .spawn(move || watch(&watched, tick, warn))?;
    Ok(beat)
}

fn watch(beat: &Beat, tick: Duration, warn: Duration) {
    // The length of a stall is measured from the tick that should have come after the last.
    let late_after = tick.as_millis() as u64;
    let warn_ms = warn.as_millis() as u64;
    // (last tick seen when the stall was found, silence at which to describe it again)
    let mut stalled: Option<(u64, u64)> = None;
    let mut woke = beat.now_ms();
    // Until then the ticker is given time to run after a pause of the whole process.
    let mut grace_until = 0;
    loop {
        std::thread::sleep(tick);
        let now = beat.now_ms();
        let slept = now.saturating_sub(woke);
        woke = now;
        if slept >= late_after + warn_ms {
            // This thread did not run either: the whole process was stopped (SIGSTOP, a
            // debugger) or the machine gave it no CPU. Not the Raft runtime's doing.
            tracing::warn!(
                paused_ms = slept,
                "the member's process ran nothing for {slept} ms (stopped, or starved of CPU)"
            );
            stalled = None;
            grace_until = now + 2 * late_after;
            continue;
        }
        if now < grace_until {
            continue;
        }
        let last = beat.last_ms.load(Ordering::Relaxed);
        let silent = now.saturating_sub(last).saturating_sub(late_after);
        match stalled {
            Some((from, _)) if last > from => {
                let ms = last.saturating_sub(from).saturating_sub(late_after);
                tracing::warn!(stalled_ms = ms, "the Raft runtime runs again after {ms} ms");
                metrics::counter!("halyard_raft_runtime_stalls_total").increment(1);
                metrics::histogram!("halyard_raft_runtime_stall_seconds")
                    .record(Duration::from_millis(ms).as_secs_f64());
                beat.stalls.fetch_add(1, Ordering::Relaxed);
                stalled = None;
            }
            // Described when found, then each time its length doubles: a stall that does not
            // end (a deadlock) keeps being reported, with what its threads do by then.
            Some((_, next)) if silent < next => {}
            _ if silent >= warn_ms => {
                let worker = beat.last_tid.load(Ordering::Relaxed);
                tracing::warn!(
                    silent_ms = silent,
                    worker,
                    threads = %describe_threads(worker),
                    "the Raft runtime has run none of its tasks for {silent} ms (heartbeats and votes wait)"
                );
                let from = stalled.map_or(last, |(from, _)| from);
                stalled = Some((from, silent * 2));
            }
            _ => {}
        }
    }
}

/// One line per thread of the Raft runtime (named `raft`: its worker and its blocking pool) and
/// the log flusher: `tid state wchan [kernel stack]`, the worker marked (`worker` 0: the ticker
/// has not run yet). Idle pool threads (parked on a futex, not the worker) are counted, not
/// listed.
fn describe_threads(worker: u64) -> String {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return "(no /proc)".into();
    };
    let mut lines = Vec::new();
    let mut idle = 0;
    for task in tasks.flatten() {
        let dir = task.path();
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let comm = read("comm").trim().to_string();
        if !(comm.starts_with("raft") || comm.starts_with("halyard-log")) {
            continue;
        }
        let stat = read("stat");
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        let wchan = read("wchan");
        if tid != worker && state == "S" && wchan.starts_with("futex") && comm.starts_with("raft") {
            idle += 1;
            continue;
        }
        let mut line = format!(
            "{tid}{} {comm} {state} {}",
            if tid == worker { "(worker)" } else { "" },
            if wchan.is_empty() || wchan == "0" {
                "-"
            } else {
                &wchan
            }
        );
        // Readable by root only; the frames name what a thread in `D` waits for.
        let stack = read("stack");
        let stack: Vec<&str> = stack
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(|f| f.split('+').next().unwrap_or(f))
            .take(8)
            .collect();
        if !stack.is_empty() {
            line.push_str(&format!(" [{}]", stack.join(" < ")));
        }
        lines.push(line);
    }
    lines.sort();
    format!("{}; {idle} idle pool threads", lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_worker() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("raft")
            .enable_all()
            .build()
            .unwrap()
    }

    /// A one-worker runtime watched with a tick of 20 ms and a limit of 150 ms.
    fn watched() -> (tokio::runtime::Runtime, Arc<Beat>) {
        let rt = one_worker();
        let beat = spawn_with(
            rt.handle(),
            Duration::from_millis(20),
            Duration::from_millis(150),
        )
        .unwrap();
        (rt, beat)
    }

    fn wait_for(what: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn a_worker_blocked_longer_than_the_limit_is_a_stall() {
        let (rt, beat) = watched();
        // Held in a system call, as a worker waiting on the disk is.
        rt.spawn(async { std::thread::sleep(Duration::from_millis(400)) });
        assert!(
            wait_for(|| beat.stalls.load(Ordering::Relaxed) == 1),
            "no stall counted"
        );
    }

    #[test]
    fn a_busy_but_yielding_runtime_is_not_a_stall() {
        let (rt, beat) = watched();
        rt.spawn(async {
            for _ in 0..40 {
                std::thread::sleep(Duration::from_millis(10));
                tokio::task::yield_now().await;
            }
        });
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(beat.stalls.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_threads_are_described_with_the_worker_marked() {
        let rt = one_worker();
        let tid = rt.block_on(async {
            tokio::spawn(async { (unsafe { libc::gettid() }) as u64 })
                .await
                .unwrap()
        });
        let described = describe_threads(tid);
        assert!(
            described.contains(&format!("{tid}(worker) raft ")),
            "{described}"
        );
    }
}
