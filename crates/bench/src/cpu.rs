//! CPU time of processes, from `/proc/PID/stat` (`utime` + `stime`): the servers' cost of a
//! workload, and the load tool's own, so a figure can be checked not to measure the client.

/// Linux's `USER_HZ`: the unit of `/proc/PID/stat`'s times on every architecture it supports.
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds `pid` has used so far (all its threads).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: count fields after its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// CPU seconds of this process and of each of `pids`, from `start` until `finish`.
pub struct CpuProbe {
    before: Vec<(u32, Option<f64>)>,
}

impl CpuProbe {
    pub fn start(pids: &[u32]) -> CpuProbe {
        let me = std::process::id();
        CpuProbe {
            before: std::iter::once(me)
                .chain(pids.iter().copied())
                .map(|p| (p, cpu_seconds(p)))
                .collect(),
        }
    }

    /// (this process's CPU seconds, each pid's CPU seconds) since `start`.
    pub fn finish(self) -> (Option<f64>, Vec<Option<f64>>) {
        let mut used = self
            .before
            .into_iter()
            .map(|(p, before)| Some(cpu_seconds(p)? - before?));
        let me = used.next().flatten();
        (me, used.collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_times_after_a_name_with_spaces() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 4 0 1 0 0";
        assert_eq!(parse_stat(stat), Some(3.0));
    }

    #[test]
    fn counts_this_process_spinning() {
        let probe = CpuProbe::start(&[]);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let (me, _) = probe.finish();
        assert!(me.unwrap() >= 0.2, "{me:?}");
    }
}
