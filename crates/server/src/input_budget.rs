//! One bound on the bytes all sessions hold for messages not yet complete.
//!
//! Each message is bounded (`max_message_size`, 64 MiB by default), but not their sum: 16
//! connections each sending 60 MiB of an unterminated string once took a member from 0.8 to
//! 2.2 GB. Every session charges the bytes it has buffered to one budget; a session whose next
//! read would take the total past the limit is closed with a clear error, and the others keep
//! being served. ovsdb-server has no such bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub(crate) struct InputBudget {
    used: AtomicUsize,
    limit: usize,
}

/// The bytes one session holds against the budget; released when dropped.
pub(crate) struct Charge {
    budget: Arc<InputBudget>,
    held: usize,
}

impl InputBudget {
    pub(crate) fn new(limit: usize) -> Arc<InputBudget> {
        Arc::new(InputBudget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    pub(crate) fn charge(self: &Arc<Self>) -> Charge {
        Charge {
            budget: self.clone(),
            held: 0,
        }
    }

    /// Bytes charged by every session.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

impl Charge {
    /// Holds `bytes` from now on. `Err` with the total it would have reached, holding what it
    /// held before, when more would pass the limit.
    pub(crate) fn set(&mut self, bytes: usize) -> Result<(), usize> {
        if bytes <= self.held {
            self.budget
                .used
                .fetch_sub(self.held - bytes, Ordering::Relaxed);
            self.held = bytes;
            return Ok(());
        }
        let more = bytes - self.held;
        let before = self.budget.used.fetch_add(more, Ordering::Relaxed);
        if before + more > self.budget.limit {
            self.budget.used.fetch_sub(more, Ordering::Relaxed);
            return Err(before + more);
        }
        self.held = bytes;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_share_one_bound_and_release_on_drop() {
        let budget = InputBudget::new(100);
        let mut a = budget.charge();
        let mut b = budget.charge();
        a.set(60).unwrap();
        assert_eq!(b.set(50), Err(110));
        assert_eq!(budget.used(), 60, "a refused charge takes nothing");
        b.set(40).unwrap();
        a.set(10).unwrap();
        b.set(90).unwrap();
        assert_eq!(budget.used(), 100);
        drop(b);
        assert_eq!(budget.used(), 10);
        drop(a);
        assert_eq!(budget.used(), 0);
    }
}
