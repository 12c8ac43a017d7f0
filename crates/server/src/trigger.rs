//! Transactions that a `wait` blocks (RFC 7047 §5.2.6), re-run until the wait holds or times
//! out, as ovsdb-server's `ovsdb/trigger.c` does: the one place that does it, for replicated
//! databases, for read-only listeners and for `_Server`.
//!
//! The engine decides, from the elapsed time it is given, whether a `wait` holds, blocks or has
//! timed out (and how long until its own timeout); this module only keeps the clock and waits.
//! ovsdb-server runs a transaction first with elapsed 0, then with the time since it arrived.
//! A blocked run is run again after the next change of the database it reads, or when the
//! blocking wait's timeout passes, whichever comes first. Only a change wakes it, not any
//! applied entry: a blocked replicated run is itself an entry, and waking on every applied
//! index re-proposed it in a loop (thousands of entries a second).

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

use crate::backend::{BackendError, Transacted};

/// The elapsed time given to each run of one transaction.
struct RunClock {
    start: tokio::time::Instant,
    first: bool,
}

impl RunClock {
    fn new() -> RunClock {
        RunClock {
            start: tokio::time::Instant::now(),
            first: true,
        }
    }

    /// The elapsed milliseconds for the next run.
    fn next_run(&mut self) -> u64 {
        if std::mem::take(&mut self.first) {
            0
        } else {
            self.start.elapsed().as_millis() as u64
        }
    }

    /// When the run that was given `elapsed` reaches `ms` more.
    fn at(&self, elapsed: u64, ms: u64) -> tokio::time::Instant {
        self.start + Duration::from_millis(elapsed.saturating_add(ms))
    }
}

/// Runs `run(elapsed_ms)` until it is not blocked, re-running it after each notification of
/// `changed` (notified whenever the data it reads may have changed) or when the blocking
/// wait's own timeout passes.
pub(crate) async fn until_unblocked<F, Fut>(
    changed: &Notify,
    mut run: F,
) -> Result<Value, BackendError>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<Transacted, BackendError>>,
{
    let mut clock = RunClock::new();
    loop {
        // Registered before the run, so a change applied meanwhile is not missed.
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let elapsed = clock.next_run();
        match run(elapsed).await? {
            Transacted::Done(result) => return Ok(result),
            Transacted::Blocked {
                retry_in_ms: Some(ms),
            } => {
                let _ = tokio::time::timeout_at(clock.at(elapsed, ms), notified).await;
            }
            Transacted::Blocked { retry_in_ms: None } => notified.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn the_first_run_counts_as_zero_and_a_timeout_reruns_without_a_change() {
        let changed = Notify::new();
        let mut seen = Vec::new();
        let result = until_unblocked(&changed, |elapsed| {
            seen.push(elapsed);
            let r = if elapsed >= 50 {
                Transacted::Done(json!(["timed out"]))
            } else {
                Transacted::Blocked {
                    retry_in_ms: Some(50 - elapsed),
                }
            };
            async move { Ok(r) }
        })
        .await
        .unwrap();
        assert_eq!(result, json!(["timed out"]));
        assert_eq!(seen, vec![0, 50]);
    }

    #[tokio::test]
    async fn a_wait_without_timeout_reruns_on_each_change() {
        let changed = Arc::new(Notify::new());
        let runs = Arc::new(AtomicU32::new(0));
        let task = {
            let (changed, runs) = (changed.clone(), runs.clone());
            tokio::spawn(async move {
                until_unblocked(&changed, |_| {
                    let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                    async move {
                        Ok(if n == 3 {
                            Transacted::Done(json!([{}]))
                        } else {
                            Transacted::Blocked { retry_in_ms: None }
                        })
                    }
                })
                .await
            })
        };
        for expected in 1..=2 {
            while runs.load(Ordering::SeqCst) < expected {
                tokio::task::yield_now().await;
            }
            changed.notify_waiters();
        }
        assert_eq!(task.await.unwrap().unwrap(), json!([{}]));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
