//! CPU work done at a lower priority than the Raft runtime: encoding, decoding and dropping
//! snapshots ([`crate::config::SNAPSHOT_NICE`]).
//!
//! The soak's leaderless stretches (tests/faults/README.md, sessions 24-25) came when a member
//! encoded or decoded a snapshot of a few hundred megabytes beside four others on two cores: no
//! thread was blocked, the Raft runtimes simply got too little CPU for heartbeats to be answered
//! in time. A thread of its own per job, made nicer, yields the CPU to them; it is not a pool
//! because an unprivileged process cannot make a thread less nice again.

use crate::config::SNAPSHOT_NICE;

/// Why background work did not return its result.
#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    #[error("could not start the background thread halyard-{what}: {source}")]
    Spawn {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the background thread halyard-{what} panicked")]
    Panicked { what: &'static str },
}

/// Runs `work` on a thread of its own at [`SNAPSHOT_NICE`] and waits for it without holding a
/// runtime worker. The thread is named `halyard-{what}` (the kernel keeps 15 bytes).
pub(crate) async fn at_background_priority<R, F>(
    what: &'static str,
    work: F,
) -> Result<R, BackgroundError>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("halyard-{what}").chars().take(15).collect())
        .spawn(move || {
            lower_own_priority(what);
            let _ = tx.send(work());
        })
        .map_err(|source| BackgroundError::Spawn { what, source })?;
    rx.await.map_err(|_| BackgroundError::Panicked { what })
}

/// The calling thread's nice value on Linux, where a thread has one of its own.
#[cfg(target_os = "linux")]
pub(crate) fn own_nice() -> i32 {
    // SAFETY: gettid has no preconditions; getpriority only reads. -1 is also a valid nice
    // value, but errno is not needed here: a failure reads as "unchanged".
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(target_os = "linux")]
fn lower_own_priority(what: &str) {
    let target = own_nice().max(SNAPSHOT_NICE);
    // SAFETY: as above; PRIO_PROCESS with a thread id sets that thread's nice value only.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, target) };
    if rc != 0 {
        // Still correct, only not yielding: worth a line, not a failure.
        tracing::warn!(
            what,
            error = %std::io::Error::last_os_error(),
            "could not lower the priority of background work"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_own_priority(_what: &str) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn the_work_runs_niced_on_a_thread_of_its_own_and_the_caller_is_untouched() {
        let before = own_nice();
        let caller = std::thread::current().id();
        let (nice, thread, name) = at_background_priority("test", || {
            let t = std::thread::current();
            (own_nice(), t.id(), t.name().map(str::to_owned))
        })
        .await
        .unwrap();
        assert_eq!(nice, before.max(SNAPSHOT_NICE));
        assert_ne!(thread, caller);
        assert_eq!(name.as_deref(), Some("halyard-test"));
        assert_eq!(own_nice(), before, "the caller's priority is not changed");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_in_the_work_is_an_error_not_a_hang() {
        let e = at_background_priority("boom", || -> u32 { panic!("on purpose") })
            .await
            .unwrap_err();
        assert!(
            matches!(e, BackgroundError::Panicked { what: "boom" }),
            "{e}"
        );
    }
}
