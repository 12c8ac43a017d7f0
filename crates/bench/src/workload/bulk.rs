//! `bulk`: loads an OVN Northbound of S switches with P ports each (100k ports by default) in
//! transactions of B switches with their ports, from C clients spread over the endpoints; then
//! waits until every endpoint serves the last row, and reports the RSS growth per row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{connect_retrying, read::wait_visible, Common};
use crate::client::ClientError;
use crate::nb;
use crate::report::{BulkFigures, Errors, Report};
use crate::rss::RssProbe;
use crate::stats::Samples;

#[derive(Clone, Debug)]
pub struct BulkOpts {
    pub switches: u64,
    pub ports_per_switch: u64,
    /// Switches (each with its ports) per transaction.
    pub batch: u64,
    pub clients: usize,
}

pub async fn run(common: &Common, opts: &BulkOpts) -> Report {
    let batch = opts.batch.max(1);
    let txns = opts.switches.div_ceil(batch);
    let next = Arc::new(AtomicU64::new(0));
    let rss = RssProbe::start(&common.pids);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..opts.clients.max(1) {
        let (common, opts, next) = (common.clone(), opts.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut errors = Errors::default();
            let mut latency = Samples::default();
            let mut ok = 0u64;
            let client = match connect_retrying(common.endpoint(i), common.timeout).await {
                Ok(c) => c,
                Err(e) => {
                    errors.add(e.to_string());
                    return (ok, latency, errors);
                }
            };
            loop {
                let t = next.fetch_add(1, Ordering::Relaxed);
                if t >= txns {
                    break;
                }
                let first = t * batch;
                let last = (first + batch).min(opts.switches);
                let mut ops = Vec::new();
                for s in first..last {
                    let name = format!("{}-bulk{s}", common.prefix);
                    ops.extend(nb::switch_with_ports(
                        &name,
                        opts.ports_per_switch,
                        s * opts.ports_per_switch,
                    ));
                }
                let t0 = Instant::now();
                match client
                    .transact(&common.database, &ops, common.timeout)
                    .await
                {
                    Ok(r) => match nb::txn_error(&r) {
                        None => {
                            latency.push(t0.elapsed());
                            ok += 1;
                        }
                        Some(e) => errors.add(e),
                    },
                    Err(e @ (ClientError::Closed | ClientError::Framing(_))) => {
                        errors.add(e.to_string());
                        break;
                    }
                    Err(e) => errors.add(e.to_string()),
                }
            }
            (ok, latency, errors)
        }));
    }
    let (mut ok, mut latency, mut errors) = (0, Samples::default(), Errors::default());
    for t in tasks {
        if let Ok((o, l, e)) = t.await {
            ok += o;
            latency.merge(l);
            errors.merge(e);
        }
    }
    let load = start.elapsed();

    // A marker written after everything else: once an endpoint serves it, it has applied the
    // whole load (each member applies the log in order).
    let marker = format!("{}-bulkdone", common.prefix);
    wait_replicated(
        common,
        &marker,
        opts.switches * opts.ports_per_switch,
        Duration::from_secs(120),
        &mut errors,
    )
    .await;
    let replicated = start.elapsed();
    let rss = rss.finish();

    let switches_loaded = (ok * batch).min(opts.switches);
    let rows = switches_loaded * (1 + opts.ports_per_switch);
    let deltas: Vec<i64> = rss.iter().filter_map(|r| r.delta_kib()).collect();
    let per_row = (!deltas.is_empty() && rows > 0)
        .then(|| deltas.iter().sum::<i64>() as f64 * 1024.0 / rows as f64 / deltas.len() as f64);
    Report {
        workload: "bulk".into(),
        label: common.label.clone(),
        endpoints: common.endpoints.clone(),
        clients: opts.clients.max(1),
        elapsed_s: load.as_secs_f64(),
        ok,
        errors: errors.count,
        error_samples: errors.samples,
        throughput_per_s: ok as f64 / load.as_secs_f64(),
        latency: latency.summary(),
        rss,
        bulk: Some(BulkFigures {
            switches: switches_loaded,
            ports: switches_loaded * opts.ports_per_switch,
            rows,
            transactions: ok,
            load_s: load.as_secs_f64(),
            load_and_replicate_s: replicated.as_secs_f64(),
            rows_per_s: rows as f64 / load.as_secs_f64(),
            rss_bytes_per_row_per_process: per_row,
        }),
        ..Default::default()
    }
}

/// Writes one marker switch (its port numbered `first_port`) through the first endpoint after a
/// load, then waits until every endpoint serves that port. Members apply the log in order, so
/// an endpoint that serves the marker holds the whole load.
pub(super) async fn wait_replicated(
    common: &Common,
    marker: &str,
    first_port: u64,
    limit: Duration,
    errors: &mut Errors,
) {
    let marker_port = format!("{marker}-p{first_port}");
    match connect_retrying(common.endpoint(0), common.timeout).await {
        Ok(c) => {
            let ops = nb::switch_with_ports(marker, 1, first_port);
            match c.transact(&common.database, &ops, common.timeout).await {
                Ok(r) if nb::txn_error(&r).is_none() => {}
                Ok(r) => errors.add(format!("marker: {r}")),
                Err(e) => errors.add(format!("marker: {e}")),
            }
        }
        Err(e) => errors.add(e.to_string()),
    }
    for endpoint in &common.endpoints {
        let waited = async {
            let c = connect_retrying(endpoint, common.timeout)
                .await
                .map_err(|e| e.to_string())?;
            wait_visible(&c, common, &marker_port, limit).await
        };
        if let Err(e) = waited.await {
            errors.add(e);
        }
    }
}
