//! Durability of a single member (halyard's raft log in its segment files): under a write load of
//! single-insert transactions from several raw JSON-RPC clients, `kill -9` the member and
//! restart it on the same data directory. Every acknowledged transaction must be there with the
//! UUID it was acknowledged with, nothing that was never attempted may appear, and the database
//! must equal a replay of the acknowledged transactions (plus in-flight ones that made it) on a
//! real ovsdb-server. The second round restarts from a snapshot plus log tail.
//!
//! Then the log on disk is damaged deliberately (in its segment files, as a torn or
//! bit-flipped write would leave it): the member must refuse to start with a clear error and a non-zero exit, and
//! never serve a database silently missing or altering entries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use halyard_testkit::single::*;
use serde_json::{json, Value};

const WRITERS: usize = 4;
/// Round r of the load numbers its transactions from r * ROUND_SEQ.
const ROUND_SEQ: usize = 100_000;

fn load_schema() -> Value {
    json!({
        "name": "Load",
        "version": "1.0.0",
        "tables": {
            "T": {
                "isRoot": true,
                "columns": {
                    "name": {"type": "string"},
                    "writer": {"type": "integer"},
                    "seq": {"type": "integer"},
                    "pad": {"type": "string"}
                },
                "indexes": [["name"]]
            }
        }
    })
}

fn row_for(writer: usize, seq: usize) -> Value {
    json!({
        "name": format!("w{writer}-{seq}"),
        "writer": writer,
        "seq": seq,
        // Enough bytes that a batch of entries spans more than one sled page.
        "pad": format!("{writer}:{seq}:").repeat(40),
    })
}

/// What the writers did: every transaction attempted (sent or about to be), and those
/// acknowledged with the UUID of the inserted row.
#[derive(Default)]
struct Ledger {
    attempted: BTreeMap<String, Value>,
    acked: BTreeMap<String, String>,
}

/// Runs `WRITERS` clients doing single-insert transactions (seq numbers from `first_seq`) until
/// at least `min_acked` are acknowledged, then kills the member with SIGKILL while they are
/// still writing. Returns what was attempted and acknowledged.
fn load_then_kill9(h: &mut Halyard, first_seq: usize, min_acked: usize) -> Ledger {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..WRITERS {
        let (ledger, acked, stop, port) = (ledger.clone(), acked.clone(), stop.clone(), h.port);
        threads.push(std::thread::spawn(move || {
            let mut c = Rpc::connect(port);
            for seq in first_seq.. {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let row = row_for(w, seq);
                let name = row["name"].as_str().unwrap().to_string();
                // Recorded before sending: a row that shows up must have been attempted.
                ledger
                    .lock()
                    .unwrap()
                    .attempted
                    .insert(name.clone(), row.clone());
                let reply = match c.call(
                    "transact",
                    json!(["Load", {"op": "insert", "table": "T", "row": row}]),
                ) {
                    Ok(r) => r,
                    Err(_) => return, // the member died: this one is in flight
                };
                assert!(reply["error"].is_null(), "transact failed: {reply}");
                let uuid = reply["result"][0]["uuid"][1]
                    .as_str()
                    .unwrap_or_else(|| panic!("insert not acknowledged with a uuid: {reply}"))
                    .to_string();
                ledger.lock().unwrap().acked.insert(name, uuid);
                acked.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    wait_for(
        Duration::from_secs(120),
        &format!("{min_acked} acknowledged inserts"),
        || {
            if let Some(p) = h.proc.as_mut() {
                p.check_alive();
            }
            (acked.load(Ordering::SeqCst) >= min_acked).then_some(())
        },
    );
    // Kill while the writers are mid-flight, then let them notice.
    h.kill9();
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("writer thread panicked");
    }
    Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap()
}

/// Every row of table T, by name.
fn rows_by_name(port: u16) -> BTreeMap<String, Value> {
    let mut c = Rpc::connect(port);
    let r = c.transact("Load", json!([{"op": "select", "table": "T", "where": []}]));
    let mut out = BTreeMap::new();
    for row in r[0]["rows"].as_array().unwrap() {
        let name = row["name"].as_str().unwrap().to_string();
        assert!(
            out.insert(name.clone(), row.clone()).is_none(),
            "row {name} is present twice"
        );
    }
    out
}

/// The checks after a restart, against everything attempted and acknowledged so far.
fn check_after_restart(h: &Halyard, ledger: &Ledger) -> BTreeMap<String, Value> {
    let rows = rows_by_name(h.port);
    for (name, uuid) in &ledger.acked {
        let row = rows.get(name).unwrap_or_else(|| {
            panic!("acknowledged insert {name} ({uuid}) is missing after kill -9 and restart")
        });
        assert_eq!(
            row["_uuid"],
            json!(["uuid", uuid]),
            "{name} came back with another uuid"
        );
    }
    // Per (writer, round): each round numbers its transactions from a multiple of ROUND_SEQ.
    let mut unacked_per_writer: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
    for (name, row) in &rows {
        let sent = ledger
            .attempted
            .get(name)
            .unwrap_or_else(|| panic!("row {name} is present but was never attempted: {row}"));
        for col in ["name", "writer", "seq", "pad"] {
            assert_eq!(
                row[col], sent[col],
                "{name}: column {col} differs from what was sent"
            );
        }
        if !ledger.acked.contains_key(name) {
            unacked_per_writer
                .entry((
                    sent["writer"].as_i64().unwrap(),
                    sent["seq"].as_i64().unwrap() / ROUND_SEQ as i64,
                ))
                .or_default()
                .push(name.clone());
        }
    }
    // Each writer waits for each reply before sending the next: at most its last transaction
    // was in flight at each kill.
    for (w, names) in &unacked_per_writer {
        assert!(
            names.len() <= 1,
            "writer, round {w:?} has several unacknowledged rows present: {names:?}"
        );
    }
    rows
}

/// Replays the rows present (the acknowledged ones and the in-flight ones that made it) as
/// single-insert transactions on a real ovsdb-server and compares whole databases.
fn check_equals_replay(h: &Halyard, schema: &str, ledger: &Ledger, rows: &BTreeMap<String, Value>) {
    let real = OvsdbServer::start(schema);
    let mut c = Rpc::connect(real.port);
    for name in rows.keys() {
        let row = &ledger.attempted[name];
        let r = c.transact("Load", json!([{"op": "insert", "table": "T", "row": row}]));
        assert!(r[0]["uuid"].is_array(), "{r}");
    }
    let strip = |mut v: Value| {
        for rows in v.as_object_mut().unwrap().values_mut() {
            for row in rows.as_array_mut().unwrap() {
                row.as_object_mut().unwrap().remove("_uuid");
            }
            rows.as_array_mut().unwrap().sort_by_key(canonical);
        }
        v
    };
    let ours = strip(select_all(h.port, "Load", schema));
    let theirs = strip(select_all(real.port, "Load", schema));
    if ours != theirs {
        let set = |v: &Value| -> BTreeSet<String> {
            v["T"].as_array().unwrap().iter().map(canonical).collect()
        };
        let (a, b) = (set(&ours), set(&theirs));
        panic!(
            "the restarted database differs from a replay of its history:\nonly in halyard: {:?}\nonly in the replay: {:?}",
            a.difference(&b).collect::<Vec<_>>(),
            b.difference(&a).collect::<Vec<_>>()
        );
    }
}

#[test]
fn kill9_under_write_load_keeps_every_acknowledged_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let schema = write_schema(tmp.path(), &load_schema());
    let mut h = Halyard::start(&schema);

    // Round 1: default options; restart replays the log.
    let mut ledger = load_then_kill9(&mut h, 0, 300);
    h.serve();
    let rows = check_after_restart(&h, &ledger);
    assert!(rows.len() >= 300, "only {} rows", rows.len());
    check_equals_replay(&h, &schema, &ledger, &rows);

    // Round 2: snapshots every 100 entries, so the restart loads a snapshot plus a log tail.
    h.kill9();
    h.serve_args = vec!["--snapshot-every".into(), "100".into()];
    h.serve();
    let round2 = load_then_kill9(&mut h, ROUND_SEQ, 400);
    assert!(
        h.log_text().contains("snapshot built"),
        "no snapshot was built:\n{}",
        h.log_text()
    );
    ledger.attempted.extend(round2.attempted);
    ledger.acked.extend(round2.acked);
    h.serve();
    let rows = check_after_restart(&h, &ledger);
    check_equals_replay(&h, &schema, &ledger, &rows);

    // The restarted member still takes writes, and they survive another restart.
    let mut c = Rpc::connect(h.port);
    let r = c.transact(
        "Load",
        json!([{"op": "insert", "table": "T", "row": row_for(99, 0)}]),
    );
    let uuid = r[0]["uuid"][1].as_str().unwrap().to_string();
    drop(c);
    h.restart_after_kill9();
    assert_eq!(
        rows_by_name(h.port)["w99-0"]["_uuid"],
        json!(["uuid", uuid])
    );

    // A graceful stop (SIGTERM) exits 0 and loses nothing either.
    let n = rows_by_name(h.port).len();
    let status = h.proc.as_mut().unwrap().terminate();
    assert!(
        status.success(),
        "SIGTERM: exit {status}; log:\n{}",
        h.log_text()
    );
    h.proc = None;
    h.serve();
    assert_eq!(rows_by_name(h.port).len(), n);
}

/// Damages the raft log of a stopped member in its segment files (`<data dir>/log/*.seg`, frames
/// `[length: u32 LE][index: u64 BE][sealed record]`), the way the storage layer sees a torn or
/// bit-flipped write: `edit` gets every frame in log order as (index, record).
fn damage_log(data_dir: &Path, edit: impl FnOnce(&mut [(u64, Vec<u8>)])) {
    let mut paths: Vec<_> = std::fs::read_dir(data_dir.join("log"))
        .expect("the member's log directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    paths.sort();
    let mut frames = Vec::new();
    let mut per_segment = Vec::new();
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        let mut at = 0;
        let mut n = 0;
        while at + 12 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let index = u64::from_be_bytes(bytes[at + 4..at + 12].try_into().unwrap());
            if len == 0 && index == 0 {
                break;
            }
            frames.push((index, bytes[at + 12..at + 12 + len].to_vec()));
            at += 12 + len;
            n += 1;
        }
        per_segment.push(n);
    }
    assert!(
        frames.len() >= 3,
        "too few log entries to damage: {}",
        frames.len()
    );
    edit(&mut frames);
    let mut frames = frames.into_iter();
    for (path, n) in paths.iter().zip(per_segment) {
        let mut bytes = Vec::new();
        for (index, record) in frames.by_ref().take(n) {
            bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&index.to_be_bytes());
            bytes.extend_from_slice(&record);
        }
        std::fs::write(path, bytes).unwrap();
    }
}

fn flip_byte(record: &mut [u8], at: usize) {
    let at = at.min(record.len() - 1);
    record[at] ^= 0x40;
}

/// Starts `serve` on a damaged data dir and expects it to exit non-zero without ever serving;
/// returns its log.
fn expect_refusal(h: &mut Halyard) -> String {
    let mut p = h.spawn_serve();
    let port = h.port;
    let status = wait_for(STARTUP, "halyard serve to refuse the damaged log", || {
        if let Some(s) = p.child.try_wait().unwrap() {
            return Some(s);
        }
        if let Ok(mut c) = Rpc::connect_timeout(port, Duration::from_secs(1)) {
            if c.call("list_dbs", json!([])).is_ok() {
                panic!(
                    "halyard serves clients on a damaged log; its log:\n{}",
                    p.log_text()
                );
            }
        }
        None
    });
    let log = p.log_text();
    assert!(
        !status.success(),
        "exit status {status} on a damaged log:\n{log}"
    );
    log
}

fn fill(h: &Halyard, n: usize) -> BTreeMap<String, String> {
    let mut c = Rpc::connect(h.port);
    let mut acked = BTreeMap::new();
    for seq in 0..n {
        let row = row_for(0, seq);
        let r = c.transact("Load", json!([{"op": "insert", "table": "T", "row": row}]));
        acked.insert(
            row["name"].as_str().unwrap().to_string(),
            r[0]["uuid"][1].as_str().unwrap().to_string(),
        );
    }
    acked
}

#[test]
fn a_damaged_log_tail_or_entry_is_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let schema = write_schema(tmp.path(), &load_schema());
    let mut h = Halyard::start(&schema);
    let acked = fill(&h, 50);
    h.kill9();

    // A torn write: the last entry cut in half.
    let mut saved = None;
    damage_log(&h.data_dir, |frames| {
        let last = frames.last_mut().unwrap();
        saved = Some(last.1.clone());
        last.1.truncate(last.1.len() / 2);
    });
    let msg = expect_refusal(&mut h);
    assert!(
        msg.contains("raft log tail is corrupt from index") && msg.contains("refusing to start"),
        "no clear error for a torn last entry:\n{msg}"
    );
    // Refusing changed nothing: it refuses again, with the same message.
    let again = expect_refusal(&mut h);
    assert!(
        again.contains("raft log tail is corrupt from index"),
        "{again}"
    );

    // Put the entry back: the member starts and serves exactly what was acknowledged.
    let value = saved.unwrap();
    damage_log(&h.data_dir, |frames| {
        frames.last_mut().unwrap().1 = value;
    });
    h.serve();
    let rows = rows_by_name(h.port);
    assert_eq!(rows.len(), acked.len());
    for (name, uuid) in &acked {
        assert_eq!(rows[name]["_uuid"], json!(["uuid", uuid]), "{name}");
    }
    h.kill9();

    // A flipped byte in the last entry (checksum mismatch).
    damage_log(&h.data_dir, |frames| {
        flip_byte(&mut frames.last_mut().unwrap().1, 20)
    });
    let msg = expect_refusal(&mut h);
    assert!(
        msg.contains("raft log tail is corrupt from index") && msg.contains("--repair-log-tail"),
        "no clear error (naming the repair flag) for a flipped byte:\n{msg}"
    );

    // The operator's choice: `--repair-log-tail` truncates to the last good entry, says so, and
    // serves a prefix of the acknowledged history (at most the damaged last write missing).
    h.serve_args = vec!["--repair-log-tail".into()];
    h.serve();
    assert!(
        h.log_text().contains("REPAIRED the raft log"),
        "the repair was not logged:\n{}",
        h.log_text()
    );
    let rows = rows_by_name(h.port);
    assert!(
        rows.len() + 1 >= acked.len(),
        "repair lost more than the damaged entry: {} of {}",
        rows.len(),
        acked.len()
    );
    for seq in 0..rows.len() {
        let name = format!("w0-{seq}");
        assert_eq!(
            rows.get(&name).map(|r| r["_uuid"].clone()),
            Some(json!(["uuid", acked[&name]])),
            "{name}"
        );
    }
    // Repaired, it takes writes and restarts normally.
    let mut c = Rpc::connect(h.port);
    let r = c.transact(
        "Load",
        json!([{"op": "insert", "table": "T", "row": row_for(1, 0)}]),
    );
    assert!(r[0]["uuid"].is_array(), "{r}");
    drop(c);
    h.kill9();
    h.serve_args.clear();
    h.serve();
    assert_eq!(rows_by_name(h.port).len(), rows.len() + 1);
    h.kill9();

    // A damaged entry with good entries after it is not a torn write: refused, not repairable.
    damage_log(&h.data_dir, |frames| {
        let middle = frames.len() / 2;
        flip_byte(&mut frames[middle].1, 20)
    });
    let msg = expect_refusal(&mut h);
    assert!(
        msg.contains("is corrupt but later entries are intact")
            && msg.contains("restore this member from a peer"),
        "no clear error for a damaged middle entry:\n{msg}"
    );
    // The repair flag does not apply to it: truncating would drop good entries.
    h.serve_args = vec!["--repair-log-tail".into()];
    let msg = expect_refusal(&mut h);
    assert!(
        msg.contains("is corrupt but later entries are intact"),
        "{msg}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else if ty.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        } // sockets (the control socket) are not state
    }
}

/// Flips 32 bytes of the log's segment files at the last place the `pad` of row `seq` was
/// written: damage below the framing, as a disk would do it.
fn damage_log_file(data_dir: &Path, seq: usize) {
    let pad = row_for(0, seq)["pad"].as_str().unwrap().to_string();
    for entry in std::fs::read_dir(data_dir.join("log")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(pad.len()).rposition(|w| w == pad.as_bytes()) {
            for b in &mut bytes[at..at + 32] {
                *b ^= 0x55;
            }
            std::fs::write(&path, bytes).unwrap();
            return;
        }
    }
    panic!("row {seq} not found in the log segments");
}

/// Starts `serve` on damaged bytes: the member must refuse (non-zero exit, an error naming the
/// damage and the remedy: the repair flag for a tail, a rebuild from a peer otherwise). Should it ever serve, it must at
/// least serve a prefix of the acknowledged history — never a hole or altered rows — but a
/// silent prefix is a failure: acknowledged writes would be gone without a word.
fn refusal_or_prefix(h: &mut Halyard, acked: &BTreeMap<String, String>, what: &str) {
    let mut p = h.spawn_serve();
    let port = h.port;
    let served = wait_for(STARTUP, "halyard serve to refuse or serve", || {
        if p.child.try_wait().unwrap().is_some() {
            return Some(false);
        }
        let mut c = Rpc::connect_timeout(port, Duration::from_secs(1)).ok()?;
        c.call("list_dbs", json!([])).ok().map(|_| true)
    });
    if !served {
        let status = p.child.wait().unwrap();
        let log = p.log_text();
        assert!(
            !status.success(),
            "{what}: exited successfully without serving:\n{log}"
        );
        let lower = log.to_lowercase();
        assert!(
            lower.contains("corrupt") || lower.contains("lost committed entries"),
            "{what}: refused without naming the corruption:\n{log}"
        );
        assert!(
            log.contains("--repair-log-tail") || log.contains("restore this member from a peer"),
            "{what}: the refusal does not name the remedy:\n{log}"
        );
        eprintln!("{what}: refused to start ({status})");
        return;
    }
    h.proc = Some(p);
    let rows = rows_by_name(h.port);
    let n = rows.len();
    for seq in 0..n {
        let name = format!("w0-{seq}");
        let row = rows.get(&name).unwrap_or_else(|| {
            panic!("{what}: {n} rows served but {name} is missing: not a prefix of the history")
        });
        assert_eq!(
            row["_uuid"],
            json!(["uuid", acked[&name]]),
            "{what}: {name}"
        );
        let sent = row_for(0, seq);
        for col in ["name", "writer", "seq", "pad"] {
            assert_eq!(row[col], sent[col], "{what}: {name}.{col} altered");
        }
    }
    assert_eq!(
        n,
        acked.len(),
        "{what}: served only {n} of {} acknowledged rows without a word",
        acked.len()
    );
    h.kill9();
}

/// Damage below the framing: bytes of a log segment file, in the last entry and in the middle.
#[test]
fn damaged_log_file_bytes_are_refused_not_served_short() {
    let tmp = tempfile::tempdir().unwrap();
    let schema = write_schema(tmp.path(), &load_schema());
    let mut h = Halyard::start(&schema);
    let acked = fill(&h, 40);
    h.kill9();
    let backup = tmp.path().join("backup");
    copy_dir(&h.data_dir, &backup);

    damage_log_file(&h.data_dir, 39);
    refusal_or_prefix(&mut h, &acked, "the last write damaged");

    std::fs::remove_dir_all(&h.data_dir).unwrap();
    copy_dir(&backup, &h.data_dir);
    damage_log_file(&h.data_dir, 20);
    refusal_or_prefix(&mut h, &acked, "a write in the middle damaged");
}

/// A SIGHUP ends a member as it always did (by the signal, its default action), after a line on
/// its log naming the sender: the fault suite saw a member end by a SIGHUP of unknown origin.
#[test]
fn a_sighup_ends_the_member_after_a_line_naming_its_sender() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let schema = write_schema(tmp.path(), &load_schema());
    let mut h = Halyard::start(&schema);
    let mut p = h.proc.take().unwrap();
    // SAFETY: kill(2) on the child this test started and has not reaped.
    unsafe { libc::kill(p.child.id() as libc::pid_t, libc::SIGHUP) };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 30 s after SIGHUP; log:\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(libc::SIGHUP), "{status}");
    let expected = format!("SIGHUP from pid {} (uid ", std::process::id());
    assert!(p.log_text().contains(&expected), "log:\n{}", p.log_text());
}
