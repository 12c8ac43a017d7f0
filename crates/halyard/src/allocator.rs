//! The member's allocator (mimalloc) and how long it keeps the memory its threads free.
//!
//! mimalloc returns freed memory to the system after `purge_delay` (10 ms by default; its arenas
//! after ten times that). A member applying a stream of multi-megabyte transactions (a bulk load
//! of large rows) frees its buffers for longer than that between two of them, so each
//! transaction's buffers came back from the kernel as fresh pages, zeroed at first touch (the
//! largest item of every member's profile). 250 ms: bulk-large +20-35 % rows/s on the bench
//! machine, 20-40 MB more resident after the load (docs/performance.md, "Large rows: buffers kept
//! and the allocator's purge delay"). Memory given back after a burst of client input (`trim`)
//! is purged at once whatever the delay.

/// How long mimalloc keeps memory freed by a thread before returning it to the system
/// (`purge_delay`, ms). An operator's `MIMALLOC_PURGE_DELAY` in the environment wins.
pub const ALLOCATOR_PURGE_DELAY_MS: i64 = 250;

/// `mi_option_purge_delay` in mimalloc 2's `mi_option_e` (libmimalloc-sys names no constant for
/// it); the test below checks that this option has purge_delay's documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Applies [`ALLOCATOR_PURGE_DELAY_MS`]; called first thing in `main`.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options, which it reads at each purge decision.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads mimalloc's version and options.
        let (version, before) = unsafe {
            (
                libmimalloc_sys::mi_version(),
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            )
        };
        assert!(
            (20_000..30_000).contains(&version),
            "mimalloc {version}: not 2.x"
        );
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(
            before, 10,
            "option {MI_OPTION_PURGE_DELAY} is not purge_delay (=10)"
        );
        configure();
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, ALLOCATOR_PURGE_DELAY_MS as std::ffi::c_long);
    }
}
