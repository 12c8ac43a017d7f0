//! Latency samples and their summary: nearest-rank percentiles over every sample (no
//! histogram bucketing), and the longest gap between consecutive acknowledgements.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Latency samples in microseconds. Signed, because a monitor update may arrive before the
/// reply to the write that caused it (a monitor on the writer's own member).
#[derive(Default, Debug, Clone)]
pub struct Samples {
    us: Vec<i64>,
}

#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.us.push(d.as_micros() as i64);
    }

    pub fn push_signed_us(&mut self, us: i64) {
        self.us.push(us);
    }

    pub fn merge(&mut self, other: Samples) {
        self.us.extend(other.us);
    }

    pub fn summary(&mut self) -> Summary {
        if self.us.is_empty() {
            return Summary::default();
        }
        self.us.sort_unstable();
        let n = self.us.len();
        // Nearest rank: the smallest sample with at least q of all samples at or below it.
        let rank = |q: f64| {
            let r = (q * n as f64).ceil() as usize;
            self.us[r.clamp(1, n) - 1] as f64 / 1000.0
        };
        Summary {
            count: n,
            mean_ms: self.us.iter().sum::<i64>() as f64 / n as f64 / 1000.0,
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            p999_ms: rank(0.999),
            max_ms: self.us[n - 1] as f64 / 1000.0,
        }
    }
}

/// The longest time between two consecutive acknowledgements (over all clients), and when it
/// began relative to `start`.
pub fn longest_gap(start: Instant, acks: &mut [Instant]) -> Option<(Duration, Duration)> {
    acks.sort_unstable();
    acks.windows(2)
        .map(|w| (w[1] - w[0], w[0] - start))
        .max_by_key(|(gap, _)| *gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for us in 1..=1000 {
            s.push_signed_us(us * 1000);
        }
        let sum = s.summary();
        assert_eq!(sum.count, 1000);
        assert_eq!(sum.p50_ms, 500.0);
        assert_eq!(sum.p99_ms, 990.0);
        assert_eq!(sum.p999_ms, 999.0);
        assert_eq!(sum.max_ms, 1000.0);
        assert_eq!(sum.mean_ms, 500.5);
    }

    #[test]
    fn few_samples_take_the_largest_for_high_percentiles() {
        let mut s = Samples::default();
        s.push_signed_us(-2000);
        s.push_signed_us(5000);
        let sum = s.summary();
        assert_eq!(sum.p50_ms, -2.0);
        assert_eq!(sum.p999_ms, 5.0);
    }

    #[test]
    fn longest_gap_between_sorted_acks() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut acks = vec![t0 + ms(30), t0 + ms(10), t0 + ms(500), t0 + ms(40)];
        assert_eq!(longest_gap(t0, &mut acks), Some((ms(460), ms(40))));
        assert_eq!(longest_gap(t0, &mut [t0]), None);
    }
}
