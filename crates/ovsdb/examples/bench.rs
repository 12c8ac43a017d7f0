//! Engine benchmark (RFC 7047 §4.1.3 `transact` on the OVN Northbound schema), printing
//! numbers side by side with the real ovsdb-server 3.1. It measures, on one thread:
//!
//! 1. single-insert transactions per second into Logical_Switch_Port, each its own `transact`
//!    and each including the parse of the whole request text (into an `ovsdb::json::Document`
//!    handed to `Database::transact_json`; with `--value-api`, into a `serde_json::Value`
//!    handed to `Database::transact`), at 0 ports and at 100k;
//! 2. bytes of memory per Logical_Switch_Port row in the engine, from a counting global
//!    allocator and from process RSS, before/after loading 100k realistic ports;
//! 3. ovsdb-server's RSS (VmRSS) before/after loading the same 100k ports over JSON-RPC;
//! 4. `select` of one Logical_Switch_Port by `name` (an indexed column) among the loaded
//!    ports, each its own `transact` with its request text parsed (`--selects N`, default
//!    2,000), through `Database::transact_json` and through the shared-reference
//!    `Database::transact_read_json`.
//!
//! Run: `cargo run --release -p ovsdb --example bench` (add `-- --rows N --txns M` to change
//! the sizes, `--no-server` to skip ovsdb-server and `--skip-empty` to skip the timing from
//! 0 ports, e.g. under a profiler). Targets (not asserted): >= 100,000 txn/s; engine bytes/row <= ovsdb-server's.

#[path = "../tests/differential/real_server.rs"]
mod real_server;

use ovsdb::json::{Document, JsonLike};
use ovsdb::{Database, DatabaseSchema, TxnEnv};
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Counts live heap bytes so the engine's own memory can be measured without RSS noise;
/// the allocations themselves are mimalloc's, the server binary's allocator.
struct CountingAlloc;

static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Number of allocations (alloc and realloc calls) so far.
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

/// `c += n` without a locked read-modify-write: the engine phases run on one thread, and two
/// locked instructions per allocation were 2% of a transaction's time. Another thread
/// (only the ovsdb-server comparison has any) can at worst lose counts, which nothing reads
/// then.
fn bump(c: &AtomicUsize, n: usize) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

fn drop_bytes(n: usize) {
    LIVE_BYTES.store(
        LIVE_BYTES.load(Ordering::Relaxed).wrapping_sub(n),
        Ordering::Relaxed,
    );
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = INNER.alloc(layout);
        if !p.is_null() {
            bump(&LIVE_BYTES, layout.size());
            bump(&ALLOCS, 1);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        INNER.dealloc(ptr, layout);
        drop_bytes(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = INNER.realloc(ptr, layout, new_size);
        if !p.is_null() {
            bump(&ALLOCS, 1);
            drop_bytes(layout.size());
            bump(&LIVE_BYTES, new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Cheap deterministic UUIDs (a counter mixed by splitmix64); nobody holds a lock.
struct BenchEnv {
    state: u64,
}

impl BenchEnv {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl TxnEnv for BenchEnv {
    fn new_uuid(&mut self) -> Uuid {
        let hi = self.next();
        let lo = self.next();
        uuid::Builder::from_random_bytes(((hi as u128) << 64 | lo as u128).to_be_bytes())
            .into_uuid()
    }
    fn has_lock(&self, _lock: &str) -> bool {
        false
    }
    fn wait_elapsed_ms(&self) -> u64 {
        0
    }
}

const SWITCHES: usize = 100;

fn switch_uuid(i: usize) -> String {
    format!("5a000000-0000-0000-0000-{:012x}", i)
}

/// The ops of one transaction that adds ports `first..first+n` (as ovn-nbctl lsp-add does:
/// insert the port, mutate its switch's `ports`). Port k lives on switch k % SWITCHES.
fn add_ports_ops(first: usize, n: usize) -> Vec<Value> {
    let mut ops = Vec::with_capacity(2 * n);
    let mut per_switch: Vec<Vec<Value>> = vec![Vec::new(); SWITCHES];
    for k in first..first + n {
        let name = format!("p{k}");
        let mac = format!(
            "0a:00:{:02x}:{:02x}:{:02x}:{:02x}",
            (k >> 24) & 0xff,
            (k >> 16) & 0xff,
            (k >> 8) & 0xff,
            k & 0xff
        );
        let ip = format!("10.{}.{}.{}", (k >> 16) & 0xff, (k >> 8) & 0xff, k & 0xff);
        ops.push(json!({
            "op": "insert", "table": "Logical_Switch_Port", "uuid-name": name,
            "row": {
                "name": format!("port-{k}"),
                "addresses": format!("{mac} {ip}"),
                "external_ids": ["map", [["neutron:device_owner", "compute:nova"],
                                         ["neutron:port_name", format!("vm-{k}")]]]
            }
        }));
        per_switch[k % SWITCHES].push(json!(["named-uuid", name]));
    }
    for (s, refs) in per_switch.into_iter().enumerate() {
        if refs.is_empty() {
            continue;
        }
        ops.push(json!({
            "op": "mutate", "table": "Logical_Switch",
            "where": [["_uuid", "==", ["uuid", switch_uuid(s)]]],
            "mutations": [["ports", "insert", ["set", refs]]]
        }));
    }
    ops
}

fn switches_ops() -> Vec<Value> {
    (0..SWITCHES)
        .map(|s| {
            json!({"op": "insert", "table": "Logical_Switch", "uuid": switch_uuid(s),
                   "row": {"name": format!("ls-{s}")}})
        })
        .collect()
}

fn request_text(id: usize, ops: &[Value]) -> String {
    let mut params = vec![json!("OVN_Northbound")];
    params.extend(ops.iter().cloned());
    json!({"method": "transact", "params": params, "id": id}).to_string()
}

fn check_ok(result: &Value, what: &str) {
    let ok = result
        .as_array()
        .is_some_and(|a| a.iter().all(|r| r.is_object() && r.get("error").is_none()));
    assert!(
        ok,
        "{what} failed: {}",
        &result.to_string()[..result.to_string().len().min(500)]
    );
}

/// Nanoseconds this thread has spent on a CPU (first field of /proc/thread-self/schedstat),
/// so that a rate can be given that other processes on a busy machine do not distort.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Transactions per second of wall time and per second of this thread's on-CPU time,
/// and heap allocations per transaction in JSON parsing and in the engine.
struct Rate {
    wall: f64,
    cpu: Option<f64>,
    parse_allocs: f64,
    engine_allocs: f64,
}

/// Runs `texts` one transact each, parsing every request text.
fn timed_single_inserts(db: &mut Database, env: &mut BenchEnv, texts: &[String]) -> Rate {
    let cpu_start = thread_cpu_ns();
    let (mut parse_allocs, mut engine_allocs) = (0, 0);
    let start = Instant::now();
    let value_api = flag("--value-api");
    for t in texts {
        let a0 = ALLOCS.load(Ordering::Relaxed);
        if value_api {
            let req: Value = serde_json::from_str(t).expect("request parses");
            let a1 = ALLOCS.load(Ordering::Relaxed);
            let params = req["params"].as_array().expect("params");
            let out = db.transact(&params[1..], env);
            debug_assert!(out.changes.is_some());
            std::hint::black_box(&out.result);
            drop(out);
            drop(req);
            parse_allocs += a1 - a0;
            engine_allocs += ALLOCS.load(Ordering::Relaxed) - a1;
            continue;
        }
        let doc = Document::parse(t).expect("request parses");
        let req = doc.root();
        assert_eq!(req.get("method").and_then(|m| m.as_str()), Some("transact"));
        let params = req.get("params").and_then(|p| p.elems()).expect("params");
        let a1 = ALLOCS.load(Ordering::Relaxed);
        let out = db.transact_json(params.skip(1), env);
        debug_assert!(out.changes.is_some());
        std::hint::black_box(&out.result);
        drop(out);
        drop(doc);
        let a2 = ALLOCS.load(Ordering::Relaxed);
        parse_allocs += a1 - a0;
        engine_allocs += a2 - a1;
    }
    let wall = texts.len() as f64 / start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => Some(texts.len() as f64 * 1e9 / (b - a) as f64),
        _ => None,
    };
    let n = texts.len() as f64;
    Rate {
        wall,
        cpu,
        parse_allocs: parse_allocs as f64 / n,
        engine_allocs: engine_allocs as f64 / n,
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>10.0}", self.wall)?;
        if let Some(cpu) = self.cpu {
            write!(f, "   ({cpu:.0} per on-CPU second)")?;
        }
        write!(
            f,
            "; allocations/txn: {:.1} JSON parse, {:.1} engine",
            self.parse_allocs, self.engine_allocs
        )
    }
}

/// Runs `n` transactions of one `select` by `name` (pseudo-randomly chosen among the first
/// `rows` ports), each parsed from its request text, and checks each finds its one port;
/// through `Database::transact_read_json` on a shared reference when `shared`.
fn timed_selects(
    db: &mut Database,
    env: &mut BenchEnv,
    rows: usize,
    n: usize,
    shared: bool,
) -> Rate {
    let texts: Vec<String> = (0..n)
        .map(|i| {
            let k = (i.wrapping_mul(0x9e37_79b9) ^ (i >> 3)) % rows.max(1);
            let op = json!({"op": "select", "table": "Logical_Switch_Port",
                            "where": [["name", "==", format!("port-{k}")]]});
            request_text(i, &[op])
        })
        .collect();
    let cpu_start = thread_cpu_ns();
    let (mut parse_allocs, mut engine_allocs) = (0, 0);
    let start = Instant::now();
    for t in &texts {
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let doc = Document::parse(t).expect("request parses");
        let params = doc
            .root()
            .get("params")
            .and_then(|p| p.elems())
            .expect("params");
        let a1 = ALLOCS.load(Ordering::Relaxed);
        let out = if shared {
            let db: &Database = db;
            db.transact_read_json(params.skip(1), env)
                .expect("a select only reads")
        } else {
            db.transact_json(params.skip(1), env)
        };
        let found = out.result[0]["rows"].as_array().map(Vec::len);
        assert_eq!(found, Some(1), "select by name finds its port");
        drop(out);
        drop(doc);
        parse_allocs += a1 - a0;
        engine_allocs += ALLOCS.load(Ordering::Relaxed) - a1;
    }
    let wall = n as f64 / start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => Some(n as f64 * 1e9 / (b - a) as f64),
        _ => None,
    };
    Rate {
        wall,
        cpu,
        parse_allocs: parse_allocs as f64 / n.max(1) as f64,
        engine_allocs: engine_allocs as f64 / n.max(1) as f64,
    }
}

fn rss_self_kib() -> u64 {
    real_server::rss_kib_of(std::process::id()).unwrap_or(0)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

pub fn main() {
    let rows = arg("--rows", 100_000);
    let txns = arg("--txns", 20_000);
    let batch = 1_000;
    let schema_path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests/differential/ovn-nb.ovsschema",
    ]
    .iter()
    .collect();
    let schema_json: Value =
        serde_json::from_slice(&std::fs::read(&schema_path).expect("read NB schema")).unwrap();
    let schema = Arc::new(DatabaseSchema::from_json(&schema_json).expect("NB schema parses"));
    println!("engine benchmark: OVN_Northbound, {SWITCHES} switches, {rows} ports, {txns} timed single-insert transactions");

    // 1. Throughput at 0 ports.
    let mut env = BenchEnv { state: 1 };
    let mut db = Database::new(schema.clone());
    check_ok(
        &db.transact(&switches_ops(), &mut env).result,
        "switch insert",
    );
    let texts: Vec<String> = (0..txns)
        .map(|i| request_text(i, &add_ports_ops(rows + i, 1)))
        .collect();
    let tps_empty = if flag("--skip-empty") {
        Rate {
            wall: 0.0,
            cpu: None,
            parse_allocs: 0.0,
            engine_allocs: 0.0,
        }
    } else {
        timed_single_inserts(&mut db, &mut env, &texts)
    };
    drop(db);

    // 2. Memory per row, then throughput at `rows` ports.
    let mut env = BenchEnv { state: 2 };
    let load: Vec<Vec<Value>> = (0..rows / batch)
        .map(|b| add_ports_ops(b * batch, batch))
        .collect();
    let bytes_before = LIVE_BYTES.load(Ordering::Relaxed);
    let rss_before = rss_self_kib();
    let mut db = Database::new(schema.clone());
    check_ok(
        &db.transact(&switches_ops(), &mut env).result,
        "switch insert",
    );
    let load_start = Instant::now();
    for ops in &load {
        let out = db.transact(ops, &mut env);
        check_ok(&out.result, "bulk load");
    }
    let load_secs = load_start.elapsed().as_secs_f64();
    let bytes_after = LIVE_BYTES.load(Ordering::Relaxed);
    let rss_after = rss_self_kib();
    let n_ports = db.rows("Logical_Switch_Port").count();
    assert_eq!(n_ports, rows, "every loaded port is in the engine");
    let engine_bytes_per_row = (bytes_after as f64 - bytes_before as f64) / rows as f64;
    let engine_rss_per_row = (rss_after as f64 - rss_before as f64) * 1024.0 / rows as f64;
    let tps_full = timed_single_inserts(&mut db, &mut env, &texts);
    let selects = timed_selects(&mut db, &mut env, rows, arg("--selects", 2_000), false);
    let shared_selects = timed_selects(&mut db, &mut env, rows, arg("--selects", 2_000), true);
    drop(db);
    drop(load);

    // 3. The real ovsdb-server, same rows.
    let server = if !flag("--no-server") && real_server::available() {
        Some(measure_server(&schema_path, rows, batch))
    } else {
        None
    };

    println!();
    println!("single-insert txn/s (1 thread, JSON parse included):");
    println!(
        "  (target >= 100000; the rate per on-CPU second is the one to read on a busy machine)"
    );
    println!("  engine, starting at 0 ports:        {tps_empty}");
    println!("  engine, starting at {rows:>7} ports:  {tps_full}");
    if let Some(s) = &server {
        println!(
            "  ovsdb-server, {SERVER_TXNS} txns over loopback TCP (round trips included, context only): \
             {:.0} at 0 ports, {:.0} at {rows} ports",
            s.tps_empty, s.tps_full
        );
    }
    println!("select by name among {rows} ports (1 thread, JSON parse included):");
    println!("  transact_json (&mut):     {selects}");
    println!("  transact_read_json (&):   {shared_selects}");
    println!(
        "bulk load into the engine: {rows} ports in {} transactions of {batch} in {load_secs:.2} s",
        rows / batch
    );
    println!("memory per Logical_Switch_Port row (incl. its share of Logical_Switch.ports):");
    println!("  engine, heap bytes (counting allocator): {engine_bytes_per_row:>8.0} B/row");
    println!("  engine, process RSS delta:               {engine_rss_per_row:>8.0} B/row");
    match server {
        Some(s) => {
            let per_row = (s.rss_after_kib as f64 - s.rss_before_kib as f64) * 1024.0 / rows as f64;
            println!(
                "  ovsdb-server, RSS delta:                 {per_row:>8.0} B/row   \
                 (VmRSS {} kB -> {} kB, load {:.2} s)",
                s.rss_before_kib, s.rss_after_kib, s.load_secs
            );
            println!(
                "  engine heap / ovsdb-server RSS:          {:>8.2}   (target <= 1)",
                engine_bytes_per_row / per_row
            );
        }
        None => println!("  ovsdb-server: not on PATH, not measured"),
    }
}

/// Single-insert transactions timed against ovsdb-server (one JSON-RPC client on loopback, so
/// each includes a round trip; for context only).
const SERVER_TXNS: usize = 2_000;

struct ServerNumbers {
    rss_before_kib: u64,
    rss_after_kib: u64,
    load_secs: f64,
    tps_empty: f64,
    tps_full: f64,
}

fn server_tps(
    server: &real_server::RealServer,
    client: &mut real_server::Client,
    first: usize,
) -> f64 {
    let start = Instant::now();
    for i in 0..SERVER_TXNS {
        let r = client
            .transact(&server.db_name, &add_ports_ops(first + i, 1))
            .expect("server single insert");
        check_ok(&r, "server single insert");
    }
    SERVER_TXNS as f64 / start.elapsed().as_secs_f64()
}

/// Loads the same ports into a fresh ovsdb-server, measuring its VmRSS around the load and
/// its single-insert rate before and after.
fn measure_server(schema_path: &std::path::Path, rows: usize, batch: usize) -> ServerNumbers {
    let server = real_server::RealServer::start(schema_path).expect("start ovsdb-server");
    let mut client = server.connect().expect("connect");
    let r = client
        .transact(&server.db_name, &switches_ops())
        .expect("switches");
    check_ok(&r, "server switch insert");
    let tps_empty = server_tps(&server, &mut client, 2 * rows);
    let before = server.rss_kib().unwrap_or(0);
    let start = Instant::now();
    for b in 0..rows / batch {
        let r = client
            .transact(&server.db_name, &add_ports_ops(b * batch, batch))
            .expect("server load");
        check_ok(&r, "server bulk load");
    }
    let load_secs = start.elapsed().as_secs_f64();
    // Read RSS before the check below, whose 100k-row answer would inflate it.
    let after = server.rss_kib().unwrap_or(0);
    let count = client
        .transact(
            &server.db_name,
            &[json!({"op": "select", "table": "Logical_Switch_Port", "where": [], "columns": ["_uuid"]})],
        )
        .expect("count");
    assert_eq!(
        count[0]["rows"].as_array().map(Vec::len),
        Some(rows + SERVER_TXNS),
        "every loaded port is in ovsdb-server"
    );
    let tps_full = server_tps(&server, &mut client, 3 * rows);
    ServerNumbers {
        rss_before_kib: before,
        rss_after_kib: after,
        load_secs,
        tps_empty,
        tps_full,
    }
}
