//! `bulk-large`: a load of large rows that once wedged a cluster. C clients insert R `Logical_Switch` rows, B per
//! transaction, each with an `external_ids` value of L characters (20,000 rows of 16,000
//! characters in transactions of 100 by default: about 1.6 MB per transaction, 320 MB in all).
//! Reports rows/s and the longest time between two acknowledgements of any client, which is
//! where a cluster that stalls on large entries shows it; then waits until every endpoint serves
//! the last row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{connect_retrying, Common, Rng};
use crate::client::ClientError;
use crate::nb;
use crate::report::{BulkFigures, Errors, Report};
use crate::rss::RssProbe;
use crate::stats::{longest_gap, Samples};

#[derive(Clone, Debug)]
pub struct BulkLargeOpts {
    pub rows: u64,
    pub per_txn: u64,
    pub value_len: usize,
    pub clients: usize,
}

/// A value of `len` printable characters that differs from row to row, so that neither side can
/// gain from repeated content (compression, deduplication).
pub fn large_value(row: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = Rng::new(row + 1);
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// One transaction: rows `first..last`, each a switch named `PREFIX-blN`.
pub fn transaction(prefix: &str, first: u64, last: u64, value_len: usize) -> Vec<Value> {
    (first..last)
        .map(|n| {
            json!({"op": "insert", "table": "Logical_Switch",
                   "row": {"name": format!("{prefix}-bl{n}"),
                           "external_ids": ["map", [["bench-large", large_value(n, value_len)]]]}})
        })
        .collect()
}

pub async fn run(common: &Common, opts: &BulkLargeOpts) -> Report {
    let per_txn = opts.per_txn.max(1);
    let txns = opts.rows.div_ceil(per_txn);
    let next = Arc::new(AtomicU64::new(0));
    let rss = RssProbe::start(&common.pids);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..opts.clients.max(1) {
        let (common, opts, next) = (common.clone(), opts.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut errors = Errors::default();
            let mut latency = Samples::default();
            let mut acks = Vec::new();
            let mut rows = 0u64;
            let mut client = match connect_retrying(common.endpoint(i), common.timeout).await {
                Ok(c) => c,
                Err(e) => {
                    errors.add(e.to_string());
                    return (rows, latency, acks, errors);
                }
            };
            loop {
                let t = next.fetch_add(1, Ordering::Relaxed);
                if t >= txns {
                    break;
                }
                let first = t * per_txn;
                let last = (first + per_txn).min(opts.rows);
                // Built before the clock starts: the figure is the servers', not the JSON
                // encoder's of this tool.
                let ops = transaction(&common.prefix, first, last, opts.value_len);
                let t0 = Instant::now();
                match client
                    .transact(&common.database, &ops, common.timeout)
                    .await
                {
                    Ok(r) => match nb::txn_error(&r) {
                        None => {
                            let now = Instant::now();
                            latency.push(now - t0);
                            acks.push(now);
                            rows += last - first;
                        }
                        Some(e) => errors.add(e),
                    },
                    Err(e @ (ClientError::Closed | ClientError::Framing(_))) => {
                        errors.add(e.to_string());
                        match connect_retrying(common.endpoint(i), common.timeout).await {
                            Ok(c) => client = c,
                            Err(e) => {
                                errors.add(e.to_string());
                                break;
                            }
                        }
                    }
                    Err(e) => errors.add(e.to_string()),
                }
            }
            (rows, latency, acks, errors)
        }));
    }
    let (mut rows, mut latency, mut acks, mut errors) =
        (0, Samples::default(), Vec::new(), Errors::default());
    for t in tasks {
        if let Ok((r, l, a, e)) = t.await {
            rows += r;
            latency.merge(l);
            acks.extend(a);
            errors.merge(e);
        }
    }
    let load = start.elapsed();
    let transactions = acks.len() as u64;
    // From the start, so a stall before the first acknowledgement counts too.
    acks.push(start);
    let gap = longest_gap(start, &mut acks);

    let marker = format!("{}-bldone", common.prefix);
    super::bulk::wait_replicated(common, &marker, 0, Duration::from_secs(300), &mut errors).await;
    let replicated = start.elapsed();
    let rss = rss.finish();
    let deltas: Vec<i64> = rss.iter().filter_map(|r| r.delta_kib()).collect();
    let per_row = (!deltas.is_empty() && rows > 0)
        .then(|| deltas.iter().sum::<i64>() as f64 * 1024.0 / rows as f64 / deltas.len() as f64);
    Report {
        workload: "bulk-large".into(),
        label: common.label.clone(),
        endpoints: common.endpoints.clone(),
        clients: opts.clients.max(1),
        elapsed_s: load.as_secs_f64(),
        ok: transactions,
        errors: errors.count,
        error_samples: errors.samples,
        throughput_per_s: transactions as f64 / load.as_secs_f64(),
        latency: latency.summary(),
        max_ack_gap_ms: gap.map(|(g, _)| g.as_secs_f64() * 1000.0),
        max_ack_gap_at_s: gap.map(|(_, at)| at.as_secs_f64()),
        rss,
        bulk: Some(BulkFigures {
            switches: rows,
            ports: 0,
            rows,
            transactions,
            load_s: load.as_secs_f64(),
            load_and_replicate_s: replicated.as_secs_f64(),
            rows_per_s: rows as f64 / load.as_secs_f64(),
            rss_bytes_per_row_per_process: per_row,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_holds_its_rows_with_values_of_the_asked_length() {
        let ops = transaction("p", 200, 300, 16_000);
        assert_eq!(ops.len(), 100);
        assert_eq!(ops[0]["row"]["name"], "p-bl200");
        let v = ops[99]["row"]["external_ids"][1][0][1].as_str().unwrap();
        assert_eq!(v.len(), 16_000);
        assert_ne!(v, ops[98]["row"]["external_ids"][1][0][1].as_str().unwrap());
        // About 1.6 MB on the wire: above the 1 MiB at which Halyard splits a command.
        let wire = serde_json::to_vec(&ops).unwrap().len();
        assert!((1_600_000..1_700_000).contains(&wire), "{wire}");
    }
}
