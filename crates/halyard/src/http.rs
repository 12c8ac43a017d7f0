//! The HTTP endpoint of a member (`halyard serve --http HOST:PORT`): `/metrics` in the
//! Prometheus text format and `/health` for load balancers and Kubernetes probes.
//!
//! `/health` answers 200 only when the member is in contact with a leader (so it can commit
//! writes and serve linearizable reads) and has applied the leader's log to within
//! `--health-max-lag` entries; otherwise 503. The body says why, one reason per line.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::ops::Ops;

/// Default `--health-max-lag`: a member this far behind still answers, but should not get
/// new clients from a load balancer.
pub const DEFAULT_HEALTH_MAX_LAG: u64 = 1000;

/// How long `/health` waits for the leader's own view of its log.
const LEADER_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct AppState {
    ops: Arc<Ops>,
    prometheus: PrometheusHandle,
}

/// Binds `addr` now (so a bad address fails at start) and serves in the background.
pub async fn serve(ops: Arc<Ops>, prometheus: PrometheusHandle, addr: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /health");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(AppState { ops, prometheus });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("HTTP endpoint stopped: {e}");
        }
    });
    Ok(())
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    app.prometheus.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.prometheus.render(),
    )
}

async fn health(State(app): State<AppState>) -> impl IntoResponse {
    let (healthy, body) = health_report(&app.ops).await;
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
}

/// The verdict and its explanation.
pub async fn health_report(ops: &Ops) -> (bool, String) {
    let member = &ops.member;
    let status = member.status();
    let mut reasons = Vec::new();
    if status.identity.cluster_id.is_nil() {
        reasons.push("not a cluster member yet (joining)".to_string());
    }
    if !status.connected {
        reasons.push(match status.leader {
            None => "no leader known (election in progress, or no quorum reachable)".to_string(),
            Some(l) => {
                format!("leader {l:016x} known but not heard from within the election timeout")
            }
        });
    }
    let applied = status.applied_index;
    let leader_last = if status.is_leader {
        Ok(status.last_log_index.unwrap_or(0))
    } else {
        match member.report().leader_address {
            Some(addr) => {
                match tokio::time::timeout(LEADER_QUERY_TIMEOUT, crate::admin::member_status(&addr))
                    .await
                {
                    Ok(Ok(s)) => Ok(s.last_log_index.unwrap_or(0)),
                    Ok(Err(e)) => Err(format!("cannot ask the leader for its log: {e:#}")),
                    Err(_) => Err(format!(
                        "the leader at {addr} did not answer within {LEADER_QUERY_TIMEOUT:?}"
                    )),
                }
            }
            None => Err("no leader to compare the applied index with".to_string()),
        }
    };
    let mut lag = None;
    match leader_last {
        Ok(last) => {
            let behind = last.saturating_sub(applied);
            lag = Some(behind);
            if behind > ops.health_max_lag {
                reasons.push(format!(
                    "applied index {applied} is {behind} entries behind the leader's log (bound {})",
                    ops.health_max_lag
                ));
            }
        }
        Err(e) => {
            if status.connected {
                reasons.push(e);
            }
        }
    }
    if reasons.is_empty() {
        let role = if status.is_leader {
            "leader"
        } else {
            "follower"
        };
        let leader = status
            .leader
            .map(|l| format!("{l:016x}"))
            .unwrap_or_default();
        (
            true,
            format!(
                "ok: {role}, leader {leader}, applied {applied}, lag {}\n",
                lag.unwrap_or(0)
            ),
        )
    } else {
        (
            false,
            reasons
                .iter()
                .map(|r| format!("unhealthy: {r}\n"))
                .collect(),
        )
    }
}
