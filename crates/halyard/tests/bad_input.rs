//! Bad input and load against the `halyard` binary over raw sockets (RFC 7047 framing and
//! the ovsdb-server 3.1 behaviour in docs/ovsdb-protocol.md §1.2, §1.3, §1.7, §2.13): malformed
//! JSON, non-object values, foreign JSON-RPC members, unknown methods, wrong params, messages
//! over `--max-message-bytes`, thousands of idle connections, and a monitoring client that never
//! reads (disconnected past `--backlog-limit-bytes`). Each protocol case is also sent to a real
//! ovsdb-server and the replies and the close/stay-open outcome must be the same; after each one
//! the member must still serve a fresh client.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use halyard_testkit::single::*;
use serde_json::{json, Value};

/// What the peer did with a sequence of raw messages.
#[derive(Debug, PartialEq)]
struct Outcome {
    replies: Vec<Value>,
    /// The connection was closed by the server after the replies.
    closed: bool,
}

/// Sends `msgs` (raw text, one write each), reads `n_replies` values, then finds out whether
/// the server closed the connection (`expect_closed`: wait for EOF) or kept it usable (an echo
/// round trip).
fn probe(port: u16, msgs: &[&str], n_replies: usize, expect_closed: bool) -> Outcome {
    let mut c = Rpc::connect(port);
    for m in msgs {
        if c.send_raw(m.as_bytes()).is_err() {
            break;
        }
    }
    let mut replies = Vec::new();
    for _ in 0..n_replies {
        match c.recv(Duration::from_secs(30)) {
            Ok(v) => replies.push(v),
            Err(_) => {
                return Outcome {
                    replies,
                    closed: true,
                }
            }
        }
    }
    let closed = if expect_closed {
        c.is_closed_within(Duration::from_secs(20))
    } else {
        let alive = json!({"id": "alive", "method": "echo", "params": ["alive"]});
        c.send(&alive).is_err()
            || match c.recv(Duration::from_secs(30)) {
                Ok(v) => {
                    assert_eq!(
                        v,
                        json!({"id": "alive", "result": ["alive"], "error": null}),
                        "after {msgs:?}"
                    );
                    false
                }
                Err(_) => true,
            }
    };
    Outcome { replies, closed }
}

/// A fresh client can still list the databases.
fn still_serves(port: u16, what: &str) {
    let mut c = Rpc::connect(port);
    let r = c
        .call("list_dbs", json!([]))
        .unwrap_or_else(|e| panic!("member unusable after {what}: {e:?}"));
    assert!(
        r["result"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("OVN_Northbound"))),
        "{r}"
    );
}

#[test]
fn protocol_errors_match_ovsdb_server_and_leave_the_member_serving() {
    let h = Halyard::start(NB_SCHEMA);
    let real = OvsdbServer::start(NB_SCHEMA);
    // (messages, replies expected, closed afterwards, the exact replies when known)
    let cases: Vec<(Vec<&str>, usize, bool, Option<Value>)> = vec![
        // Malformed JSON: what came before is answered, then the connection is closed.
        (
            vec![
                r#"{"id":1,"method":"echo","params":[]} {"id":2, garbage}"#,
                r#"{"id":3,"method":"echo","params":[]}"#,
            ],
            1,
            true,
            Some(json!([{"id": 1, "result": [], "error": null}])),
        ),
        (vec!["}"], 0, true, None),
        // Top-level values that are not objects (a JSON-RPC batch, a string, a number).
        (vec!["[1,2]"], 0, true, None),
        (vec![r#""str""#], 0, true, None),
        (vec!["42 "], 0, true, None),
        // A member JSON-RPC 1.0 does not have.
        (
            vec![r#"{"id":1,"method":"echo","params":[],"jsonrpc":"2.0"}"#],
            0,
            true,
            None,
        ),
        // Shape errors: params not an array, missing params, method not a string.
        (
            vec![r#"{"id":1,"method":"list_dbs","params":{}}"#],
            0,
            true,
            None,
        ),
        (vec![r#"{"id":1,"method":"list_dbs"}"#], 0, true, None),
        (vec![r#"{"id":1,"method":5,"params":[]}"#], 0, true, None),
        // A stray reply to the server.
        (vec![r#"{"id":7,"result":[],"error":null}"#], 0, true, None),
        // A number the stream parser cannot represent.
        (
            vec![r#"{"id":1,"method":"echo","params":[1e400]}"#],
            0,
            true,
            None,
        ),
        // Unknown method: an error reply, and the session stays usable; echo returns its params.
        (
            vec![
                r#"{"id":1,"method":"nope","params":[]}"#,
                r#"{"id":[2,{"x":3}],"method":"echo","params":[1,"x",{"a":null}]}"#,
            ],
            2,
            false,
            Some(json!([
                {"id": 1, "error": "unknown method"},
                {"id": [2, {"x": 3}], "result": [1, "x", {"a": null}], "error": null}
            ])),
        ),
        // cancel is only a notification; as a request it is unknown. Unknown notifications are
        // ignored.
        (
            vec![
                r#"{"id":"c","method":"cancel","params":[1]}"#,
                r#"{"id":null,"method":"nope","params":[]}"#,
            ],
            1,
            false,
            Some(json!([{"id": "c", "error": "unknown method"}])),
        ),
        // Wrong params.
        (
            vec![r#"{"id":1,"method":"transact","params":[]}"#],
            1,
            false,
            Some(
                json!([{"id": 1, "error": {"syntax": "[]", "details": "transact request params must begin with <db-name>", "error": "syntax error"}}]),
            ),
        ),
        (
            vec![r#"{"id":1,"method":"transact","params":[5]}"#],
            1,
            false,
            Some(
                json!([{"id": 1, "error": {"syntax": "[5]", "details": "transact request params must begin with <db-name>", "error": "syntax error"}}]),
            ),
        ),
        (
            vec![r#"{"id":1,"method":"transact","params":["Nope"]}"#],
            1,
            false,
            Some(
                json!([{"id": 1, "error": {"syntax": "[\"Nope\"]", "details": "transact request specifies unknown database Nope", "error": "unknown database"}}]),
            ),
        ),
        (
            vec![r#"{"id":1,"method":"get_schema","params":["Nope"]}"#],
            1,
            false,
            Some(
                json!([{"id": 1, "error": {"syntax": "[\"Nope\"]", "details": "get_schema request specifies unknown database Nope", "error": "unknown database"}}]),
            ),
        ),
        // A bad operation is a per-operation error inside a successful reply.
        (
            vec![r#"{"id":1,"method":"transact","params":["OVN_Northbound",{"op":"bogus"}]}"#],
            1,
            false,
            None,
        ),
        (
            vec![
                r#"{"id":1,"method":"transact","params":["OVN_Northbound",{"op":"insert","table":"Nope","row":{}}]}"#,
            ],
            1,
            false,
            None,
        ),
        (
            vec![r#"{"id":1,"method":"monitor_cancel","params":["never"]}"#],
            1,
            false,
            Some(json!([{"id": 1, "error": "unknown monitor"}])),
        ),
        // Malformed monitor params (the full set, the monitor-id check included, is in
        // crates/server/tests/monitor.rs; Halyard parks a monitor request for a read barrier,
        // so pipelined ones are answered in no fixed order): v1 ignores extra params, and
        // monitor_cond_since's requests are checked before its last transaction id.
        (
            vec![r#"{"id":1,"method":"monitor","params":["OVN_Northbound","m",{},"extra"]}"#],
            1,
            false,
            Some(json!([{"id": 1, "result": {}, "error": null}])),
        ),
        (
            vec![r#"{"id":2,"method":"monitor","params":["OVN_Northbound","m",[]]}"#],
            1,
            false,
            Some(
                json!([{"id": 2, "error": {"syntax": "[]", "details": "monitor-requests must be object", "error": "syntax error"}}]),
            ),
        ),
        (
            vec![
                r#"{"id":4,"method":"monitor_cond_since","params":["OVN_Northbound","n",{"Nope":{}},5]}"#,
            ],
            1,
            false,
            Some(
                json!([{"id": 4, "error": {"details": "no table named Nope", "error": "syntax error"}}]),
            ),
        ),
        (
            vec![r#"{"id":5,"method":"monitor_cond_since","params":["OVN_Northbound","n",{},5]}"#],
            1,
            false,
            Some(
                json!([{"id": 5, "error": {"syntax": "5", "details": "last-txn-id must be string", "error": "syntax error"}}]),
            ),
        ),
        (
            vec![r#"{"id":6,"method":"monitor_cond","params":["OVN_Northbound","n",{},"x"]}"#],
            1,
            false,
            Some(
                json!([{"id": 6, "error": {"syntax": "[\"OVN_Northbound\",\"n\",{},\"x\"]", "details": "invalid parameters", "error": "syntax error"}}]),
            ),
        ),
    ];
    for (msgs, n, closed, exact) in &cases {
        let theirs = probe(real.port, msgs, *n, *closed);
        assert_eq!(
            theirs.closed, *closed,
            "ovsdb-server itself: {msgs:?} -> {theirs:?}"
        );
        if let Some(exact) = exact {
            assert_eq!(
                &Value::Array(theirs.replies.clone()),
                exact,
                "ovsdb-server itself: {msgs:?}"
            );
        }
        let ours = probe(h.port, msgs, *n, *closed);
        assert_eq!(ours, theirs, "halyard and ovsdb-server differ on {msgs:?}");
        still_serves(h.port, &format!("{msgs:?}"));
    }
}

/// Sends `msgs` and reads every value until the server closes the connection, or until 3 s
/// have passed (`closed: false`): well within the 5 s after which an inactivity probe, left
/// unanswered, would close a TCP session anyway.
fn replies_until_closed(port: u16, msgs: &[&str]) -> Outcome {
    let mut c = Rpc::connect(port);
    for m in msgs {
        if c.send_raw(m.as_bytes()).is_err() {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut replies = Vec::new();
    loop {
        match c.recv(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) => replies.push(v),
            Err(RecvError::Timeout) => {
                return Outcome {
                    replies,
                    closed: false,
                }
            }
            Err(_) => {
                return Outcome {
                    replies,
                    closed: true,
                }
            }
        }
    }
}

/// A `\u0000` escape in any string: ovsdb-server 3.1 answers what came before, then closes the
/// connection with no reply at the string's closing quote (its log: `error parsing stream: …
/// null bytes not supported in quoted strings`). Nothing is stored, and the member keeps
/// serving.
#[test]
fn null_escapes_close_the_connection_and_store_nothing() {
    let h = Halyard::start(NB_SCHEMA);
    let real = OvsdbServer::start(NB_SCHEMA);
    let insert = r#"{"id":1,"method":"transact","params":["OVN_Northbound",{"op":"insert","table":"Logical_Switch","row":{"name":"a\u0000b"}}]}"#;
    let cases: Vec<(Vec<&str>, usize)> = vec![
        (vec![insert], 0),
        (
            vec![
                r#"{"id":1,"method":"echo","params":[]} {"id":2,"method":"echo","params":["\u0000"]}"#,
            ],
            1,
        ),
        (
            vec![r#"{"id":1,"method":"echo","params":[],"k\u0000":1}"#],
            0,
        ),
        // Refused at the string's end, before the message is complete.
        (
            vec![
                r#"{"id":1,"method":"transact","params":["OVN_Northbound",{"op":"insert","table":"Logical_Switch","row":{"name":"\u0000""#,
            ],
            0,
        ),
    ];
    for (msgs, n) in &cases {
        let theirs = replies_until_closed(real.port, msgs);
        assert!(theirs.closed, "ovsdb-server itself: {msgs:?} -> {theirs:?}");
        assert_eq!(theirs.replies.len(), *n, "ovsdb-server itself: {msgs:?}");
        let ours = replies_until_closed(h.port, msgs);
        assert_eq!(ours, theirs, "halyard and ovsdb-server differ on {msgs:?}");
        still_serves(h.port, &format!("{msgs:?}"));
    }
    for port in [real.port, h.port] {
        let mut c = Rpc::connect(port);
        let r = c
            .call(
                "transact",
                json!(["OVN_Northbound", {"op": "select", "table": "Logical_Switch", "where": [], "columns": ["name"]}]),
            )
            .unwrap();
        assert_eq!(r["result"], json!([{"rows": []}]), "port {port}");
    }
}

/// `monitor` with its params cut short crashes ovsdb-server 3.1 (the connection is refused
/// afterwards); Halyard must answer (or close) and keep serving.
#[test]
fn truncated_monitor_params_do_not_crash_the_member() {
    let h = Halyard::start(NB_SCHEMA);
    for params in [
        r#"["OVN_Northbound"]"#,
        r#"["OVN_Northbound",null]"#,
        "[]",
        r#"[null,null,null]"#,
    ] {
        for method in ["monitor", "monitor_cond", "monitor_cond_since"] {
            let msg = format!(r#"{{"id":1,"method":"{method}","params":{params}}}"#);
            let mut c = Rpc::connect(h.port);
            c.send_raw(msg.as_bytes()).unwrap();
            match c.recv(Duration::from_secs(30)) {
                Ok(v) => {
                    assert_eq!(v["id"], 1, "{msg}: {v}");
                    assert!(
                        v["error"].is_object() || v["error"].is_string(),
                        "{msg} did not fail: {v}"
                    );
                }
                Err(RecvError::Closed) => {}
                Err(e) => panic!("{msg}: no answer and not closed: {e:?}"),
            }
            still_serves(h.port, &msg);
        }
    }
}

#[test]
fn a_message_over_max_message_bytes_closes_the_connection() {
    let h = Halyard::start_with(NB_SCHEMA, &["--max-message-bytes", "65536"]);
    let txn = |len: usize| {
        json!({"id": 1, "method": "transact", "params": ["OVN_Northbound",
            {"op": "insert", "table": "Logical_Switch", "row": {"name": "x".repeat(len)}}]})
        .to_string()
    };
    // Under the limit: served.
    let mut c = Rpc::connect(h.port);
    c.send_raw(txn(60_000).as_bytes()).unwrap();
    let r = c
        .recv(Duration::from_secs(30))
        .expect("a reply under the limit");
    assert!(r["result"][0]["uuid"].is_array(), "{r}");
    // Over the limit: closed without a reply, nothing committed.
    let mut c = Rpc::connect(h.port);
    let _ = c.send_raw(txn(100_000).as_bytes());
    assert_eq!(c.recv(Duration::from_secs(30)), Err(RecvError::Closed));
    // An unfinished message growing past the limit is cut off too (no unbounded buffering).
    let mut c = Rpc::connect(h.port);
    let _ = c.send_raw(br#"{"id":1,"method":"echo","params":[""#);
    let chunk = "y".repeat(16_384);
    for _ in 0..8 {
        if c.send_raw(chunk.as_bytes()).is_err() {
            break;
        }
    }
    assert!(
        c.is_closed_within(Duration::from_secs(30)),
        "an unterminated 128 KiB message was not cut off"
    );
    still_serves(h.port, "oversized messages");
    let mut c = Rpc::connect(h.port);
    let rows = c.transact(
        "OVN_Northbound",
        json!([{"op": "select", "table": "Logical_Switch", "where": [], "columns": ["name"]}]),
    );
    assert_eq!(
        rows[0]["rows"].as_array().unwrap().len(),
        1,
        "only the message under the limit committed"
    );
}

/// Raises the soft RLIMIT_NOFILE to at least `want` (children started afterwards inherit it);
/// false if the hard limit is lower.
fn raise_nofile(want: u64) -> bool {
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return false;
        }
        if r.rlim_cur >= want {
            return true;
        }
        if r.rlim_max < want {
            return false;
        }
        r.rlim_cur = want;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0
    }
}

/// Thousands of connections that send nothing are held (answering only the server's echo
/// probes, as every OVSDB client library does) for longer than the probe window, while a normal
/// client is served; one connection that does not answer the probes is dropped after the
/// default 5 s + 5 s, as ovsdb-server drops it.
#[test]
fn thousands_of_idle_connections_are_held() {
    const N: usize = 2000;
    if !raise_nofile(2 * N as u64 + 512) {
        eprintln!(
            "SKIPPED: RLIMIT_NOFILE cannot be raised to {} (hard limit too low)",
            2 * N + 512
        );
        return;
    }
    let h = Halyard::start(NB_SCHEMA);
    let mut deaf = Rpc::connect(h.port);
    let deaf_since = Instant::now();
    let mut idle: Vec<Rpc> = Vec::with_capacity(N);
    for i in 0..N {
        idle.push(Rpc::connect(h.port));
        if i % 200 == 199 {
            pump_all(&mut idle);
        }
    }
    // A normal client is served while they are all open.
    still_serves(h.port, &format!("{N} idle connections"));
    let mut c = Rpc::connect(h.port);
    let r = c.transact(
        "OVN_Northbound",
        json!([{"op": "insert", "table": "Logical_Switch", "row": {"name": "busy"}}]),
    );
    assert!(r[0]["uuid"].is_array(), "{r}");
    drop(c);
    // Hold them past the probe window (probe after 5 s idle, drop 5 s later if unanswered).
    let mut deaf_closed_after = None;
    while deaf_since.elapsed() < Duration::from_secs(25) {
        pump_all(&mut idle);
        if deaf_closed_after.is_none() && deaf.is_closed_within(Duration::from_millis(200)) {
            deaf_closed_after = Some(deaf_since.elapsed());
        }
        if deaf_closed_after.is_some() && deaf_since.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    let t =
        deaf_closed_after.expect("a client that never answers the echo probe was never dropped");
    assert!(
        t >= Duration::from_secs(9),
        "the deaf client was dropped after only {t:?}"
    );
    // Every idle connection is still held and answers: pipeline an echo on each, then read.
    for (i, s) in idle.iter_mut().enumerate() {
        s.send(&json!({"id": i, "method": "echo", "params": [i]}))
            .unwrap_or_else(|e| panic!("idle connection {i} was dropped: {e}"));
    }
    for (i, s) in idle.iter_mut().enumerate() {
        let r = s
            .reply_to(&json!(i), Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("idle connection {i} did not answer: {e:?}"));
        assert_eq!(r["result"], json!([i]));
    }
}

/// Reads and answers probes on every connection; panics if the server closed one.
fn pump_all(conns: &mut [Rpc]) {
    for (i, c) in conns.iter_mut().enumerate() {
        match c.pump() {
            Ok(msgs) => assert!(msgs.is_empty(), "idle connection {i} got {msgs:?}"),
            Err(e) => panic!("idle connection {i}: {e:?}"),
        }
    }
}

fn set_rcvbuf(s: &std::net::TcpStream, size: libc::c_int) {
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A client that sends a monitor request and never reads is disconnected once its unsent
/// updates pass `--backlog-limit-bytes`, while a writer and another client keep being served.
/// The inactivity probe is off, so that it is the backlog limit that cuts the client (with the
/// probe on, a client that does not read is dropped for not answering the probe first).
#[test]
fn a_monitor_client_that_never_reads_is_disconnected_past_the_backlog_limit() {
    const LIMIT: usize = 1 << 20;
    let h = Halyard::start_with(
        NB_SCHEMA,
        &[
            "--backlog-limit-bytes",
            &LIMIT.to_string(),
            "--inactivity-probe",
            "0",
        ],
    );
    let t_start = Instant::now();
    let mut slow = Rpc::connect(h.port);
    // A bounded client receive buffer (not smaller: below one loopback MSS of 64 KiB the window
    // crawls and draining later takes minutes).
    set_rcvbuf(&slow.stream, 256 * 1024);
    slow.send(
        &json!({"id": 1, "method": "monitor", "params": ["OVN_Northbound", null,
        {"Logical_Switch": {"columns": ["name", "external_ids"]}}]}),
    )
    .unwrap();
    // Make sure the monitor is installed before writing: its (empty) initial reply comes first.
    let first = slow.recv(Duration::from_secs(30)).expect("monitor reply");
    assert_eq!(first["id"], 1, "{first}");
    assert!(first["error"].is_null(), "{first}");

    let mut writer = Rpc::connect(h.port);
    let mut other = Rpc::connect(h.port);
    let pad = "p".repeat(16 * 1024);
    // 100 transactions of 8 rows with 16 KiB each: about 13 MiB of updates, far more than the
    // socket buffers (client receive buffer 256 KiB, server send buffer at most 4 MiB) plus the
    // 1 MiB limit.
    let mut sent_bytes = 0usize;
    for i in 0..100 {
        let ops: Vec<Value> = (0..8)
            .map(|j| {
                json!({"op": "insert", "table": "Logical_Switch",
                "row": {"name": format!("s{i}-{j}"), "external_ids": ["map", [["pad", pad]]]}})
            })
            .collect();
        let t0 = Instant::now();
        let r = writer.transact("OVN_Northbound", Value::Array(ops));
        assert!(r[0]["uuid"].is_array(), "{r}");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the writer was stalled by the slow reader"
        );
        sent_bytes += 8 * pad.len();
        if i % 10 == 9 {
            let e = other
                .call("echo", json!([i]))
                .expect("another client keeps working");
            assert_eq!(e["result"], json!([i]));
        }
    }
    // Draining it now: the stream ends (EOF) before all the updates were delivered.
    let mut received = 0usize;
    loop {
        match slow.recv(Duration::from_secs(30)) {
            Ok(v) => received += v.to_string().len(),
            Err(RecvError::Closed) => break,
            Err(e) => panic!("slow client: expected the connection to be closed, got {e:?}"),
        }
    }
    assert!(
        received < sent_bytes,
        "all {sent_bytes} bytes of updates were delivered ({received}): nothing was cut"
    );
    still_serves(h.port, "a slow client's disconnection");
    let log = h.log_text();
    assert!(
        log.contains(&format!(
            "would exceed the limit of {LIMIT} bytes, disconnecting"
        )),
        "the backlog limit did not cut the client:\n{log}"
    );
    eprintln!(
        "slow client cut after {received} of {sent_bytes} bytes; test took {:?}",
        t_start.elapsed()
    );
}

/// Resident memory of `pid` in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    kib / 1024
}

/// Many clients each sending most of a large message and never finishing it: together they
/// may hold at most `--max-input-bytes`; the connections that would pass it are closed with a
/// clear error, other clients keep being served, and the memory comes back once they are gone.
#[test]
fn incomplete_messages_of_all_clients_are_bounded_together() {
    use std::io::Write;
    const LIMIT: usize = 64 << 20;
    const EACH: usize = 16 << 20;
    let h = Halyard::start_with(
        NB_SCHEMA,
        &[
            "--max-input-bytes",
            &LIMIT.to_string(),
            "--inactivity-probe",
            "0",
        ],
    );
    let pid = h.proc.as_ref().unwrap().child.id();
    let baseline = rss_mib(pid);
    // 12 clients x 16 MiB = 192 MiB of unfinished messages against a 64 MiB bound.
    let chunk = vec![b'x'; 1 << 20];
    let mut clients = Vec::new();
    let mut refused = 0;
    for _ in 0..12 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut ok = s
            .write_all(br#"{"id":1,"method":"echo","params":[""#)
            .is_ok();
        for _ in 0..EACH / chunk.len() {
            if !ok || s.write_all(&chunk).is_err() {
                ok = false;
                break;
            }
        }
        if !ok {
            refused += 1;
        }
        clients.push(s);
    }
    // Let the member read what was sent before judging.
    std::thread::sleep(Duration::from_secs(2));
    let held = rss_mib(pid);
    still_serves(h.port, "clients holding incomplete messages");
    let log = h.log_text();
    let closed = log.matches("more than the input limit of").count();
    eprintln!(
        "RSS {baseline} MiB before, {held} MiB with the clients; {closed} connections closed by \
         the input limit ({refused} saw the close while sending)"
    );
    assert!(closed >= 8, "at most 4 of 16 MiB fit in 64 MiB:\n{log}");
    assert!(
        held < baseline + 2 * (LIMIT as u64 >> 20) + 64,
        "RSS {held} MiB with a 64 MiB input bound (baseline {baseline} MiB)"
    );
    drop(clients);
    // Given back once the burst is over (the member checks every second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = rss_mib(pid);
        if now < baseline + 32 {
            eprintln!("RSS back to {now} MiB after the clients left");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RSS still {now} MiB 10 s after the clients left (baseline {baseline} MiB)"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
