//! `condmon`: conditional monitoring as `ovn-controller` does it, at scale (database
//! OVN_Southbound). CHASSIS `Chassis` rows (each with its `Encap`), DATAPATHS
//! `Datapath_Binding`s, FLOWS `Logical_Flow` rows spread over the datapaths and PORTS ports per
//! chassis are loaded; then one session per chassis, spread over the endpoints, sends at once a
//! `monitor_cond` with that chassis's conditions: every `Chassis` and `Encap` (tunnels),
//! `Port_Binding` bound to it or on its local datapaths, `Logical_Flow` of its local datapaths
//! (one at first).
//!
//! Measured: the subscription (each session's time to its initial reply, p50/max); a condition
//! change (`monitor_cond_change` adding a local datapath, as when a port of a new datapath is
//! bound here), from the request to the update that brings that datapath's flows, one session
//! at a time; a port binding (`Port_Binding.chassis` set) until the bound chassis's session
//! has the update; one new flow on a datapath until every session that has that datapath
//! local has it, while sessions that do not must receive nothing (counted as spurious).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{connect_retrying, Common};
use crate::client::{Client, Notification};
use crate::report::{CondMonFigures, Errors, Report};
use crate::rss::RssProbe;
use crate::stats::Samples;

#[derive(Clone, Debug)]
pub struct CondMonOpts {
    pub chassis: usize,
    pub datapaths: u64,
    pub flows: u64,
    pub ports_per_chassis: u64,
    pub batch: u64,
    /// Sessions measured one at a time for a condition change and a port binding.
    pub samples: usize,
    /// Flows written one at a time for the fan-out.
    pub writes: usize,
}

/// A session's wait for one notification, at most this long.
const NOTICE_WAIT: Duration = Duration::from_secs(60);
/// How long a write's notifications are given to arrive everywhere they should (and nowhere
/// else) before the next write.
const SETTLE: Duration = Duration::from_millis(200);

/// Drops what a session has been sent so far.
fn drain(rx: &mut UnboundedReceiver<Notification>) {
    while rx.try_recv().is_ok() {}
}

struct Loaded {
    datapaths: Vec<String>,
    chassis: Vec<String>,
    /// Per chassis, the uuids of its ports (unbound, on its first local datapath).
    ports: Vec<Vec<String>>,
    load: Duration,
}

fn uuids(reply: &Value) -> Vec<String> {
    reply
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("uuid").and_then(|u| u.get(1)).and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

async fn transact_all(
    c: &Client,
    common: &Common,
    what: &str,
    ops: Vec<Value>,
    batch: usize,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for chunk in ops.chunks(batch.max(1)) {
        let r = c
            .transact(&common.database, chunk, common.timeout)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        if let Some(e) = r
            .as_array()
            .and_then(|a| a.iter().find(|o| o.get("error").is_some()))
        {
            return Err(format!("{what}: {e}"));
        }
        out.extend(uuids(&r));
    }
    Ok(out)
}

/// The local datapath of chassis `i` at first (its ports are there).
fn home(i: usize, datapaths: u64) -> usize {
    i % datapaths as usize
}

async fn load(c: &Client, common: &Common, opts: &CondMonOpts) -> Result<Loaded, String> {
    let start = Instant::now();
    let p = &common.prefix;
    let base = 1 + (std::process::id() as u64 % 1000) * 10_000;
    let dps: Vec<Value> = (0..opts.datapaths)
        .map(|i| {
            json!({"op": "insert", "table": "Datapath_Binding",
                   "row": {"tunnel_key": (base + i) as i64,
                           "external_ids": ["map", [["name", format!("{p}-dp{i}")]]]}})
        })
        .collect();
    let datapaths = transact_all(c, common, "datapaths", dps, 1000).await?;
    // A chassis and its encap in one pair of ops: the encap is not a root table.
    let chassis_ops: Vec<Value> = (0..opts.chassis)
        .flat_map(|i| {
            let name = format!("{p}-ch{i}");
            let encap = format!("e{i}");
            [
                json!({"op": "insert", "table": "Encap", "uuid-name": encap,
                       "row": {"type": "geneve", "chassis_name": name,
                               "ip": format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)}}),
                json!({"op": "insert", "table": "Chassis",
                       "row": {"name": name, "hostname": format!("{name}.example"),
                               "encaps": ["named-uuid", encap]}}),
            ]
        })
        .collect();
    let inserted = transact_all(c, common, "chassis", chassis_ops, 1000).await?;
    // uuids come back for every insert: encap, chassis, encap, chassis...
    let chassis: Vec<String> = inserted.into_iter().skip(1).step_by(2).collect();
    let mut k = 0;
    while k < opts.flows {
        let n = opts.batch.min(opts.flows - k);
        let ops: Vec<Value> = (k..k + n)
            .map(|i| {
                let dp = json!(["uuid", datapaths[(i % opts.datapaths) as usize]]);
                super::storm::flow(p, i, &dp)
            })
            .collect();
        transact_all(c, common, "flows", ops, usize::MAX).await?;
        k += n;
    }
    let mut port_ops = Vec::new();
    let mut keys = vec![0i64; datapaths.len()];
    for i in 0..opts.chassis {
        let d = home(i, opts.datapaths);
        for j in 0..opts.ports_per_chassis {
            keys[d] += 1;
            port_ops.push(json!({"op": "insert", "table": "Port_Binding",
                "row": {"logical_port": format!("{p}-ch{i}-lp{j}"), "type": "",
                        "datapath": ["uuid", datapaths[d]], "tunnel_key": keys[d]}}));
        }
    }
    let port_uuids = transact_all(c, common, "ports", port_ops, opts.batch as usize).await?;
    let ports = port_uuids
        .chunks(opts.ports_per_chassis.max(1) as usize)
        .map(<[String]>::to_vec)
        .collect();
    Ok(Loaded {
        datapaths,
        chassis,
        ports,
        load: start.elapsed(),
    })
}

/// Chassis `i`'s conditions with the datapaths `local`.
fn conditions(chassis: &str, local: &[&String]) -> Value {
    let mut pb: Vec<Value> = vec![json!(["chassis", "==", ["uuid", chassis]])];
    let mut lf: Vec<Value> = Vec::new();
    for dp in local {
        pb.push(json!(["datapath", "==", ["uuid", dp]]));
        lf.push(json!(["logical_datapath", "==", ["uuid", dp]]));
    }
    json!({
        "Chassis": [{"where": [true]}],
        "Encap": [{"where": [true]}],
        "Port_Binding": [{"where": pb}],
        "Logical_Flow": [{"where": lf}],
    })
}

fn flows_in(update: &Value) -> usize {
    update
        .get("Logical_Flow")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

/// Waits for the next update notification (skipping others) and returns when it was read.
async fn next_update(rx: &mut UnboundedReceiver<Notification>) -> Option<(Instant, Value)> {
    let deadline = tokio::time::Instant::now() + NOTICE_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(n)) if n.method.starts_with("update") => {
                let update = n.params.get(1).cloned().unwrap_or(Value::Null);
                return Some((n.at, update));
            }
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

struct Session {
    client: Client,
    notes: UnboundedReceiver<Notification>,
}

pub async fn run(common: &Common, opts: &CondMonOpts) -> Report {
    let mut errors = Errors::default();
    let mut report = Report {
        workload: "condmon".into(),
        label: common.label.clone(),
        endpoints: common.endpoints.clone(),
        clients: opts.chassis,
        ..Default::default()
    };
    let fail = |mut report: Report, errors: Errors| {
        report.errors = errors.count;
        report.error_samples = errors.samples;
        report
    };
    let loader = match connect_retrying(common.endpoint(0), common.timeout).await {
        Ok(c) => c,
        Err(e) => {
            errors.add(e.to_string());
            return fail(report, errors);
        }
    };
    let loaded = match load(&loader, common, opts).await {
        Ok(l) => l,
        Err(e) => {
            errors.add(e);
            return fail(report, errors);
        }
    };
    if loaded.chassis.len() != opts.chassis || loaded.datapaths.len() as u64 != opts.datapaths {
        errors.add("the load did not return every uuid".to_string());
        return fail(report, errors);
    }

    // Subscription: every session connected first, then the requests go out together.
    let mut clients = Vec::new();
    for i in 0..opts.chassis {
        match connect_retrying(common.endpoint(i), common.timeout).await {
            Ok(c) => clients.push((i, c)),
            Err(e) => errors.add(e.to_string()),
        }
    }
    let rss = RssProbe::start(&common.pids);
    let start = Instant::now();
    let requests: Vec<_> = clients
        .into_iter()
        .map(|(i, c)| {
            let d = home(i, opts.datapaths);
            let params = json!([
                common.database,
                "cm",
                conditions(&loaded.chassis[i], &[&loaded.datapaths[d]])
            ]);
            let timeout = common.timeout;
            tokio::spawn(async move {
                let r = c.call("monitor_cond", params, timeout).await;
                (i, c, r, start.elapsed())
            })
        })
        .collect();
    let mut subscribe = Samples::default();
    let mut sessions: Vec<Option<Session>> = (0..opts.chassis).map(|_| None).collect();
    let per_dp = (opts.flows / opts.datapaths) as usize;
    for r in requests {
        match r.await {
            Ok((i, c, Ok(reply), took)) => {
                let flows = flows_in(&reply);
                if flows < per_dp {
                    errors.add(format!(
                        "initial contents with {flows} flows, {per_dp} expected"
                    ));
                    continue;
                }
                subscribe.push(took);
                let notes = c.take_notifications().expect("taken once");
                sessions[i] = Some(Session { client: c, notes });
            }
            Ok((_, _, Err(e), _)) => errors.add(format!("monitor_cond: {e}")),
            Err(e) => errors.add(e.to_string()),
        }
    }
    let subscribe_last = Duration::from_secs_f64(subscribe.summary().max_ms / 1000.0);
    let rss_after = rss.finish();

    // A condition change, one session at a time: add the next datapath.
    let mut cond_change = Samples::default();
    let sampled: Vec<usize> = (0..opts.chassis)
        .step_by((opts.chassis / opts.samples.max(1)).max(1))
        .take(opts.samples)
        .collect();
    for &i in &sampled {
        let Some(s) = sessions[i].as_mut() else {
            continue;
        };
        let d = home(i, opts.datapaths);
        let next = (d + 1) % loaded.datapaths.len();
        let local = [&loaded.datapaths[d], &loaded.datapaths[next]];
        let params = json!(["cm", "cm", conditions(&loaded.chassis[i], &local)]);
        drain(&mut s.notes);
        let sent = Instant::now();
        if let Err(e) = s
            .client
            .call("monitor_cond_change", params, common.timeout)
            .await
        {
            errors.add(format!("monitor_cond_change: {e}"));
            continue;
        }
        match next_update(&mut s.notes).await {
            Some((at, update)) if flows_in(&update) >= per_dp => cond_change.push(at - sent),
            Some((_, update)) => errors.add(format!(
                "condition change brought {} flows, {per_dp} expected",
                flows_in(&update)
            )),
            None => errors.add("no update after monitor_cond_change within 60 s".to_string()),
        }
    }

    // A port binding, one at a time: the bound chassis's session gets it.
    let mut bind = Samples::default();
    for &i in &sampled {
        let (Some(port), Some(s)) = (
            loaded.ports.get(i).and_then(|p| p.first()),
            sessions[i].as_mut(),
        ) else {
            continue;
        };
        let op = json!({"op": "update", "table": "Port_Binding",
                        "where": [["_uuid", "==", ["uuid", port]]],
                        "row": {"chassis": ["uuid", loaded.chassis[i]]}});
        drain(&mut s.notes);
        let sent = Instant::now();
        if let Err(e) = loader
            .transact(&common.database, &[op], common.timeout)
            .await
        {
            errors.add(format!("bind: {e}"));
            continue;
        }
        match next_update(&mut s.notes).await {
            Some((at, _)) => bind.push(at - sent),
            None => errors.add("no update for a bound port within 60 s".to_string()),
        }
    }

    // One new flow at a time on datapath w: every session with w local gets it, no other.
    let mut fan_out = Samples::default();
    let mut spurious = 0u64;
    let changed: std::collections::HashSet<usize> = sampled.iter().copied().collect();
    for w in 0..opts.writes {
        let d = (w * 7919) % loaded.datapaths.len();
        let is_local = |i: usize| {
            let h = home(i, opts.datapaths);
            h == d || (changed.contains(&i) && (h + 1) % loaded.datapaths.len() == d)
        };
        let op = super::storm::flow(
            &common.prefix,
            opts.flows + w as u64,
            &json!(["uuid", loaded.datapaths[d]]),
        );
        // Settled: what the sessions still hold was caused by earlier writes.
        tokio::time::sleep(SETTLE).await;
        for s in sessions.iter_mut().flatten() {
            drain(&mut s.notes);
        }
        let sent = Instant::now();
        if let Err(e) = loader
            .transact(&common.database, &[op], common.timeout)
            .await
        {
            errors.add(format!("flow write: {e}"));
            continue;
        }
        let mut slowest = Duration::ZERO;
        let mut missing = 0;
        for (i, s) in sessions.iter_mut().enumerate() {
            let Some(s) = s.as_mut() else { continue };
            if is_local(i) {
                match next_update(&mut s.notes).await {
                    Some((at, _)) => slowest = slowest.max(at - sent),
                    None => missing += 1,
                }
            }
        }
        if missing > 0 {
            errors.add(format!(
                "{missing} sessions with the datapath missed a new flow"
            ));
        }
        fan_out.push(slowest);
        // Whatever reached the others by now was not theirs to get.
        tokio::time::sleep(SETTLE).await;
        for (i, s) in sessions.iter_mut().enumerate() {
            let Some(s) = s.as_mut() else { continue };
            if !is_local(i) {
                while let Ok(n) = s.notes.try_recv() {
                    if n.method.starts_with("update") {
                        spurious += 1;
                    }
                }
            }
        }
    }

    let served = sessions.iter().filter(|s| s.is_some()).count() as u64;
    report.elapsed_s = subscribe_last.as_secs_f64();
    report.ok = served;
    report.errors = errors.count;
    report.error_samples = errors.samples;
    report.latency = subscribe.summary();
    report.rss = rss_after;
    report.condmon = Some(CondMonFigures {
        chassis: opts.chassis,
        flows: opts.flows,
        datapaths: opts.datapaths,
        load_s: loaded.load.as_secs_f64(),
        sessions_subscribed: served,
        subscribe_last_s: subscribe_last.as_secs_f64(),
        cond_change: cond_change.summary(),
        bind: bind.summary(),
        flow_fan_out: fan_out.summary(),
        spurious_updates: spurious,
    });
    report
}
