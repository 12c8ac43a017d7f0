//! Resident memory of the server processes under test, from `/proc/PID/status` (`VmRSS`).

use serde::Serialize;

/// One process's RSS before and after a workload, in KiB (`None`: not readable).
#[derive(Serialize, Debug, Clone)]
pub struct RssDelta {
    pub pid: u32,
    pub before_kib: Option<u64>,
    pub after_kib: Option<u64>,
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

/// Samples every pid now; `finish` samples them again.
pub struct RssProbe {
    before: Vec<(u32, Option<u64>)>,
}

impl RssProbe {
    pub fn start(pids: &[u32]) -> RssProbe {
        RssProbe {
            before: pids.iter().map(|&p| (p, vm_rss_kib(p))).collect(),
        }
    }

    pub fn finish(self) -> Vec<RssDelta> {
        self.before
            .into_iter()
            .map(|(pid, before_kib)| RssDelta {
                pid,
                before_kib,
                after_kib: vm_rss_kib(pid),
            })
            .collect()
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
}
