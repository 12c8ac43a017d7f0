//! What a workload measured, printed as a table for people or as one JSON object (`--json`)
//! for scripts such as `tests/bench/compare.sh`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::rss::RssDelta;
use crate::stats::Summary;

#[derive(Serialize, Debug, Default)]
pub struct Report {
    pub workload: String,
    pub label: Option<String>,
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub elapsed_s: f64,
    /// Successful operations (transactions, or monitor updates received).
    pub ok: u64,
    pub errors: u64,
    /// A few distinct error texts with how often each occurred.
    pub error_samples: BTreeMap<String, u64>,
    pub throughput_per_s: f64,
    /// Per transaction, request sent to reply read.
    pub latency: Summary,
    /// The longest time between two consecutive acknowledged transactions (all clients).
    pub max_ack_gap_ms: Option<f64>,
    /// When that gap began, in seconds from the start of the measurement.
    pub max_ack_gap_at_s: Option<f64>,
    pub rss: Vec<RssDelta>,
    pub monitor: Option<MonitorFigures>,
    pub bulk: Option<BulkFigures>,
    pub storm: Option<StormFigures>,
    pub condmon: Option<CondMonFigures>,
}

/// `condmon`: conditional monitoring as ovn-controller does it.
#[derive(Serialize, Debug, Default)]
pub struct CondMonFigures {
    pub chassis: usize,
    pub flows: u64,
    pub datapaths: u64,
    pub load_s: f64,
    /// Sessions whose monitor_cond was answered with their datapath's flows.
    pub sessions_subscribed: u64,
    /// From the subscription's start until the last session had its initial contents.
    pub subscribe_last_s: f64,
    /// monitor_cond_change adding a datapath, until its flows arrived (one session at a time).
    pub cond_change: Summary,
    /// A Port_Binding bound to a chassis, until that chassis's session had it.
    pub bind: Summary,
    /// One new flow, until every session with its datapath local had it (the slowest, per write).
    pub flow_fan_out: Summary,
    /// Updates that reached sessions whose conditions do not match (must be 0).
    pub spurious_updates: u64,
}

#[derive(Serialize, Debug, Default)]
pub struct StormFigures {
    pub flows: u64,
    pub load_s: f64,
    pub load_rows_per_s: f64,
    /// Clients that received the whole table.
    pub clients_served: u64,
    /// From the storm's start until the last client had its initial contents.
    pub last_client_s: f64,
    /// From sending one more flow until each monitor read its update.
    pub fan_out: Summary,
    /// CPU seconds used during the storm by this load tool and by each `--pid` (same order).
    pub client_cpu_s: Option<f64>,
    pub server_cpu_s: Vec<Option<f64>>,
    /// Opening every client's connection, before the storm.
    pub connect_s: f64,
}

#[derive(Serialize, Debug, Default)]
pub struct MonitorFigures {
    pub monitors: usize,
    pub writes: u64,
    pub updates_expected: u64,
    pub updates_received: u64,
    /// From the write's reply (at the writer) to the update's arrival at each monitor; negative
    /// when the update arrived first.
    pub update_after_reply: Summary,
    /// From the write's request being sent to the update's arrival at each monitor.
    pub update_after_send: Summary,
}

#[derive(Serialize, Debug, Default)]
pub struct BulkFigures {
    pub switches: u64,
    pub ports: u64,
    pub rows: u64,
    pub transactions: u64,
    /// From the first request to the last reply.
    pub load_s: f64,
    /// From the first request until every endpoint serves the last row.
    pub load_and_replicate_s: f64,
    pub rows_per_s: f64,
    /// Sum of the RSS growth of every `--pid`, over the rows loaded and the number of pids.
    pub rss_bytes_per_row_per_process: Option<f64>,
}

/// Counts errors, keeping a few distinct texts.
#[derive(Default, Debug)]
pub struct Errors {
    pub count: u64,
    pub samples: BTreeMap<String, u64>,
}

impl Errors {
    pub fn add(&mut self, text: impl Into<String>) {
        self.count += 1;
        let mut text: String = text.into();
        if text.len() > 200 {
            let mut cut = 200;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        if let Some(n) = self.samples.get_mut(&text) {
            *n += 1;
        } else if self.samples.len() < 8 {
            self.samples.insert(text, 1);
        }
    }

    pub fn merge(&mut self, other: Errors) {
        self.count += other.count;
        for (k, v) in other.samples {
            if let Some(n) = self.samples.get_mut(&k) {
                *n += v;
            } else if self.samples.len() < 8 {
                self.samples.insert(k, v);
            }
        }
    }
}

fn row(out: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "  {key:<28} {value}");
}

fn summary_row(out: &mut String, key: &str, s: &Summary) {
    row(
        out,
        key,
        format!(
            "n={} p50={:.3} p99={:.3} p999={:.3} max={:.3} mean={:.3} ms",
            s.count, s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms, s.mean_ms
        ),
    );
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let title = match &self.label {
            Some(l) => format!("{} ({l})", self.workload),
            None => self.workload.clone(),
        };
        let _ = writeln!(out, "{title}");
        row(&mut out, "endpoints", self.endpoints.join(","));
        row(&mut out, "clients", self.clients);
        row(&mut out, "elapsed", format!("{:.2} s", self.elapsed_s));
        row(&mut out, "ok", self.ok);
        row(&mut out, "errors", self.errors);
        for (text, n) in &self.error_samples {
            row(&mut out, "  error", format!("{n} x {text}"));
        }
        row(
            &mut out,
            "throughput",
            format!("{:.1} /s", self.throughput_per_s),
        );
        summary_row(&mut out, "latency", &self.latency);
        if let (Some(gap), Some(at)) = (self.max_ack_gap_ms, self.max_ack_gap_at_s) {
            row(
                &mut out,
                "longest gap between acks",
                format!("{gap:.1} ms (from {at:.2} s)"),
            );
        }
        if let Some(m) = &self.monitor {
            row(&mut out, "monitors", m.monitors);
            row(&mut out, "writes", m.writes);
            row(
                &mut out,
                "updates received/expected",
                format!("{}/{}", m.updates_received, m.updates_expected),
            );
            summary_row(&mut out, "update after write reply", &m.update_after_reply);
            summary_row(&mut out, "update after write sent", &m.update_after_send);
        }
        if let Some(b) = &self.bulk {
            row(
                &mut out,
                "rows",
                format!("{} ({} switches, {} ports)", b.rows, b.switches, b.ports),
            );
            row(&mut out, "transactions", b.transactions);
            row(
                &mut out,
                "load time",
                format!("{:.2} s ({:.0} rows/s)", b.load_s, b.rows_per_s),
            );
            row(
                &mut out,
                "load + replicated everywhere",
                format!("{:.2} s", b.load_and_replicate_s),
            );
            if let Some(bpr) = b.rss_bytes_per_row_per_process {
                row(
                    &mut out,
                    "RSS per row per process",
                    format!("{bpr:.0} bytes"),
                );
            }
        }
        if let Some(st) = &self.storm {
            row(
                &mut out,
                "load",
                format!(
                    "{} flows in {:.2} s ({:.0} rows/s)",
                    st.flows, st.load_s, st.load_rows_per_s
                ),
            );
            row(
                &mut out,
                "clients connected in",
                format!("{:.2} s", st.connect_s),
            );
            row(
                &mut out,
                "clients with their initial contents",
                format!(
                    "{} (last after {:.2} s)",
                    st.clients_served, st.last_client_s
                ),
            );
            summary_row(&mut out, "one write's fan-out", &st.fan_out);
            let secs = |v: Option<f64>| v.map_or("?".into(), |s| format!("{s:.1} s"));
            row(
                &mut out,
                "CPU during the storm",
                format!(
                    "load tool {}; servers {}",
                    secs(st.client_cpu_s),
                    st.server_cpu_s
                        .iter()
                        .map(|c| secs(*c))
                        .collect::<Vec<_>>()
                        .join(" / ")
                ),
            );
        }
        if let Some(c) = &self.condmon {
            row(
                &mut out,
                "load",
                format!(
                    "{} chassis, {} datapaths, {} flows in {:.2} s",
                    c.chassis, c.datapaths, c.flows, c.load_s
                ),
            );
            row(
                &mut out,
                "sessions subscribed",
                format!(
                    "{} (last after {:.2} s)",
                    c.sessions_subscribed, c.subscribe_last_s
                ),
            );
            summary_row(&mut out, "condition change", &c.cond_change);
            summary_row(&mut out, "port binding's update", &c.bind);
            summary_row(&mut out, "new flow's fan-out", &c.flow_fan_out);
            row(&mut out, "spurious updates", c.spurious_updates);
        }
        for r in &self.rss {
            let fmt = |v: Option<u64>| {
                v.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
            };
            row(
                &mut out,
                &format!("RSS pid {}", r.pid),
                format!(
                    "{} -> {} ({}), peak {}",
                    fmt(r.before_kib),
                    fmt(r.after_kib),
                    r.delta_kib()
                        .map_or("?".into(), |d| format!("{:+.1} MiB", d as f64 / 1024.0)),
                    fmt(r.peak_kib)
                ),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_counts_of_a_few_distinct_texts() {
        let mut e = Errors::default();
        for i in 0..20 {
            e.add(format!("e{}", i % 10));
        }
        assert_eq!(e.count, 20);
        assert_eq!(e.samples.len(), 8);
        assert_eq!(e.samples["e0"], 2);
        let mut f = Errors::default();
        f.add("e0");
        e.merge(f);
        assert_eq!((e.count, e.samples["e0"]), (21, 3));
    }

    #[test]
    fn table_shows_every_section() {
        let r = Report {
            workload: "bulk".into(),
            bulk: Some(BulkFigures {
                rows: 10,
                rss_bytes_per_row_per_process: Some(300.0),
                ..Default::default()
            }),
            rss: vec![RssDelta {
                pid: 1,
                before_kib: Some(1024),
                after_kib: Some(2048),
                peak_kib: Some(3072),
            }],
            ..Default::default()
        };
        let t = r.table();
        assert!(t.contains("RSS per row per process      300 bytes"), "{t}");
        assert!(
            t.contains("1.0 MiB -> 2.0 MiB (+1.0 MiB), peak 3.0 MiB"),
            "{t}"
        );
    }
}
