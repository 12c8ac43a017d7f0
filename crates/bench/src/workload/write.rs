//! `write`: N clients, spread round-robin over the endpoints, each sending one `lsp-add`-shaped
//! transaction at a time (insert a Logical_Switch_Port, add it to the client's own switch's
//! `ports`) until the duration or the total count is reached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Barrier};

use super::{connect_retrying, Common};
use crate::client::{Client, ClientError};
use crate::nb;
use crate::report::{Errors, Report};
use crate::rss::RssProbe;
use crate::stats::{longest_gap, Samples};

#[derive(Clone, Debug)]
pub struct WriteOpts {
    pub clients: usize,
    pub duration: Duration,
    /// Stop after this many transactions in total (whichever of this and `duration` comes first).
    pub count: Option<u64>,
    /// Transactions each client sends before the measured run and leaves out of every figure
    /// (first connections, page faults and allocations of both sides are not what is measured).
    pub warmup: u64,
}

#[derive(Default)]
struct ClientResult {
    ok: u64,
    latency: Samples,
    acks: Vec<Instant>,
    errors: Errors,
}

/// Inserts the client's own switch; its `_uuid` is what later transactions name.
pub async fn create_switch(client: &Client, common: &Common, name: &str) -> Result<String, String> {
    let result = client
        .transact(&common.database, &nb::ls_add(name), common.timeout)
        .await
        .map_err(|e| format!("ls-add {name}: {e}"))?;
    if let Some(e) = nb::txn_error(&result) {
        return Err(format!("ls-add {name}: {e}"));
    }
    nb::inserted_uuid(&result, 0).ok_or_else(|| format!("ls-add {name}: no uuid in {result}"))
}

pub async fn run(common: &Common, opts: &WriteOpts) -> Report {
    let barrier = Arc::new(Barrier::new(opts.clients + 1));
    let (start_tx, start_rx) = watch::channel(None::<Instant>);
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..opts.clients {
        let common = common.clone();
        let opts = opts.clone();
        let barrier = barrier.clone();
        let mut start_rx = start_rx.clone();
        let issued = issued.clone();
        tasks.push(tokio::spawn(async move {
            let mut res = ClientResult::default();
            let endpoint = common.endpoint(i).to_string();
            let setup = async {
                let client = connect_retrying(&endpoint, common.timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                let switch =
                    create_switch(&client, &common, &format!("{}-ls{i}", common.prefix)).await?;
                for w in 0..opts.warmup {
                    let ops = nb::lsp_add(&switch, &format!("{}-warm{i}-{w}", common.prefix), w);
                    let result = client
                        .transact(&common.database, &ops, common.timeout)
                        .await
                        .map_err(|e| format!("warm-up transaction: {e}"))?;
                    if let Some(e) = nb::txn_error(&result) {
                        return Err(format!("warm-up transaction: {e}"));
                    }
                }
                Ok::<_, String>((client, switch))
            }
            .await;
            barrier.wait().await;
            let start = start_rx
                .wait_for(Option::is_some)
                .await
                .map(|s| s.unwrap())
                .ok();
            let (mut client, switch) = match (setup, start) {
                (Ok(s), Some(_)) => s,
                (Err(e), _) => {
                    res.errors.add(e);
                    return res;
                }
                (_, None) => return res,
            };
            let deadline = start.unwrap() + opts.duration;
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if opts.count.is_some_and(|c| n >= c) || Instant::now() >= deadline {
                    break;
                }
                let ops = nb::lsp_add(&switch, &format!("{}-w{n}", common.prefix), n);
                let t0 = Instant::now();
                match client
                    .transact(&common.database, &ops, common.timeout)
                    .await
                {
                    Ok(result) => match nb::txn_error(&result) {
                        None => {
                            let now = Instant::now();
                            res.latency.push(now - t0);
                            res.acks.push(now);
                            res.ok += 1;
                        }
                        Some(e) => res.errors.add(e),
                    },
                    Err(e @ (ClientError::Closed | ClientError::Framing(_))) => {
                        res.errors.add(e.to_string());
                        let left = deadline.saturating_duration_since(Instant::now());
                        match connect_retrying(&endpoint, left).await {
                            Ok(c) => client = c,
                            Err(e) => {
                                res.errors.add(e.to_string());
                                break;
                            }
                        }
                    }
                    Err(e) => res.errors.add(e.to_string()),
                }
            }
            res
        }));
    }
    barrier.wait().await;
    let rss = RssProbe::start(&common.pids);
    let start = Instant::now();
    let _ = start_tx.send(Some(start));
    let mut all = ClientResult::default();
    for t in tasks {
        if let Ok(r) = t.await {
            all.ok += r.ok;
            all.latency.merge(r.latency);
            all.acks.extend(r.acks);
            all.errors.merge(r.errors);
        }
    }
    let elapsed = start.elapsed();
    let gap = longest_gap(start, &mut all.acks);
    Report {
        workload: if opts.clients == 1 {
            "latency"
        } else {
            "write"
        }
        .into(),
        label: common.label.clone(),
        endpoints: common.endpoints.clone(),
        clients: opts.clients,
        elapsed_s: elapsed.as_secs_f64(),
        ok: all.ok,
        errors: all.errors.count,
        error_samples: all.errors.samples,
        throughput_per_s: all.ok as f64 / elapsed.as_secs_f64(),
        latency: all.latency.summary(),
        max_ack_gap_ms: gap.map(|(g, _)| g.as_secs_f64() * 1000.0),
        max_ack_gap_at_s: gap.map(|(_, at)| at.as_secs_f64()),
        rss: rss.finish(),
        ..Default::default()
    }
}
