//! `read`: read-only transactions (a `select` of one Logical_Switch_Port, alternately by name
//! and by `_uuid`) from N clients spread over the endpoints, over rows loaded beforehand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Barrier};

use super::{connect_retrying, Common, Rng};
use crate::client::Client;
use crate::nb::{self, PortKey};
use crate::report::{Errors, Report};
use crate::rss::RssProbe;
use crate::stats::Samples;

#[derive(Clone, Debug)]
pub struct ReadOpts {
    pub clients: usize,
    pub duration: Duration,
    pub count: Option<u64>,
    /// Ports loaded before reading (one switch, one transaction).
    pub rows: u64,
}

/// Loads one switch with `rows` ports; their names and UUIDs.
async fn load(common: &Common, rows: u64) -> Result<Vec<(String, String)>, String> {
    let client = connect_retrying(common.endpoint(0), common.timeout)
        .await
        .map_err(|e| e.to_string())?;
    let switch = format!("{}-rs", common.prefix);
    let ops = nb::switch_with_ports(&switch, rows, 0);
    let result = client
        .transact(&common.database, &ops, common.timeout)
        .await
        .map_err(|e| format!("loading {rows} ports: {e}"))?;
    if let Some(e) = nb::txn_error(&result) {
        return Err(format!("loading {rows} ports: {e}"));
    }
    let mut ports = Vec::new();
    for (i, op) in ops.iter().take(rows as usize).enumerate() {
        let name = op["row"]["name"].as_str().unwrap_or_default().to_string();
        let uuid = nb::inserted_uuid(&result, i).ok_or("no uuid in the load result")?;
        ports.push((name, uuid));
    }
    Ok(ports)
}

/// Waits until `endpoint` serves the row named `name` (a follower of ovsdb-server answers reads
/// from its own, possibly older, copy).
pub async fn wait_visible(
    client: &Client,
    common: &Common,
    name: &str,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let ops = nb::select_port(&PortKey::Name(name.to_string()));
        if let Ok(r) = client
            .transact(&common.database, &ops, common.timeout)
            .await
        {
            if r[0]["rows"].as_array().is_some_and(|rows| !rows.is_empty()) {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{name} not visible at {} after {within:?}",
                client.endpoint()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(common: &Common, opts: &ReadOpts) -> Report {
    let mut errors = Errors::default();
    let ports = match load(common, opts.rows.max(1)).await {
        Ok(p) => Arc::new(p),
        Err(e) => {
            errors.add(e);
            return Report {
                workload: "read".into(),
                label: common.label.clone(),
                endpoints: common.endpoints.clone(),
                errors: errors.count,
                error_samples: errors.samples,
                ..Default::default()
            };
        }
    };
    let barrier = Arc::new(Barrier::new(opts.clients + 1));
    let (start_tx, start_rx) = watch::channel(None::<Instant>);
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..opts.clients {
        let (common, opts, barrier, ports, issued) = (
            common.clone(),
            opts.clone(),
            barrier.clone(),
            ports.clone(),
            issued.clone(),
        );
        let mut start_rx = start_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Errors::default();
            let mut latency = Samples::default();
            let mut ok = 0u64;
            let endpoint = common.endpoint(i).to_string();
            let setup = async {
                let c = connect_retrying(&endpoint, common.timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                let last = &ports.last().expect("at least one port").0;
                wait_visible(&c, &common, last, common.timeout).await?;
                Ok::<_, String>(c)
            }
            .await;
            barrier.wait().await;
            let start = start_rx
                .wait_for(Option::is_some)
                .await
                .map(|s| s.unwrap())
                .ok();
            let client = match (setup, start) {
                (Ok(c), Some(_)) => c,
                (Err(e), _) => {
                    errors.add(e);
                    return (ok, latency, errors);
                }
                (_, None) => return (ok, latency, errors),
            };
            let deadline = start.unwrap() + opts.duration;
            let mut rng = Rng::new(i as u64 + 1);
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if opts.count.is_some_and(|c| n >= c) || Instant::now() >= deadline {
                    break;
                }
                let (name, uuid) = &ports[rng.below(ports.len() as u64) as usize];
                let key = if n % 2 == 0 {
                    PortKey::Name(name.clone())
                } else {
                    PortKey::Uuid(uuid.clone())
                };
                let t0 = Instant::now();
                match client
                    .transact(&common.database, &nb::select_port(&key), common.timeout)
                    .await
                {
                    Ok(r) => match nb::txn_error(&r) {
                        None if r[0]["rows"].as_array().is_some_and(|rows| rows.len() == 1) => {
                            latency.push(t0.elapsed());
                            ok += 1;
                        }
                        None => errors.add(format!("select found no row: {r}")),
                        Some(e) => errors.add(e),
                    },
                    Err(e) => errors.add(e.to_string()),
                }
            }
            (ok, latency, errors)
        }));
    }
    barrier.wait().await;
    let rss = RssProbe::start(&common.pids);
    let start = Instant::now();
    let _ = start_tx.send(Some(start));
    let (mut ok, mut latency) = (0, Samples::default());
    for t in tasks {
        if let Ok((o, l, e)) = t.await {
            ok += o;
            latency.merge(l);
            errors.merge(e);
        }
    }
    let elapsed = start.elapsed();
    Report {
        workload: "read".into(),
        label: common.label.clone(),
        endpoints: common.endpoints.clone(),
        clients: opts.clients,
        elapsed_s: elapsed.as_secs_f64(),
        ok,
        errors: errors.count,
        error_samples: errors.samples,
        throughput_per_s: ok as f64 / elapsed.as_secs_f64(),
        latency: latency.summary(),
        rss: rss.finish(),
        ..Default::default()
    }
}
