//! `storm`: a Southbound reconnection storm, as when every `ovn-controller` reconnects at once
//! (after a server restart or a schema conversion). FLOWS `Logical_Flow` rows (over DATAPATHS
//! `Datapath_Binding`s) are loaded in transactions of BATCH rows; then CLIENTS connections,
//! spread over the endpoints, send `monitor_cond_since` on `Logical_Flow` and `Port_Binding`
//! with no last transaction id (what a restarted `ovn-controller` sends) at the same instant.
//! Measured: the load's rows/s; per client, from the request to the reply holding the whole
//! table (p50, max); the RSS of every `--pid` after the storm; then one more flow's fan-out to
//! every client (`update3`).
//!
//! Each client counts the rows of its reply as the bytes arrive, without keeping them
//! (`reply_scan`), and the CPU the load tool used during the storm is reported next to the
//! servers', so a figure can be checked not to be the client's own work.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{connect_retrying, open_retrying, Common};
use crate::client::{Client, Reader, Writer};
use crate::cpu::CpuProbe;
use crate::reply_scan::{ReplyScanner, Scanned};
use crate::report::{Errors, Report, StormFigures};
use crate::rss::RssProbe;
use crate::stats::Samples;

#[derive(Clone, Debug)]
pub struct StormOpts {
    pub flows: u64,
    pub datapaths: u64,
    pub batch: u64,
    pub clients: usize,
}

const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// One `Logical_Flow` insert (number `k`) on `datapath`, shaped like ovn-northd's.
pub(super) fn flow(prefix: &str, k: u64, datapath: &Value) -> Value {
    json!({"op": "insert", "table": "Logical_Flow", "row": {
        "logical_datapath": datapath,
        "pipeline": if k.is_multiple_of(2) { "ingress" } else { "egress" },
        "table_id": (k % 24) as i64,
        "priority": (k % 1000) as i64,
        "match": format!("inport == \"{prefix}-lp{k}\" && eth.src == 00:00:00:{:02x}:{:02x}:{:02x} && ip4.dst == 10.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255, (k >> 16) & 255, (k >> 8) & 255, k & 255),
        "actions": format!("reg0[{}] = 1; next;", k % 32),
        "external_ids": ["map", [["source", format!("northd.c:{}", 1000 + k % 9000)], ["stage-name", "ls_in_acl"]]],
    }})
}

/// Loads the datapaths then the flows; the time it took. Every flow transaction is serialised
/// before its clock starts (the datapaths' uuids must be known first), so the rate is the
/// server's: building 20,000 rows of JSON costs the client tens of ms per transaction, which
/// would be counted for both servers alike and hide part of the difference between them.
async fn load(c: &Client, common: &Common, opts: &StormOpts) -> Result<Duration, String> {
    let start = Instant::now();
    let base = 1 + (std::process::id() as u64 % 1000) * 10_000;
    let dps: Vec<Value> = (0..opts.datapaths)
        .map(|i| {
            json!({"op": "insert", "table": "Datapath_Binding",
                "row": {"tunnel_key": (base + i) as i64,
                        "external_ids": ["map", [["name", format!("{}-dp{i}", common.prefix)]]]}})
        })
        .collect();
    let r = c
        .transact(&common.database, &dps, common.timeout)
        .await
        .map_err(|e| format!("datapaths: {e}"))?;
    let dp_uuids: Vec<Value> = r
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("uuid").cloned())
        .collect();
    if dp_uuids.len() as u64 != opts.datapaths {
        return Err(format!("datapaths not inserted: {r}"));
    }
    let mut spent = start.elapsed();
    let batches: Vec<(u64, u64, Vec<u8>)> = (0..opts.flows)
        .step_by(opts.batch.max(1) as usize)
        .map(|k| {
            let n = opts.batch.min(opts.flows - k);
            let mut params = vec![Value::String(common.database.clone())];
            params.extend(
                (k..k + n)
                    .map(|i| flow(&common.prefix, i, &dp_uuids[(i % opts.datapaths) as usize])),
            );
            let text = serde_json::to_vec(&params).expect("a JSON value serialises");
            (k, n, text)
        })
        .collect();
    let start = Instant::now();
    for (k, n, params) in &batches {
        let r = c
            .call_prebuilt("transact", params, common.timeout)
            .await
            .map_err(|e| format!("flows {k}..{}: {e}", k + n))?;
        if let Some(e) = r
            .as_array()
            .and_then(|a| a.iter().find(|o| o.get("error").is_some()))
        {
            return Err(format!("flows {k}..{}: {e}", k + n));
        }
    }
    spent += start.elapsed();
    Ok(spent)
}

fn monitor_params(common: &Common, i: usize) -> Value {
    json!([common.database, format!("storm{i}"), {
        "Logical_Flow": [{"columns": ["logical_datapath", "logical_dp_group", "pipeline", "table_id",
                                      "priority", "match", "actions", "external_ids"]}],
        "Port_Binding": [{}],
    }, ZERO_UUID])
}

pub async fn run(common: &Common, opts: &StormOpts) -> Report {
    let mut errors = Errors::default();
    let mut report = Report {
        workload: "storm".into(),
        label: common.label.clone(),
        endpoints: common.endpoints.clone(),
        clients: opts.clients,
        ..Default::default()
    };
    let loader = match connect_retrying(common.endpoint(0), common.timeout).await {
        Ok(c) => c,
        Err(e) => {
            errors.add(e.to_string());
            report.errors = errors.count;
            report.error_samples = errors.samples;
            return report;
        }
    };
    let load_time = match load(&loader, common, opts).await {
        Ok(t) => t,
        Err(e) => {
            errors.add(e);
            report.errors = errors.count;
            report.error_samples = errors.samples;
            return report;
        }
    };

    // Every client connected first, all at once; then the requests go out together. (One
    // connection after another took long enough at 1,000 clients for the first ones, which
    // read nothing until the storm, to be closed by the server's inactivity probe.)
    let connecting: Vec<_> = (0..opts.clients)
        .map(|i| {
            let (endpoint, within) = (common.endpoint(i).to_string(), common.timeout);
            tokio::spawn(async move { (i, open_retrying(&endpoint, within).await) })
        })
        .collect();
    let connect_start = Instant::now();
    let mut clients = Vec::new();
    for c in connecting {
        match c.await {
            Ok((i, Ok(c))) => clients.push((i, c)),
            Ok((_, Err(e))) => errors.add(e.to_string()),
            Err(e) => errors.add(e.to_string()),
        }
    }
    let connect_time = connect_start.elapsed();
    let rss = RssProbe::start(&common.pids);
    let cpu = CpuProbe::start(&common.pids);
    let start = Instant::now();
    let storm: Vec<_> = clients
        .into_iter()
        .map(|(i, (r, w))| {
            let params = monitor_params(common, i);
            let endpoint = common.endpoint(i).to_string();
            let timeout = common.timeout;
            tokio::spawn(async move {
                let subscribed = tokio::time::timeout(
                    timeout,
                    subscribe(&endpoint, r, w, params, "Logical_Flow"),
                )
                .await
                .unwrap_or_else(|_| Err(format!("no reply within {timeout:?}")));
                (subscribed, start.elapsed())
            })
        })
        .collect();
    let mut took = Samples::default();
    let mut last = Duration::ZERO;
    let mut monitors = Vec::new();
    let expected = opts.flows as usize;
    for t in storm {
        match t.await {
            Ok((Ok((c, rows)), d)) => {
                if rows < expected {
                    errors.add(format!(
                        "initial contents with {rows} flows, {expected} expected"
                    ));
                } else {
                    took.push(d);
                    last = last.max(d);
                    monitors.push(c);
                }
            }
            Ok((Err(e), _)) => errors.add(format!("monitor_cond_since: {e}")),
            Err(e) => errors.add(e.to_string()),
        }
    }
    let rss_after = rss.finish();
    let (client_cpu_s, server_cpu_s) = cpu.finish();

    // One more flow: how long until every monitor has it.
    let notes: Vec<_> = monitors
        .iter()
        .filter_map(|c| c.take_notifications())
        .collect();
    let fan_out_start = Instant::now();
    let datapath = json!(["named-uuid", "dp"]);
    let ops = vec![
        json!({"op": "insert", "table": "Datapath_Binding", "uuid-name": "dp",
               "row": {"tunnel_key": (16_000_000 + std::process::id() as u64 % 700_000) as i64}}),
        flow(&common.prefix, opts.flows, &datapath),
    ];
    let mut fan_out = Samples::default();
    let waits: Vec<_> = notes
        .into_iter()
        .map(|mut rx| {
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(n)) if n.method.starts_with("update") => {
                            return Some(n.at - fan_out_start)
                        }
                        Ok(Some(_)) => continue,
                        _ => return None,
                    }
                }
            })
        })
        .collect();
    match loader
        .transact(&common.database, &ops, common.timeout)
        .await
    {
        Ok(_) => {
            for w in waits {
                match w.await {
                    Ok(Some(d)) => fan_out.push(d),
                    _ => errors.add("no update for the new flow within 60 s"),
                }
            }
        }
        Err(e) => errors.add(format!("fan-out write: {e}")),
    }

    let done = monitors.len() as u64;
    report.elapsed_s = last.as_secs_f64();
    report.ok = done;
    report.errors = errors.count;
    report.error_samples = errors.samples;
    report.latency = took.summary();
    report.rss = rss_after;
    report.storm = Some(StormFigures {
        flows: opts.flows,
        load_s: load_time.as_secs_f64(),
        load_rows_per_s: opts.flows as f64 / load_time.as_secs_f64(),
        clients_served: done,
        last_client_s: last.as_secs_f64(),
        fan_out: fan_out.summary(),
        client_cpu_s,
        server_cpu_s,
        connect_s: connect_time.as_secs_f64(),
    });
    report
}

/// Sends the `monitor_cond_since` request on a fresh connection and reads its reply, counting
/// the rows of `table` as they arrive; then the connection becomes an ordinary client (for the
/// fan-out's update), with whatever followed the reply.
async fn subscribe(
    endpoint: &str,
    mut r: Reader,
    mut w: Writer,
    params: Value,
    table: &str,
) -> Result<(Client, usize), String> {
    let request = json!({"id": 1, "method": "monitor_cond_since", "params": params});
    w.write_all(&serde_json::to_vec(&request).expect("a JSON value serialises"))
        .await
        .map_err(|e| e.to_string())?;
    let mut scanner = ReplyScanner::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        let mut at = 0;
        while at < n {
            let (used, message) = scanner.scan(&buf[at..n]).map_err(|e| e.to_string())?;
            at += used;
            let rows = match message {
                None => continue,
                Some(Scanned::Large { result: false, .. }) => {
                    return Err("a large reply without a result".into())
                }
                Some(Scanned::Large { rows, .. }) => {
                    rows.iter().find(|(t, _)| t == table).map_or(0, |(_, n)| *n)
                }
                Some(Scanned::Small(bytes)) => {
                    let msg: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                    if msg["method"] == "echo" {
                        let reply =
                            json!({"id": msg["id"], "result": msg["params"], "error": null});
                        w.write_all(&serde_json::to_vec(&reply).expect("a JSON value serialises"))
                            .await
                            .map_err(|e| e.to_string())?;
                        continue;
                    }
                    if !msg["error"].is_null() {
                        return Err(msg["error"].to_string());
                    }
                    msg["result"][2][table]
                        .as_object()
                        .map_or(0, |rows| rows.len())
                }
            };
            return Ok((Client::on_stream(endpoint, r, w, &buf[at..n]), rows));
        }
    }
}
