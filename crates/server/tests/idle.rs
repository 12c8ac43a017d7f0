//! Idle sessions must be cheap: thousands of connected clients that send nothing should cost
//! a few KiB each. Alone in its own test binary so the RSS measurement is not disturbed by
//! other tests.

mod support;

use std::sync::Arc;
use std::time::Duration;

use halyard_server::Server;
use serde_json::json;
use support::{config, connect_with_buffer, TestBackend, TEST_SCHEMA};

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_sessions_are_cheap() {
    const N: usize = 5000;
    let b = TestBackend::new(&[TEST_SCHEMA]);
    let s = Arc::new(Server::new(b, config()).unwrap());
    // Warm up allocator and runtime.
    let mut warm = connect_with_buffer(&s, true, 256);
    assert_eq!(warm.ok("echo", json!([])).await, json!([]));

    let before = rss_bytes();
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        clients.push(connect_with_buffer(&s, true, 256));
    }
    // Let every session start and park on its first read.
    for _ in 0..100 {
        if s.session_count() == N + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.session_count(), N + 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let per_session = (rss_bytes().saturating_sub(before)) / N;
    eprintln!("idle session cost: about {per_session} bytes (client pipe ends included)");
    assert!(
        per_session < 16 * 1024,
        "{per_session} bytes per idle session"
    );

    // They are all alive and the server still answers promptly.
    let last = clients.last_mut().unwrap();
    assert_eq!(last.ok("echo", json!([1])).await, json!([1]));
    drop(clients);
}
