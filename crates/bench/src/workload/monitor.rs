//! `monitor`: monitor fan-out. M clients spread over the endpoints each hold a `monitor_cond`
//! on Logical_Switch_Port (docs/ovsdb-protocol.md section 2.6); one writer inserts ports at a fixed
//! rate. For every write and every monitor: the time from the writer reading its reply to the
//! monitor reading the `update2` that inserts the row (and, separately, from the write being
//! sent).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{connect_retrying, write::create_switch, Common};
use crate::client::Client;
use crate::nb;
use crate::report::{Errors, MonitorFigures, Report};
use crate::rss::RssProbe;
use crate::stats::Samples;

#[derive(Clone, Debug)]
pub struct MonitorOpts {
    pub monitors: usize,
    pub duration: Duration,
    /// Writes per second; 0 sends the next write as soon as the previous one is answered.
    pub rate: f64,
    /// Where the writer connects (default: the first endpoint).
    pub writer: Option<String>,
    /// How long to wait after the last write for monitors still missing updates.
    pub settle: Duration,
}

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

struct Monitor {
    _client: Client,
    seen: Seen,
    collector: tokio::task::JoinHandle<()>,
}

async fn start_monitor(common: &Common, endpoint: &str) -> Result<Monitor, String> {
    let client = connect_retrying(endpoint, common.timeout)
        .await
        .map_err(|e| e.to_string())?;
    let mut notes = client.take_notifications().expect("a fresh client");
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let collector = tokio::spawn(async move {
        while let Some(n) = notes.recv().await {
            if n.method != "update2" {
                continue;
            }
            let Some(rows) = n
                .params
                .get(1)
                .and_then(|u| u.get("Logical_Switch_Port"))
                .and_then(Value::as_object)
            else {
                continue;
            };
            let mut seen = sink.lock().unwrap();
            for (uuid, change) in rows {
                if change.get("insert").is_some() {
                    seen.entry(uuid.clone()).or_insert(n.at);
                }
            }
        }
    });
    let params =
        json!([common.database, "bench", {"Logical_Switch_Port": [{"columns": ["name"]}]}]);
    client
        .call("monitor_cond", params, common.timeout)
        .await
        .map_err(|e| format!("monitor_cond at {endpoint}: {e}"))?;
    Ok(Monitor {
        _client: client,
        seen,
        collector,
    })
}

struct Write {
    uuid: String,
    sent: Instant,
    replied: Instant,
}

pub async fn run(common: &Common, opts: &MonitorOpts) -> Report {
    let mut errors = Errors::default();
    let mut monitors = Vec::new();
    let starting: Vec<_> = (0..opts.monitors)
        .map(|i| {
            let common = common.clone();
            tokio::spawn(async move { start_monitor(&common, common.endpoint(i)).await })
        })
        .collect();
    for s in starting {
        match s.await {
            Ok(Ok(m)) => monitors.push(m),
            Ok(Err(e)) => errors.add(e),
            Err(e) => errors.add(e.to_string()),
        }
    }
    let writer_endpoint = opts
        .writer
        .clone()
        .unwrap_or_else(|| common.endpoint(0).to_string());
    let setup = async {
        let c = connect_retrying(&writer_endpoint, common.timeout)
            .await
            .map_err(|e| e.to_string())?;
        let sw = create_switch(&c, common, &format!("{}-ms", common.prefix)).await?;
        Ok::<_, String>((c, sw))
    }
    .await;
    let mut report = Report {
        workload: "monitor".into(),
        label: common.label.clone(),
        endpoints: common.endpoints.clone(),
        clients: monitors.len(),
        ..Default::default()
    };
    let (writer, switch) = match setup {
        Ok(s) => s,
        Err(e) => {
            errors.add(e);
            report.errors = errors.count;
            report.error_samples = errors.samples;
            return report;
        }
    };

    let rss = RssProbe::start(&common.pids);
    let start = Instant::now();
    let mut writes = Vec::new();
    let mut latency = Samples::default();
    let mut ticker = (opts.rate > 0.0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / opts.rate));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut n = 0u64;
    while start.elapsed() < opts.duration {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let ops = nb::lsp_add(&switch, &format!("{}-m{n}", common.prefix), n);
        n += 1;
        let sent = Instant::now();
        match writer
            .transact(&common.database, &ops, common.timeout)
            .await
        {
            Ok(r) => match (nb::txn_error(&r), nb::inserted_uuid(&r, 1)) {
                (None, Some(uuid)) => {
                    let replied = Instant::now();
                    latency.push(replied - sent);
                    writes.push(Write {
                        uuid,
                        sent,
                        replied,
                    });
                }
                (Some(e), _) => errors.add(e),
                (None, None) => errors.add(format!("no uuid in {r}")),
            },
            Err(e) => errors.add(e.to_string()),
        }
    }
    let elapsed = start.elapsed();

    // Let stragglers arrive, but stop as soon as every monitor has every row.
    let settle_until = Instant::now() + opts.settle;
    loop {
        let complete = monitors.iter().all(|m| {
            let seen = m.seen.lock().unwrap();
            writes.iter().all(|w| seen.contains_key(&w.uuid))
        });
        if complete || Instant::now() >= settle_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (mut after_reply, mut after_send) = (Samples::default(), Samples::default());
    let mut missed = 0u64;
    for m in &monitors {
        m.collector.abort();
        let seen = m.seen.lock().unwrap();
        for w in &writes {
            match seen.get(&w.uuid) {
                Some(&at) => {
                    let signed = if at >= w.replied {
                        (at - w.replied).as_micros() as i64
                    } else {
                        -((w.replied - at).as_micros() as i64)
                    };
                    after_reply.push_signed_us(signed);
                    after_send.push(at.saturating_duration_since(w.sent));
                }
                None => missed += 1,
            }
        }
    }
    for _ in 0..missed {
        errors.add(format!(
            "update not received within {:?} of the last write",
            opts.settle
        ));
    }
    let expected = (writes.len() * monitors.len()) as u64;
    report.elapsed_s = elapsed.as_secs_f64();
    report.ok = writes.len() as u64;
    report.errors = errors.count;
    report.error_samples = errors.samples;
    report.throughput_per_s = writes.len() as f64 / elapsed.as_secs_f64();
    report.latency = latency.summary();
    report.rss = rss.finish();
    report.monitor = Some(MonitorFigures {
        monitors: monitors.len(),
        writes: writes.len() as u64,
        updates_expected: expected,
        updates_received: expected - missed,
        update_after_reply: after_reply.summary(),
        update_after_send: after_send.summary(),
    });
    report
}
