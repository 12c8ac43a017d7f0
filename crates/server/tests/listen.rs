//! The server on real sockets: several remotes at once, TCP and unix, and the inactivity
//! probe applying to TCP only.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use halyard_server::{Server, ServerConfig};
use serde_json::{json, Value};
use support::{TestBackend, TEST_SCHEMA};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

async fn roundtrip<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, msg: Value) -> Value {
    s.write_all(&serde_json::to_vec(&msg).unwrap())
        .await
        .unwrap();
    read_one(s).await.expect("reply")
}

async fn read_one<S: AsyncRead + Unpin>(s: &mut S) -> Option<Value> {
    let mut f = halyard_server::framing::Framer::new(1 << 20);
    loop {
        if let Some(v) = f.next_message().unwrap() {
            return Some(v);
        }
        let buf = f.buffer_mut();
        buf.reserve(4096);
        if s.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

#[tokio::test]
async fn tcp_and_unix_together_with_probe_on_tcp_only() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("db.sock");
    let backend = TestBackend::new(&[TEST_SCHEMA]);
    let server = Arc::new(
        Server::new(
            backend,
            ServerConfig::default().with_probe_interval_ms(1000),
        )
        .unwrap(),
    );
    let listeners = server
        .bind(&[
            "ptcp:0:127.0.0.1".to_string(),
            format!("punix:{}", sock.display()),
        ])
        .await
        .unwrap();
    let port = listeners[0].local_addr().unwrap().port();
    let srv = server.clone();
    let task = tokio::spawn(async move { srv.serve(listeners).await });

    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut unix = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let list = json!({"id":1,"method":"list_dbs","params":[]});
    let want = json!({"id":1,"result":["T","_Server"],"error":null});
    assert_eq!(roundtrip(&mut tcp, list.clone()).await, want);
    assert_eq!(roundtrip(&mut unix, list).await, want);

    let start = Instant::now();
    let probe = read_one(&mut tcp).await.unwrap();
    assert_eq!(probe, json!({"id":"echo","method":"echo","params":[]}));
    let t = start.elapsed();
    assert!(
        t >= Duration::from_millis(900) && t < Duration::from_millis(1900),
        "{t:?}"
    );
    // Unanswered: dropped one interval later.
    assert!(read_one(&mut tcp).await.is_none());

    // The unix session was never probed and is still alive.
    let echo = json!({"id":2,"method":"echo","params":[]});
    assert_eq!(roundtrip(&mut unix, echo).await["id"], json!(2));
    task.abort();
}

#[tokio::test]
async fn bad_remotes_fail_before_anything_listens() {
    let backend = TestBackend::new(&[TEST_SCHEMA]);
    let server = Server::new(backend, ServerConfig::default()).unwrap();
    let err = server
        .run(vec!["ptcp:0:127.0.0.1".into(), "tcp:1.2.3.4:5".into()])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tcp:1.2.3.4:5"), "{err}");
    assert!(server.run(vec![]).await.is_err());
}

#[tokio::test]
async fn connection_limit() {
    let backend = TestBackend::new(&[TEST_SCHEMA]);
    let server = Arc::new(
        Server::new(
            backend,
            ServerConfig {
                max_connections: 2,
                ..ServerConfig::default()
            },
        )
        .unwrap(),
    );
    let listeners = server
        .bind(&["ptcp:0:127.0.0.1".to_string()])
        .await
        .unwrap();
    let port = listeners[0].local_addr().unwrap().port();
    let srv = server.clone();
    let task = tokio::spawn(async move { srv.serve(listeners).await });
    let echo = json!({"id":1,"method":"echo","params":[]});
    let mut a = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut b = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    assert_eq!(roundtrip(&mut a, echo.clone()).await["id"], json!(1));
    assert_eq!(roundtrip(&mut b, echo.clone()).await["id"], json!(1));
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    assert!(
        read_one(&mut c).await.is_none(),
        "third connection is refused"
    );
    drop(a);
    // The slot frees once the first session has ended.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut d = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let _ = d.write_all(&serde_json::to_vec(&echo).unwrap()).await;
        if read_one(&mut d).await.is_some() {
            ok = true;
            break;
        }
    }
    assert!(ok);
    task.abort();
}
