//! Resident memory of the server processes under test, from `/proc/PID/status` (`VmRSS`):
//! before a workload, after it, and the highest value sampled while it ran.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// How often the probe samples while a workload runs: often enough to see a storm's peak, which
/// lasts seconds, at a negligible cost (one small file read per process).
const PEAK_SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// One process's RSS before and after a workload, in KiB (`None`: not readable).
#[derive(Serialize, Debug, Clone)]
pub struct RssDelta {
    pub pid: u32,
    pub before_kib: Option<u64>,
    pub after_kib: Option<u64>,
    /// The highest sample taken while the workload ran (every 50 ms).
    pub peak_kib: Option<u64>,
}

impl RssDelta {
    pub fn delta_kib(&self) -> Option<i64> {
        Some(self.after_kib? as i64 - self.before_kib? as i64)
    }
}

/// `VmRSS` of `pid` in KiB.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples every pid now and then every 50 ms until `finish` samples them a last time.
pub struct RssProbe {
    before: Vec<(u32, Option<u64>)>,
    peaks: Arc<Mutex<Vec<Option<u64>>>>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl RssProbe {
    pub fn start(pids: &[u32]) -> RssProbe {
        let before: Vec<_> = pids.iter().map(|&p| (p, vm_rss_kib(p))).collect();
        let peaks = Arc::new(Mutex::new(before.iter().map(|(_, k)| *k).collect()));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (pids, peaks, stop) = (pids.to_vec(), peaks.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(PEAK_SAMPLE_EVERY);
                    sample_into(&pids, &peaks);
                }
            })
        };
        RssProbe {
            before,
            peaks,
            stop,
            sampler: Some(sampler),
        }
    }

    pub fn finish(mut self) -> Vec<RssDelta> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
        let pids: Vec<u32> = self.before.iter().map(|(p, _)| *p).collect();
        sample_into(&pids, &self.peaks);
        let peaks = self.peaks.lock().unwrap().clone();
        self.before
            .iter()
            .zip(peaks)
            .map(|(&(pid, before_kib), peak_kib)| RssDelta {
                pid,
                before_kib,
                after_kib: vm_rss_kib(pid),
                peak_kib,
            })
            .collect()
    }
}

impl Drop for RssProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn sample_into(pids: &[u32], peaks: &Mutex<Vec<Option<u64>>>) {
    let now: Vec<_> = pids.iter().map(|&p| vm_rss_kib(p)).collect();
    let mut peaks = peaks.lock().unwrap();
    for (peak, now) in peaks.iter_mut().zip(now) {
        *peak = match (*peak, now) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_of_this_process() {
        assert!(parse_vm_rss("Name:\tx\nVmRSS:\t  123456 kB\nRssAnon: 1 kB\n") == Some(123456));
        assert!(vm_rss_kib(std::process::id()).unwrap() > 0);
        assert_eq!(vm_rss_kib(u32::MAX), None);
    }

    #[test]
    fn the_peak_sees_memory_that_was_freed_before_the_end() {
        let me = std::process::id();
        let probe = RssProbe::start(&[me]);
        // 200 MiB touched, held for a few samples, then freed.
        let mut big = vec![1u8; 200 << 20];
        for i in (0..big.len()).step_by(4096) {
            big[i] = i as u8;
        }
        std::thread::sleep(PEAK_SAMPLE_EVERY * 4);
        drop(std::hint::black_box(big));
        let r = &probe.finish()[0];
        let (peak, after) = (r.peak_kib.unwrap(), r.after_kib.unwrap());
        assert!(peak >= r.before_kib.unwrap() + (150 << 10), "{r:?}");
        assert!(peak >= after + (150 << 10), "{r:?}");
    }
}
