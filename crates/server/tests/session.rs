//! Session behaviour over an in-memory pipe: bad input, the method surface that does not
//! depend on the data path, the inactivity probe (with tokio's paused clock), the backlog
//! limit, locks, `_Server`, and transactions through the test fixture backend.

mod support;

use std::sync::Arc;
use std::time::Duration;

use halyard_server::{Server, ServerConfig};
use serde_json::{json, Value};
use support::{config, connect, connect_with_buffer, TestBackend, TEST_SCHEMA};

fn server_with(cfg: ServerConfig) -> (Arc<TestBackend>, Arc<Server>) {
    let b = TestBackend::new(&[TEST_SCHEMA]);
    let s = Arc::new(Server::new(b.clone(), cfg).unwrap());
    (b, s)
}

fn server() -> (Arc<TestBackend>, Arc<Server>) {
    server_with(config())
}

/// Each case sends raw bytes; the server either drops the connection without replying, or
/// replies (or not) and keeps the session: a following echo must then be answered.
#[tokio::test]
async fn bad_input_table() {
    enum Want {
        Dropped,
        Replies(Vec<Value>),
    }
    use Want::*;
    let cases: Vec<(&str, &[u8], Want)> = vec![
        ("malformed JSON", b"{\"id\":1 \"method\"}", Dropped),
        (
            "array (batch)",
            b"[{\"id\":1,\"method\":\"echo\",\"params\":[]}]",
            Dropped,
        ),
        ("bare string", b"\"echo\"", Dropped),
        ("number", b"42 ", Dropped),
        (
            "number out of double range",
            b"{\"id\":1,\"method\":\"echo\",\"params\":[1e400]}",
            Dropped,
        ),
        (
            "jsonrpc member",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[]}",
            Dropped,
        ),
        (
            "params object",
            b"{\"id\":1,\"method\":\"echo\",\"params\":{}}",
            Dropped,
        ),
        (
            "params null on request",
            b"{\"id\":1,\"method\":\"echo\",\"params\":null}",
            Dropped,
        ),
        ("no params", b"{\"id\":1,\"method\":\"echo\"}", Dropped),
        (
            "method not a string",
            b"{\"id\":1,\"method\":7,\"params\":[]}",
            Dropped,
        ),
        (
            "stray reply",
            b"{\"id\":77,\"result\":[],\"error\":null}",
            Dropped,
        ),
        (
            "error reply to echo",
            b"{\"id\":\"echo\",\"error\":\"x\"}",
            Dropped,
        ),
        (
            "echo reply is swallowed",
            b"{\"id\":\"echo\",\"result\":[],\"error\":null}",
            Replies(vec![]),
        ),
        (
            "unknown notification is ignored",
            b"{\"method\":\"frob\",\"params\":[],\"id\":null}",
            Replies(vec![]),
        ),
        (
            "cancel of unknown id is ignored",
            b"{\"method\":\"cancel\",\"params\":[5]}",
            Replies(vec![]),
        ),
        (
            "unknown method",
            b"{\"id\":1,\"method\":\"frob\",\"params\":[]}",
            Replies(vec![json!({"id":1,"error":"unknown method"})]),
        ),
        (
            "cancel as a request",
            b"{\"id\":2,\"method\":\"cancel\",\"params\":[1]}",
            Replies(vec![json!({"id":2,"error":"unknown method"})]),
        ),
        (
            "echo with any id and params, whitespace around",
            b" \n{\"id\":[1,{\"x\":2}],\"method\":\"echo\",\"params\":[1,\"x\",{\"a\":null}]}\n ",
            Replies(vec![
                json!({"id":[1,{"x":2}],"result":[1,"x",{"a":null}],"error":null}),
            ]),
        ),
    ];
    let (_b, s) = server();
    for (name, bytes, want) in cases {
        let mut c = connect(&s, false);
        c.send_raw(bytes).await;
        match want {
            Dropped => assert!(c.closed().await, "{name}: expected the connection to drop"),
            Replies(replies) => {
                for r in replies {
                    let got = c.recv().await.unwrap_or_else(|| panic!("{name}: closed"));
                    assert_eq!(got, r, "{name}");
                    // Error replies carry no `result` member at all.
                    if got.get("error").is_some_and(|e| !e.is_null()) {
                        assert!(got.get("result").is_none(), "{name}: {got}");
                    }
                }
                let (m, before) = c.call("echo", json!(["alive"])).await;
                assert!(before.is_empty(), "{name}: unexpected {before:?}");
                assert_eq!(m["result"], json!(["alive"]), "{name}");
            }
        }
    }
}

#[tokio::test]
async fn oversize_message_drops_connection() {
    let (_b, s) = server_with(ServerConfig {
        max_message_size: 1000,
        ..config()
    });
    let mut c = connect(&s, false);
    // Just under the limit is fine.
    let ok = format!(
        "{{\"id\":1,\"method\":\"echo\",\"params\":[\"{}\"]}}",
        "x".repeat(900)
    );
    c.send_raw(ok.as_bytes()).await;
    assert_eq!(c.recv().await.unwrap()["id"], json!(1));
    // Over it, even before the message is complete, the session ends.
    let big = format!(
        "{{\"id\":2,\"method\":\"echo\",\"params\":[\"{}",
        "x".repeat(2000)
    );
    c.send_raw(big.as_bytes()).await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn simple_methods() {
    let (_b, s) = server();
    let mut c = connect(&s, false);
    assert_eq!(c.ok("list_dbs", json!([])).await, json!(["T", "_Server"]));
    assert_eq!(
        c.ok("list_dbs", json!([1, 2])).await,
        json!(["T", "_Server"])
    );
    let id = c.ok("get_server_id", json!([])).await;
    assert_eq!(id, json!(s.server_id().to_string()));
    let mut c2 = connect(&s, false);
    assert_eq!(
        c2.ok("get_server_id", json!(["extra"])).await,
        id,
        "fixed per process"
    );

    // get_schema ignores extra params (the Python IDL sends one).
    let schema = c.ok("get_schema", json!(["T", "f466df58"])).await;
    assert_eq!(schema["name"], json!("T"));
    let server_schema = c.ok("get_schema", json!(["_Server"])).await;
    assert_eq!(server_schema["version"], json!("1.2.0"));
    assert!(server_schema["tables"]["Database"]["columns"]["leader"].is_object());

    let table: Vec<(&str, Value, Value)> = vec![
        (
            "get_schema",
            json!(["Nope"]),
            json!({"error":"unknown database","details":"get_schema request specifies unknown database Nope","syntax":"[\"Nope\"]"}),
        ),
        (
            "get_schema",
            json!([]),
            json!({"error":"syntax error","details":"get_schema request params must begin with <db-name>","syntax":"[]"}),
        ),
        (
            "transact",
            json!([]),
            json!({"error":"syntax error","details":"transact request params must begin with <db-name>","syntax":"[]"}),
        ),
        (
            "transact",
            json!([{"op":"comment","comment":"x"}]),
            json!({"error":"syntax error","details":"transact request params must begin with <db-name>","syntax":"[{\"comment\":\"x\",\"op\":\"comment\"}]"}),
        ),
        (
            "set_db_change_aware",
            json!(["x"]),
            json!({"error":"syntax error","details":"set_db_change_aware: true or false parameter expected","syntax":"[\"x\"]"}),
        ),
        (
            "set_db_change_aware",
            json!([true, 1]),
            json!({"error":"syntax error","details":"set_db_change_aware: true or false parameter expected","syntax":"[true,1]"}),
        ),
        ("monitor_cancel", json!([]), json!("invalid parameters")),
        ("monitor_cancel", json!(["x"]), json!("unknown monitor")),
        (
            "monitor_cond_change",
            json!(["c", "d", {}]),
            json!({"error":"syntax error","details":"unknown monitor session","syntax":"\"c\""}),
        ),
        (
            "lock",
            json!(["9x"]),
            json!({"error":"syntax error","details":"lock request params must be <id>","syntax":"[\"9x\"]"}),
        ),
        (
            "steal",
            json!([]),
            json!({"error":"syntax error","details":"steal request params must be <id>","syntax":"[]"}),
        ),
        (
            "unlock",
            json!([1]),
            json!({"error":"syntax error","details":"unlock request params must be <id>","syntax":"[1]"}),
        ),
        (
            "unlock",
            json!(["L2"]),
            json!({"error":"syntax error","details":"unlock: \"unlock\" without \"lock\" or \"steal\"","syntax":"[\"L2\"]"}),
        ),
    ];
    for (method, params, want) in table {
        let (m, _) = c.call(method, params.clone()).await;
        assert_eq!(m["error"], want, "{method} {params}");
        assert!(m.get("result").is_none());
    }
    assert_eq!(c.ok("set_db_change_aware", json!([true])).await, json!({}));
    assert_eq!(c.ok("set_db_change_aware", json!([false])).await, json!({}));
}

#[tokio::test(start_paused = true)]
async fn inactivity_probe_timing() {
    let (_b, s) = server();
    let start = tokio::time::Instant::now();
    let mut c = connect(&s, true);
    let probe = c.recv().await.unwrap();
    assert_eq!(probe, json!({"id":"echo","method":"echo","params":[]}));
    assert_eq!(start.elapsed().as_secs(), 5);
    // No bytes at all: dropped 5 s after the probe.
    assert!(c.recv().await.is_none());
    assert_eq!(start.elapsed().as_secs(), 10);

    // Any incoming byte counts as activity, not just the echo reply.
    let start = tokio::time::Instant::now();
    let mut c = connect(&s, true);
    assert_eq!(c.recv().await.unwrap()["id"], json!("echo"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.send_raw(b" ").await; // at +8 s
    let probe = c.recv().await.unwrap();
    assert_eq!(probe["method"], json!("echo"));
    assert_eq!(
        start.elapsed().as_secs(),
        13,
        "next probe 5 s after the last byte"
    );
    c.send(json!({"id":"echo","result":[],"error":null})).await;
    let probe = c.recv().await.unwrap();
    assert_eq!(probe["method"], json!("echo"));
    assert_eq!(start.elapsed().as_secs(), 18);
    assert!(c.recv().await.is_none());
    assert_eq!(start.elapsed().as_secs(), 23);
}

/// A client reading a long reply (a storm's initial contents) sends nothing and reads far more
/// slowly than the probe's 10 s, yet is alive: the session stays while its reply drains, as in
/// ovsdb-server, and closes once the client stops reading.
#[tokio::test(start_paused = true)]
async fn a_client_reading_a_long_reply_slowly_is_not_taken_for_dead() {
    let (_b, s) = server();
    let mut c = connect_with_buffer(&s, true, 4096);
    let total = 2 << 20;
    c.send(json!({"id": 1, "method": "echo", "params": ["w".repeat(total)]}))
        .await;
    let mut got = 0;
    for second in 0..40 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n = c.read_some(4096).await;
        assert!(n > 0, "closed after {second} s and {got} bytes");
        got += n;
    }
    // It stops reading: the reply stops draining, and the probe is not answered.
    tokio::time::sleep(Duration::from_secs(30)).await;
    loop {
        let n = c.read_some(64 * 1024).await;
        if n == 0 {
            break;
        }
        got += n;
    }
    assert!(
        got < total,
        "the session should have been closed, got all {got} bytes"
    );
}

#[tokio::test(start_paused = true)]
async fn no_probe_on_unix_sessions() {
    let (_b, s) = server();
    let mut c = connect(&s, false);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (m, before) = c.call("echo", json!([])).await;
    assert!(before.is_empty(), "no probe was sent: {before:?}");
    assert_eq!(m["result"], json!([]));
}

#[tokio::test]
async fn backlog_limit_disconnects_a_client_that_does_not_read() {
    let (_b, s) = server_with(ServerConfig {
        backlog_limit: 10_000,
        ..config()
    });
    // A 1 KiB pipe: the server can push little before the client must read.
    let mut c = connect_with_buffer(&s, false, 1024);
    let big = "y".repeat(4000);
    for i in 0..10 {
        c.send(json!({"id": i, "method": "echo", "params": [big]}))
            .await;
    }
    // The client reads only now: it gets what fitted, then EOF rather than all ten replies.
    let mut n = 0;
    while let Some(m) = c.recv().await {
        assert_eq!(m["result"][0].as_str().map(str::len), Some(4000));
        n += 1;
    }
    assert!(n < 10, "session should have been dropped, got {n} replies");
}

#[tokio::test]
async fn a_slow_reader_within_the_limit_gets_everything() {
    let (_b, s) = server();
    let mut c = connect_with_buffer(&s, false, 1024);
    let big = "z".repeat(4000);
    // 12 replies stay under the read-pause threshold, so the server keeps reading requests
    // while this client writes them all before reading anything.
    for i in 0..12 {
        c.send(json!({"id": i, "method": "echo", "params": [big]}))
            .await;
    }
    for i in 0..12 {
        assert_eq!(
            c.recv().await.unwrap()["id"],
            json!(i),
            "replies in request order"
        );
    }
}

#[tokio::test]
async fn transact_through_backend() {
    let (_b, s) = server();
    let mut c = connect(&s, false);
    let r = c
        .ok(
            "transact",
            json!(["T", {"op":"insert","table":"A","row":{"s":"a","n":1}}]),
        )
        .await;
    assert!(r[0]["uuid"][1].is_string(), "{r}");
    let r = c
        .ok(
            "transact",
            json!(["T", {"op":"select","table":"A","where":[],"columns":["s","n"]}]),
        )
        .await;
    assert_eq!(r, json!([{"rows":[{"s":"a","n":1}]}]));
    let (m, _) = c.call("transact", json!(["Nope"])).await;
    assert_eq!(m["error"]["error"], json!("unknown database"));
    assert_eq!(c.ok("transact", json!(["T"])).await, json!([]));
}

/// A transaction parked on `wait` keeps its id busy; later requests are still answered, so
/// replies come out of order; `cancel` makes it vanish (unaware) or answer "canceled" (aware).
#[tokio::test]
async fn parked_transact_duplicate_id_and_cancel() {
    let (_b, s) = server();
    let wait = json!(["T", {"op":"wait","table":"A","where":[["s","==","go"]],"columns":["s"],"until":"!=","rows":[],"timeout":100000}]);
    for aware in [false, true] {
        let mut c = connect(&s, false);
        if aware {
            c.ok("set_db_change_aware", json!([true])).await;
        }
        c.send(json!({"id":"w","method":"transact","params":wait}))
            .await;
        // Same id again while it is pending.
        c.send(json!({"id":"w","method":"transact","params":["T"]}))
            .await;
        let m = c.recv().await.unwrap();
        assert_eq!(
            m,
            json!({"id":"w","error":{"error":"syntax error","details":"transact: duplicate request ID","syntax":"[\"T\"]"}})
        );
        // Later requests are answered while it is parked.
        assert_eq!(c.ok("echo", json!([1])).await, json!([1]));
        c.send(json!({"method":"cancel","params":["w"],"id":null}))
            .await;
        let (m, before) = c.call("echo", json!([2])).await;
        if aware {
            assert_eq!(before, vec![json!({"id":"w","error":"canceled"})]);
        } else {
            assert!(before.is_empty(), "{before:?}");
        }
        assert_eq!(m["result"], json!([2]));
        // The id is free again.
        assert_eq!(c.ok("transact", json!(["T"])).await, json!([]));
    }
}

#[tokio::test]
async fn parked_wait_completes_after_another_sessions_write() {
    let (_b, s) = server();
    let mut c1 = connect(&s, false);
    let mut c2 = connect(&s, false);
    c1.send(json!({"id":"w","method":"transact","params":["T", {"op":"wait","table":"A","where":[["s","==","go"]],"columns":["s"],"until":"!=","rows":[],"timeout":100000}]})).await;
    assert_eq!(c1.ok("echo", json!([])).await, json!([]));
    c2.ok(
        "transact",
        json!(["T", {"op":"insert","table":"A","row":{"s":"go"}}]),
    )
    .await;
    let m = c1.recv().await.unwrap();
    assert_eq!(m, json!({"id":"w","result":[{}],"error":null}));
}

#[tokio::test]
async fn locks_and_notifications() {
    let (_b, s) = server();
    let mut a = connect(&s, false);
    let mut b = connect(&s, false);
    assert_eq!(a.ok("lock", json!(["L"])).await, json!({"locked":true}));
    let (m, _) = a.call("lock", json!(["L"])).await;
    assert_eq!(
        m["error"]["details"],
        json!("must issue \"unlock\" before new \"lock\"")
    );
    let (m, _) = a.call("steal", json!(["L"])).await;
    assert_eq!(
        m["error"]["details"],
        json!("must issue \"unlock\" before new \"steal\"")
    );
    assert_eq!(b.ok("lock", json!(["L"])).await, json!({"locked":false}));

    // assert sees the owner.
    let r = a
        .ok("transact", json!(["T", {"op":"assert","lock":"L"}]))
        .await;
    assert_eq!(r, json!([{}]));
    let r = b
        .ok("transact", json!(["T", {"op":"assert","lock":"L"}]))
        .await;
    assert_eq!(r[0]["error"], json!("not owner"));

    // The owner unlocks: the waiter is told, after its earlier reply.
    assert_eq!(a.ok("unlock", json!(["L"])).await, json!({}));
    assert_eq!(
        b.recv().await.unwrap(),
        json!({"id":null,"method":"locked","params":["L"]})
    );

    // Steal: the victim (who had used `lock`) is told and stays queued.
    assert_eq!(a.ok("steal", json!(["L"])).await, json!({"locked":true}));
    assert_eq!(
        b.recv().await.unwrap(),
        json!({"id":null,"method":"stolen","params":["L"]})
    );
    // The thief disconnects: the victim gets the lock back.
    drop(a);
    assert_eq!(
        b.recv().await.unwrap(),
        json!({"id":null,"method":"locked","params":["L"]})
    );
    let r = b
        .ok("transact", json!(["T", {"op":"assert","lock":"L"}]))
        .await;
    assert_eq!(r, json!([{}]));
}

#[tokio::test]
async fn session_close_is_reported_to_the_backend() {
    let (b, s) = server();
    let mut c = connect(&s, false);
    c.ok("echo", json!([])).await;
    assert_eq!(s.session_count(), 1);
    drop(c);
    for _ in 0..100 {
        if !b.closed.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.closed.lock().unwrap().len(), 1);
    assert_eq!(s.session_count(), 0);
}

#[tokio::test]
async fn server_database_reads_and_refused_writes() {
    let (b, s) = server();
    let mut c = connect(&s, false);
    let r = c
        .ok(
            "transact",
            json!(["_Server", {"op":"select","table":"Database","where":[],"columns":["name","model","leader","connected","cid","index"]}]),
        )
        .await;
    let rows = r[0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{r}");
    let t = rows.iter().find(|r| r["name"] == json!("T")).unwrap();
    assert_eq!(t["model"], json!("clustered"));
    assert_eq!(t["leader"], json!(true));
    assert_eq!(t["connected"], json!(true));
    assert_eq!(t["cid"], json!(["uuid", b.cid.to_string()]));
    assert_eq!(t["index"], json!(0));
    let me = rows.iter().find(|r| r["name"] == json!("_Server")).unwrap();
    assert_eq!(me["model"], json!("standalone"));
    assert_eq!(me["cid"], json!(["set", []]));

    let r = c
        .ok(
            "transact",
            json!(["_Server",
                {"op":"select","table":"Database","where":[["name","==","T"]],"columns":["name"]},
                {"op":"delete","table":"Database","where":[]},
                {"op":"insert","table":"Database","row":{}}]),
        )
        .await;
    assert_eq!(
        r,
        json!([{"rows":[{"name":"T"}]},{"error":"not allowed","details":"delete operation not allowed on table in reserved database _Server"},null])
    );
    // An unknown table is a parse error first, as in ovsdb-server.
    let r = c
        .ok(
            "transact",
            json!(["_Server", {"op":"comment","comment":"x"}, {"op":"update","table":"Nope","where":[],"row":{}}]),
        )
        .await;
    assert_eq!(r[0], json!({}));
    assert_eq!(r[1]["error"], json!("syntax error"), "{r}");

    // A write to T bumps the index; _Server follows. Nobody monitors `_Server` here, so the
    // move only marked it stale: the next read refreshes it before answering.
    c.insert_a().await;
    let r = c
        .ok(
            "transact",
            json!(["_Server", {"op":"select","table":"Database","where":[["name","==","T"]],"columns":["index"]}]),
        )
        .await;
    assert_eq!(r[0]["rows"][0]["index"], json!(1));
}

/// A replaced database (conversion, snapshot install): change-aware sessions get
/// `monitor_canceled` and `"canceled"`; unaware sessions that use it are disconnected;
/// sessions that do not use it are left alone.
#[tokio::test]
async fn replaced_database() {
    let (b, s) = server();
    let wait = json!(["T", {"op":"wait","table":"A","where":[["s","==","go"]],"columns":["s"],"until":"!=","rows":[],"timeout":100000}]);
    let mut aware = connect(&s, false);
    aware.ok("set_db_change_aware", json!([true])).await;
    aware
        .ok(
            "monitor_cond",
            json!(["T", "m", {"A": [{"columns": ["s"]}]}]),
        )
        .await;
    aware
        .ok(
            "monitor_cond",
            json!(["_Server", "s", {"Database": [{"columns": ["name"]}]}]),
        )
        .await;
    aware
        .send(json!({"id":"w","method":"transact","params":wait}))
        .await;
    let mut unaware_monitor = connect(&s, false);
    unaware_monitor
        .ok(
            "monitor_cond",
            json!(["T", "m", {"A": [{"columns": ["s"]}]}]),
        )
        .await;
    let mut unaware_waiting = connect(&s, false);
    unaware_waiting
        .send(json!({"id":"w","method":"transact","params":wait}))
        .await;
    let mut bystander = connect(&s, false);
    assert_eq!(bystander.ok("echo", json!([])).await, json!([]));
    // Make sure the parked transactions reached the backend.
    assert_eq!(aware.ok("echo", json!([0])).await, json!([0]));
    assert_eq!(unaware_waiting.ok("echo", json!([0])).await, json!([0]));

    b.replace_db("T");

    let mut got = Vec::new();
    while got.len() < 2 {
        let m = aware.recv().await.unwrap();
        if m["method"] == json!("update2") {
            continue; // _Server updates are allowed in between
        }
        got.push(m);
    }
    assert!(
        got.contains(&json!({"id":null,"method":"monitor_canceled","params":["m"]})),
        "{got:?}"
    );
    assert!(
        got.contains(&json!({"id":"w","error":"canceled"})),
        "{got:?}"
    );
    // The _Server monitor survives; the data monitor id is free again.
    let (m, _) = aware.call("monitor_cancel", json!(["m"])).await;
    assert_eq!(m["error"], json!("unknown monitor"));
    aware
        .ok(
            "monitor_cond",
            json!(["T", "m", {"A": [{"columns": ["s"]}]}]),
        )
        .await;

    assert!(unaware_monitor.closed().await);
    assert!(unaware_waiting.closed().await);
    assert_eq!(bystander.ok("echo", json!([1])).await, json!([1]));
}

/// A `_Server` transaction parked on a `wait` for the index is re-run when a write moves it,
/// although nobody monitors `_Server` (index moves then only mark it stale, unless a `_Server`
/// transaction is running or parked).
#[tokio::test]
async fn server_wait_on_index_wakes_on_a_write() {
    let (_b, s) = server();
    let mut waiter = connect(&s, false);
    let mut writer = connect(&s, false);
    waiter
        .send(json!({"id":"w","method":"transact","params":["_Server",
            {"op":"wait","table":"Database","where":[["name","==","T"]],"columns":["index"],
             "until":"==","rows":[{"index":1}],"timeout":60000}]}))
        .await;
    // Make sure the wait is parked before the write.
    assert_eq!(waiter.ok("echo", json!([0])).await, json!([0]));
    writer.insert_a().await;
    let reply = tokio::time::timeout(Duration::from_secs(10), waiter.recv())
        .await
        .expect("the parked _Server wait was not re-run after the write")
        .unwrap();
    assert_eq!(reply, json!({"id":"w","result":[{}],"error":null}));
}
