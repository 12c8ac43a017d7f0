//! `halyard status`: the whole cluster seen from any member, for people (a table) and for
//! scripts (`--json`), with a health verdict and an exit status to match.
//!
//! How it reaches members: through the member-to-member gRPC `Status` call on their **Raft
//! addresses** — the addresses `ovs-appctl cluster/status` lists under `Servers:`. The first
//! member that answers names the others (its membership); each is then asked for its own view,
//! so a dead or partitioned member shows as such next to what the others report. `--control
//! PATH` starts from the member behind a local control socket instead (its `cluster/status`
//! names its Raft address), which needs no address at all on the member's own host.
//!
//! Exit status: 0 healthy; 2 degraded (the cluster has a leader and a quorum, but some member
//! is down, lagging or without a leader); 3 unhealthy (no leader or no quorum, or a member
//! named with `--remote`/`--control` is unhealthy); 1 when nothing could be asked at all.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use halyard_raft::{MemberReport, PeerReport};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one member may take to answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Default `--max-lag`: a member whose applied index is further behind the leader's log is
/// reported as lagging.
pub const DEFAULT_MAX_LAG: u64 = 1000;

/// A member whose match index (as the leader sees it) has not moved for this long while the
/// leader's log is ahead of it is reported as stalled, however few entries it lags: its
/// replication is not making progress.
pub const MAX_MATCH_STALL_MS: u64 = 5000;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Address of a member: its Raft address (`tcp:HOST:PORT`, `HOST:PORT`, or
    /// `ssl:HOST:PORT` with --private-key, --certificate and --ca-cert) or one of its plain
    /// client addresses (`tcp:HOST:6641`, `unix:PATH`); repeat for several. Any member will
    /// do: the others are found through it.
    #[arg(long = "remote", value_name = "tcp:HOST:PORT")]
    pub remotes: Vec<String>,
    /// The control socket of a local member (`halyard serve --unixctl`, by default
    /// DATA_DIR/halyard.ctl). With --remote as well, a dead local member is reported as such
    /// next to what the remote members say.
    #[arg(long, value_name = "PATH")]
    pub control: Option<std::path::PathBuf>,
    /// Print JSON (one document; with --watch one document per line).
    #[arg(long)]
    pub json: bool,
    /// Refresh every SECONDS (default 2) until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<u64>,
    /// A member whose applied index is more than this many entries behind the leader's log
    /// is "lagging".
    #[arg(long, default_value_t = DEFAULT_MAX_LAG)]
    pub max_lag: u64,
}

/// Runs `halyard status`.
pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let mut seeds = Vec::new();
        for r in &args.remotes {
            seeds.push(member_address(r).await?);
        }
        let mut control_error = None;
        match &args.control {
            None if seeds.is_empty() => {
                bail!("give --remote tcp:HOST:PORT (a member's Raft address) or --control PATH")
            }
            None => {}
            Some(path) => match raft_address_from_control(path).await {
                Ok(addr) => seeds.insert(0, addr),
                Err(e) if seeds.is_empty() => return Err(e),
                Err(e) => control_error = Some((path.display().to_string(), format!("{e:#}"))),
            },
        }
        loop {
            let mut report = gather(&seeds, args.max_lag).await;
            if let Some((path, error)) = &control_error {
                // The member named by --control is down: unhealthy, whatever the others say.
                report.named_unhealthy = true;
                report.doc["control"] = json!({"path": path, "reachable": false, "error": error});
            }
            let code = report.exit_code();
            let mut out = std::io::stdout().lock();
            if args.json {
                let text = if args.watch.is_some() {
                    report.doc.to_string()
                } else {
                    serde_json::to_string_pretty(&report.doc)?
                };
                writeln!(out, "{text}")?;
            } else {
                if args.watch.is_some() {
                    write!(out, "\x1b[H\x1b[2J")?;
                }
                write!(out, "{}", table(&report.doc))?;
            }
            out.flush()?;
            match args.watch {
                Some(secs) => tokio::time::sleep(Duration::from_secs(secs.max(1))).await,
                None => return Ok(code),
            }
        }
    })
}

/// How long a client address gets to name its member's Raft address.
const CLIENT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The Raft address of the member at `remote` (as the member names itself when found through
/// a client address, else normalized, see [`normalize`]), which may be its Raft address or
/// one of its client addresses (`tcp:HOST:PORT`, `unix:PATH`): a client
/// address is asked with Halyard's `halyard_raft_address` JSON-RPC method. A TCP address that
/// does not answer that way is taken for a Raft address.
pub async fn member_address(remote: &str) -> Result<String> {
    if let Some(path) = remote.strip_prefix("unix:") {
        let lookup = async {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .with_context(|| format!("cannot connect to {remote}"))?;
            crate::backup::Client::new(stream)
                .call("halyard_raft_address", json!([]))
                .await
        };
        let addr = tokio::time::timeout(CLIENT_LOOKUP_TIMEOUT, lookup)
            .await
            .with_context(|| format!("{remote}: no answer within {CLIENT_LOOKUP_TIMEOUT:?}"))?
            .with_context(|| format!("{remote} did not name its member's Raft address"))?;
        let addr = addr
            .as_str()
            .with_context(|| format!("{remote}: bad answer {addr}"))?;
        normalize(addr)?;
        // As the member names itself, which is how the membership lists it.
        return Ok(addr.to_string());
    }
    let (tls, host_port) = halyard_raft::split_addr(remote);
    if !tls {
        let lookup = async {
            let stream = tokio::net::TcpStream::connect(host_port).await?;
            crate::backup::Client::new(stream)
                .call("halyard_raft_address", json!([]))
                .await
        };
        if let Ok(Ok(Value::String(addr))) =
            tokio::time::timeout(CLIENT_LOOKUP_TIMEOUT, lookup).await
        {
            tracing::debug!(client = %remote, raft = %addr, "found the member's Raft address through its client address");
            normalize(&addr)?;
            return Ok(addr);
        }
    }
    normalize(remote)
}

/// `tcp:HOST:PORT` or `HOST:PORT` → `HOST:PORT`; `ssl:HOST:PORT` stays as it is (members
/// name each other so in their membership).
fn normalize(remote: &str) -> Result<String> {
    let (tls, addr) = halyard_raft::split_addr(remote);
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(if tls {
            remote.to_string()
        } else {
            addr.to_string()
        }),
        _ => bail!(
            "--remote takes a member's Raft address, tcp:HOST:PORT or ssl:HOST:PORT, not {remote:?}"
        ),
    }
}

/// One unixctl request (the protocol ovs-appctl speaks) and its text result.
pub async fn unixctl_call(path: &Path, method: &str, params: &[&str]) -> Result<String> {
    let mut stream = tokio::net::UnixStream::connect(path)
        .await
        .with_context(|| {
            format!(
                "cannot connect to the control socket {} (is the member running?)",
                path.display()
            )
        })?;
    let req = json!({"id": 0, "method": method, "params": params});
    stream.write_all(req.to_string().as_bytes()).await?;
    let mut framer =
        halyard_server::framing::Framer::new(halyard_server::framing::DEFAULT_MAX_MESSAGE_SIZE);
    let reply = loop {
        if let Some(msg) = framer.next_message()? {
            break msg;
        }
        if stream.read_buf(framer.buffer_mut()).await? == 0 {
            bail!(
                "{}: the control socket closed without answering",
                path.display()
            );
        }
    };
    match reply.get("error") {
        Some(Value::String(e)) => bail!("{}: {}", path.display(), e.trim_end()),
        _ => Ok(reply["result"].as_str().unwrap_or_default().to_string()),
    }
}

/// The Raft address of the member behind a control socket (from its `cluster/status`).
async fn raft_address_from_control(path: &Path) -> Result<String> {
    let dbs = unixctl_call(path, "ovsdb-server/list-dbs", &[]).await?;
    let db = dbs.lines().find(|d| *d != "_Server").with_context(|| {
        format!(
            "the member behind {} serves no clustered database",
            path.display()
        )
    })?;
    let status = unixctl_call(path, "cluster/status", &[db]).await?;
    let addr = status
        .lines()
        .find_map(|l| l.strip_prefix("Address: "))
        .with_context(|| {
            format!(
                "no Address: line in the cluster/status of {}",
                path.display()
            )
        })?;
    normalize(addr)
}

/// The status of every member that could be found, and the verdicts.
struct Report {
    doc: Value,
    named_unhealthy: bool,
}

impl Report {
    fn exit_code(&self) -> ExitCode {
        match self.doc["verdict"].as_str() {
            _ if self.named_unhealthy => ExitCode::from(3),
            Some("healthy") => ExitCode::SUCCESS,
            Some("degraded") => ExitCode::from(2),
            Some("unavailable") => ExitCode::from(3),
            _ => ExitCode::from(1),
        }
    }
}

/// Asks `addr` for its report, or says why it could not.
async fn ask(addr: &str) -> Result<MemberReport, String> {
    match tokio::time::timeout(QUERY_TIMEOUT, crate::admin::member_status(addr)).await {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!("no answer within {QUERY_TIMEOUT:?}")),
    }
}

async fn gather(seeds: &[String], max_lag: u64) -> Report {
    // address -> answer; the seeds first, then every member any answer names.
    let mut answers: BTreeMap<String, Result<MemberReport, String>> = BTreeMap::new();
    let mut pending: Vec<String> = seeds.to_vec();
    while !pending.is_empty() {
        let batch: Vec<String> = std::mem::take(&mut pending);
        let results = futures::future::join_all(batch.iter().map(|a| ask(a))).await;
        for (addr, result) in batch.into_iter().zip(results) {
            if let Ok(report) = &result {
                for m in &report.members {
                    let a = &m.address;
                    if !answers.contains_key(a) && !pending.contains(a) && *a != addr {
                        pending.push(a.clone());
                    }
                }
            }
            answers.insert(addr, result);
        }
        pending.retain(|p| !answers.contains_key(p));
    }
    assess(seeds, &answers, max_lag)
}

/// The membership as the freshest answer (highest term, then longest log) knows it.
fn membership(answers: &BTreeMap<String, Result<MemberReport, String>>) -> Vec<PeerReport> {
    answers
        .values()
        .filter_map(|r| r.as_ref().ok())
        .max_by_key(|d| (d.term, d.last_log_index))
        .map(|d| d.members.clone())
        .unwrap_or_default()
}

fn assess(
    seeds: &[String],
    answers: &BTreeMap<String, Result<MemberReport, String>>,
    max_lag: u64,
) -> Report {
    let members = membership(answers);
    // The leader: a member that says it leads, in the highest term.
    let leader = answers
        .values()
        .filter_map(|r| r.as_ref().ok())
        .filter(|d| d.is_leader())
        .max_by_key(|d| d.term);
    let leader_last = leader.and_then(|l| l.last_log_index);
    // Every address: the membership's, plus seeds that are not (or no longer) in it.
    let mut addrs: Vec<(Option<&PeerReport>, String)> = members
        .iter()
        .map(|m| (Some(m), m.address.clone()))
        .collect();
    for a in answers.keys() {
        if !addrs.iter().any(|(_, x)| x == a) {
            addrs.push((None, a.clone()));
        }
    }
    let mut rows = Vec::new();
    let mut voters_healthy = 0;
    let mut voters = 0;
    let mut all_healthy = true;
    let mut named_unhealthy = false;
    for (entry, addr) in &addrs {
        let voter = entry.map(|e| e.voter);
        let mut reasons: Vec<String> = Vec::new();
        let row = match answers.get(addr) {
            Some(Ok(doc)) => {
                let applied = doc.applied_index;
                let lag = leader_last.map(|l| l.saturating_sub(applied));
                let contact = if doc.is_leader() {
                    doc.millis_since_quorum_ack
                } else {
                    doc.millis_since_leader_contact
                };
                if !doc.running {
                    reasons.push("raft stopped on a fatal error".into());
                }
                if !doc.connected || doc.leader.is_none() {
                    reasons.push("not in contact with a leader".into());
                }
                if let (Some(l), Some(ld)) = (doc.leader, leader) {
                    if l != ld.id {
                        reasons.push(format!(
                            "follows {} but {} leads",
                            &hex(l)[..4],
                            &hex(ld.id)[..4]
                        ));
                    }
                }
                let in_leader_view = leader.and_then(|l| l.peer_at(addr));
                let stalled = in_leader_view
                    .and_then(|m| m.match_stalled_ms)
                    .filter(|ms| *ms > MAX_MATCH_STALL_MS);
                if let Some(ms) = stalled {
                    reasons.push(format!(
                        "replication stalled: its match index {} has not advanced for {} s \
                         while the leader's log is at {}",
                        in_leader_view
                            .and_then(|m| m.match_index)
                            .map_or("none".to_string(), |i| i.to_string()),
                        ms / 1000,
                        leader_last.unwrap_or(0)
                    ));
                }
                if lag.is_some_and(|l| l > max_lag) {
                    reasons.push(format!(
                        "{} entries behind the leader (bound {max_lag})",
                        lag.unwrap_or(0)
                    ));
                }
                // A learner that joined with --non-voting is healthy as one; any other is a
                // member catching up before it votes.
                if voter == Some(false) && !doc.non_voting {
                    reasons.push("learner: catching up before it votes".into());
                }
                if entry.is_none() {
                    reasons.push("not in the cluster's membership".into());
                }
                json!({
                    "id": hex(doc.id), "server_id": doc.server_id, "address": addr, "reachable": true,
                    "voter": voter, "role": doc.role, "term": doc.term, "leader": doc.leader.map(hex),
                    "vote": doc.vote.map(hex), "last_log_index": doc.last_log_index, "commit_index": doc.commit_index,
                    "applied_index": applied, "lag": lag, "last_contact_ms": contact,
                    "connections": doc.extra.get("connections"), "election_timer_ms": doc.election_timer_ms,
                    "databases": doc.databases, "status": doc,
                })
            }
            Some(Err(e)) => {
                reasons.push(format!("unreachable: {e}"));
                json!({
                    "id": entry.map(|e| hex(e.id)), "address": addr, "reachable": false,
                    "voter": voter, "error": e,
                })
            }
            None => {
                reasons.push("unreachable: not asked".into());
                json!({"id": entry.map(|e| hex(e.id)), "address": addr, "reachable": false, "voter": voter})
            }
        };
        let healthy = reasons.is_empty();
        if voter == Some(true) {
            voters += 1;
            if healthy {
                voters_healthy += 1;
            }
        }
        all_healthy &= healthy;
        if !healthy && seeds.iter().any(|s| s == addr) {
            named_unhealthy = true;
        }
        let mut row = row;
        row["health"] = json!(if healthy { "healthy" } else { "unhealthy" });
        row["reasons"] = json!(reasons);
        rows.push(row);
    }
    let quorum = voters > 0 && voters_healthy * 2 > voters;
    let verdict = if answers.values().all(|r| r.is_err()) {
        "unknown"
    } else if leader.is_none() || !quorum {
        "unavailable"
    } else if all_healthy {
        "healthy"
    } else {
        "degraded"
    };
    let cluster_id = answers
        .values()
        .filter_map(|r| r.as_ref().ok())
        .map(|d| d.cluster_id)
        .find(|id| !id.is_nil())
        .map(|id| id.to_string());
    let doc = json!({
        "cluster_id": cluster_id,
        "verdict": verdict,
        "leader": leader.map(|l| json!({"id": hex(l.id), "address": l.address, "term": l.term})),
        "voters": voters,
        "healthy_voters": voters_healthy,
        "members": rows,
    });
    Report {
        doc,
        named_unhealthy,
    }
}

fn hex(id: u64) -> String {
    format!("{id:016x}")
}

fn short(v: &Value) -> String {
    v.as_str()
        .map(|s| s.chars().take(4).collect())
        .unwrap_or_else(|| "-".into())
}

fn num(v: &Value) -> String {
    v.as_u64()
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into())
}

/// The human-readable form.
fn table(doc: &Value) -> String {
    let mut out = String::new();
    let leader = match doc["leader"].as_object() {
        Some(l) => format!(
            "leader {} at {}, term {}",
            short(&l["id"]),
            l["address"].as_str().unwrap_or("?"),
            num(&l["term"])
        ),
        None => "no leader".into(),
    };
    out.push_str(&format!(
        "cluster {}: {} ({leader}; {}/{} voters healthy)\n",
        doc["cluster_id"].as_str().unwrap_or("unknown"),
        doc["verdict"].as_str().unwrap_or("unknown"),
        num(&doc["healthy_voters"]),
        num(&doc["voters"]),
    ));
    let header = [
        "ID", "ADDRESS", "ROLE", "TERM", "LEADER", "VOTE", "LAST-LOG", "COMMIT", "APPLIED", "LAG",
        "CONTACT", "CONNS", "HEALTH",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    let mut notes = Vec::new();
    for m in doc["members"].as_array().into_iter().flatten() {
        let me = m["id"].as_str().map(str::to_string);
        let rel = |v: &Value| match (v.as_str(), &me) {
            (Some(x), Some(me)) if x == me => "self".to_string(),
            _ => short(v),
        };
        let role = match (m["reachable"].as_bool(), m["voter"].as_bool()) {
            (Some(false), _) => "down".to_string(),
            (_, Some(false)) => "learner".to_string(),
            _ => m["role"].as_str().unwrap_or("-").to_string(),
        };
        let contact = m["last_contact_ms"]
            .as_u64()
            .map(|ms| format!("{ms}ms"))
            .unwrap_or_else(|| "-".into());
        lines.push(vec![
            short(&m["id"]),
            m["address"].as_str().unwrap_or("-").to_string(),
            role,
            num(&m["term"]),
            rel(&m["leader"]),
            rel(&m["vote"]),
            num(&m["last_log_index"]),
            num(&m["commit_index"]),
            num(&m["applied_index"]),
            num(&m["lag"]),
            contact,
            num(&m["connections"]),
            m["health"].as_str().unwrap_or("-").to_string(),
        ]);
        for r in m["reasons"].as_array().into_iter().flatten() {
            notes.push(format!(
                "  {} ({}): {}",
                short(&m["id"]),
                m["address"].as_str().unwrap_or("-"),
                r.as_str().unwrap_or("")
            ));
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if let Some(c) = doc["control"].as_object() {
        notes.push(format!(
            "  local member ({}): {}",
            c["path"].as_str().unwrap_or("-"),
            c["error"].as_str().unwrap_or("-")
        ));
    }
    if !notes.is_empty() {
        out.push_str("problems:\n");
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn member_doc(id: &str, addr: &str, role: &str, applied: u64, members: Value) -> MemberReport {
        serde_json::from_value(json!({
            "id": id, "server_id": Uuid::new_v4(), "cluster_id": Uuid::new_v4(), "address": addr,
            "role": role, "non_voting": false, "term": 3, "leader": "aaaa000000000001",
            "leader_address": "a1", "vote": null, "vote_committed": true, "last_log_index": 100,
            "commit_index": applied, "applied_index": applied, "snapshot_index": null,
            "purged_index": null, "millis_since_quorum_ack": 10, "millis_since_leader_contact": 10,
            "connected": true, "digest": null, "election_timer_ms": 1000, "proposal_queue": 0,
            "forward_queue": 0, "read_queue": 0, "databases": [], "running": true,
            "members": members,
        }))
        .expect("a whole report")
    }

    #[test]
    fn a_follower_whose_replication_stalls_is_unhealthy_even_when_close_behind() {
        let members = |stalled: Option<u64>| {
            json!([
                {"id": "aaaa000000000001", "address": "a1", "voter": true, "match_index": 100},
                {"id": "bbbb000000000002", "address": "a2", "voter": true, "match_index": 90,
                 "match_stalled_ms": stalled},
                {"id": "cccc000000000003", "address": "a3", "voter": true, "match_index": 100},
            ])
        };
        let answers = |stalled: Option<u64>| -> BTreeMap<String, Result<MemberReport, String>> {
            [
                (
                    "a1",
                    member_doc("aaaa000000000001", "a1", "leader", 100, members(stalled)),
                ),
                (
                    "a2",
                    member_doc("bbbb000000000002", "a2", "follower", 90, members(None)),
                ),
                (
                    "a3",
                    member_doc("cccc000000000003", "a3", "follower", 100, members(None)),
                ),
            ]
            .into_iter()
            .map(|(a, d)| (a.to_string(), Ok(d)))
            .collect()
        };
        let seeds = vec!["a1".to_string()];
        // Ten entries behind and moving: healthy.
        let report = assess(&seeds, &answers(Some(300)), DEFAULT_MAX_LAG);
        assert_eq!(report.doc["verdict"], "healthy", "{:#}", report.doc);
        // The same ten entries, but not moving for 9 s: a stalled follower.
        let report = assess(&seeds, &answers(Some(9000)), DEFAULT_MAX_LAG);
        assert_eq!(report.doc["verdict"], "degraded", "{:#}", report.doc);
        let row = &report.doc["members"][1];
        assert_eq!(row["health"], "unhealthy");
        let text = table(&report.doc);
        assert!(
            text.contains("replication stalled: its match index 90 has not advanced for 9 s"),
            "{text}"
        );
    }
}
