//! The control socket: the unixctl protocol `ovs-appctl` speaks (docs/ovsdb-protocol.md §7.2) and
//! the ovsdb-server commands OVN operators use on it (§7.3), answered from the Raft member.
//!
//! Protocol: JSON-RPC 1.0 on a Unix stream socket, one request at a time per connection, no
//! echo probes. Every param must be a string; a success is `{"result": TEXT, "error": null}`,
//! a failure `{"result": null, "error": TEXT}` (ovs-appctl then exits 2); non-empty texts end
//! with a newline. Argument-count and unknown-command errors use ovsdb-server's exact words.
//!
//! Halyard runs all its databases in one Raft group, so the `cluster/*` commands accept the
//! name of any database this member serves and report the same group.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use halyard_raft::{Member, MemberReport, Role};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::ops::Ops;

/// One command: its name, the usage `list-commands` shows, and its argument count bounds.
struct Spec {
    name: &'static str,
    usage: &'static str,
    min: usize,
    max: usize,
}

/// The ovsdb-server release whose behaviour Halyard reproduces (`version`).
const OVSDB_SERVER_VERSION: &str = "3.1.0";

const COMMANDS: &[Spec] = &[
    Spec {
        name: "cluster/change-election-timer",
        usage: "DB TIME",
        min: 2,
        max: 2,
    },
    Spec {
        name: "cluster/cid",
        usage: "DB",
        min: 1,
        max: 1,
    },
    Spec {
        name: "cluster/kick",
        usage: "DB SERVER",
        min: 2,
        max: 2,
    },
    Spec {
        name: "cluster/leave",
        usage: "DB",
        min: 1,
        max: 1,
    },
    Spec {
        name: "cluster/sid",
        usage: "DB",
        min: 1,
        max: 1,
    },
    Spec {
        name: "cluster/status",
        usage: "DB",
        min: 1,
        max: 1,
    },
    Spec {
        name: "exit",
        usage: "",
        min: 0,
        max: 0,
    },
    Spec {
        name: "list-commands",
        usage: "",
        min: 0,
        max: 0,
    },
    Spec {
        name: "memory/show",
        usage: "",
        min: 0,
        max: 0,
    },
    Spec {
        name: "ovsdb-server/add-remote",
        usage: "REMOTE",
        min: 1,
        max: 1,
    },
    Spec {
        name: "ovsdb-server/compact",
        usage: "",
        min: 0,
        max: 1,
    },
    Spec {
        name: "ovsdb-server/get-db-storage-status",
        usage: "DB",
        min: 1,
        max: 1,
    },
    Spec {
        name: "ovsdb-server/list-dbs",
        usage: "",
        min: 0,
        max: 0,
    },
    Spec {
        name: "ovsdb-server/list-remotes",
        usage: "",
        min: 0,
        max: 0,
    },
    Spec {
        name: "ovsdb-server/memory-trim-on-compaction",
        usage: "on|off",
        min: 1,
        max: 1,
    },
    Spec {
        name: "ovsdb-server/reconnect",
        usage: "",
        min: 0,
        max: 0,
    },
    Spec {
        name: "ovsdb-server/remove-remote",
        usage: "REMOTE",
        min: 1,
        max: 1,
    },
    Spec {
        name: "version",
        usage: "",
        min: 0,
        max: 0,
    },
    Spec {
        name: "vlog/list",
        usage: "",
        min: 0,
        max: 0,
    },
    Spec {
        name: "vlog/set",
        usage: "{spec | PATTERN:destination:pattern}",
        min: 0,
        max: usize::MAX,
    },
];

/// The built-in database every member serves besides the replicated ones.
const SERVER_DB: &str = "_Server";

/// How long `ovsdb-server/compact` waits for the snapshot to be built.
const COMPACT_WAIT: Duration = Duration::from_secs(120);

/// Binds the socket (replacing a stale socket file left by a previous run) and serves it.
pub async fn listen(ops: Arc<Ops>, path: &Path) -> std::io::Result<()> {
    if path.exists() {
        // A live member answering there means a second `serve` on the same socket: refuse.
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process is serving it",
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    tracing::info!(path = %path.display(), "control socket listening (ovs-appctl -t PATH)");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(connection(ops.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

async fn connection(ops: Arc<Ops>, mut stream: UnixStream) {
    let mut framer =
        halyard_server::framing::Framer::new(halyard_server::framing::DEFAULT_MAX_MESSAGE_SIZE);
    loop {
        let msg = match framer.next_message() {
            Ok(Some(msg)) => msg,
            Ok(None) => match stream.read_buf(framer.buffer_mut()).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
            Err(e) => {
                tracing::debug!("control socket: closing a connection: {e}");
                return;
            }
        };
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let params = msg
            .get("params")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let after = execute(&ops, &method, &params).await;
        let reply = match &after.reply {
            Ok(text) => json!({"id": id, "result": with_newline(text), "error": null}),
            Err(text) => json!({"id": id, "result": null, "error": with_newline(text)}),
        };
        if stream
            .write_all(reply.to_string().as_bytes())
            .await
            .is_err()
        {
            return;
        }
        let _ = stream.flush().await;
        if after.exit {
            ops.exit.notify_one();
        }
    }
}

/// The reply, and whether the process exits once it is sent.
struct Answer {
    reply: Result<String, String>,
    exit: bool,
}

impl From<Result<String, String>> for Answer {
    fn from(reply: Result<String, String>) -> Answer {
        Answer { reply, exit: false }
    }
}

fn with_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// Runs one command. Public for tests of the command layer without a socket.
async fn execute(ops: &Ops, method: &str, params: &[Value]) -> Answer {
    let Some(spec) = COMMANDS.iter().find(|c| c.name == method) else {
        return Err(format!("\"{method}\" is not a valid command (use \"list-commands\" to see a list of valid commands)"))
            .into();
    };
    if params.len() < spec.min {
        return Err(format!(
            "\"{method}\" command requires at least {} arguments",
            spec.min
        ))
        .into();
    }
    if params.len() > spec.max {
        return Err(format!(
            "\"{method}\" command takes at most {} arguments",
            spec.max
        ))
        .into();
    }
    let Some(args) = params
        .iter()
        .map(|p| p.as_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()
    else {
        return Err(format!("\"{method}\" command has non-string argument")).into();
    };
    let member = &ops.member;
    match method {
        "list-commands" => Ok(list_commands()).into(),
        // The last word is what ovs-lib's `stop_daemon` compares with 2.5.90 to decide that
        // `ovs-appctl exit` is understood: the ovsdb-server version Halyard answers like.
        "version" => Ok(format!(
            "ovsdb-server (Halyard {}) {OVSDB_SERVER_VERSION}",
            env!("CARGO_PKG_VERSION")
        ))
        .into(),
        "ovsdb-server/add-remote" => ops
            .server
            .add_remote(&args[0])
            .map(|()| String::new())
            .into(),
        "ovsdb-server/remove-remote" => ops
            .server
            .remove_remote(&args[0])
            .map(|()| String::new())
            .into(),
        "ovsdb-server/reconnect" => {
            let n = ops.server.reconnect();
            tracing::info!("ovsdb-server/reconnect: closed {n} client session(s)");
            Ok(String::new()).into()
        }
        "ovsdb-server/memory-trim-on-compaction" => match args[0].as_str() {
            "on" | "off" => {
                let on = args[0] == "on";
                let was = ops
                    .trim_on_compaction
                    .swap(on, std::sync::atomic::Ordering::Relaxed);
                if was != on {
                    tracing::info!(
                        "memory trimming after compaction {}.",
                        if on { "enabled" } else { "disabled" }
                    );
                }
                Ok(String::new()).into()
            }
            _ => Err("invalid argument".to_string()).into(),
        },
        "exit" => Answer {
            reply: Ok(String::new()),
            exit: true,
        },
        "ovsdb-server/list-dbs" => {
            let mut names = member.db_names();
            names.push(SERVER_DB.to_string());
            names.sort();
            Ok(names.iter().map(|n| format!("{n}\n")).collect()).into()
        }
        "ovsdb-server/list-remotes" => Ok(ops
            .server
            .remotes()
            .iter()
            .map(|r| format!("{r}\n"))
            .collect())
        .into(),
        "ovsdb-server/get-db-storage-status" => {
            if args[0] == SERVER_DB || member.db_names().contains(&args[0]) {
                Ok("status: ok".to_string()).into()
            } else {
                Err("no database by that name".to_string()).into()
            }
        }
        "ovsdb-server/compact" => compact(member, args.first()).await.into(),
        "memory/show" => Ok(memory_show(ops)).into(),
        "vlog/list" => Ok(crate::vlog::list()).into(),
        "vlog/set" => {
            for spec in &args {
                if let Err(e) = crate::vlog::set(spec) {
                    return Err(e).into();
                }
            }
            Ok(String::new()).into()
        }
        _ => {
            // cluster/*: the first argument names the database (the Raft group).
            if !member.db_names().contains(&args[0]) {
                return Err("unknown cluster".to_string()).into();
            }
            match method {
                "cluster/status" => Ok(cluster_status(member, &args[0])).into(),
                "cluster/cid" => {
                    let cid = member.identity().cluster_id;
                    if cid.is_nil() {
                        Err("cluster id not yet known".to_string()).into()
                    } else {
                        Ok(cid.to_string()).into()
                    }
                }
                "cluster/sid" => Ok(member.identity().server_id.to_string()).into(),
                "cluster/kick" => kick(member, &args[1]).await.into(),
                "cluster/leave" => match member.leave().await.map_err(|e| e.to_string()) {
                    Ok(()) => Answer {
                        reply: Ok(String::new()),
                        exit: true,
                    },
                    Err(e) => Err(e).into(),
                },
                "cluster/change-election-timer" => {
                    change_election_timer(member, &args[1]).await.into()
                }
                _ => unreachable!("every command in COMMANDS is handled"),
            }
        }
    }
}

/// ovsdb-server's `list-commands` layout: the name left-aligned in 23 columns, then the usage.
fn list_commands() -> String {
    let mut out = String::from("The available commands are:\n");
    for c in COMMANDS {
        out.push_str(&format!("  {:<23} {}\n", c.name, c.usage));
    }
    out
}

/// The first four hex digits of a server id: the short id ovsdb-server prints.
fn short(node_hex: &str) -> &str {
    &node_hex[..node_hex.len().min(4)]
}

/// A Raft address as ovsdb-server prints it: always with its `tcp:` or `ssl:` scheme.
fn with_scheme(addr: &str) -> String {
    if addr.starts_with("tcp:") || addr.starts_with("ssl:") {
        addr.to_string()
    } else {
        format!("tcp:{addr}")
    }
}

fn node_hex(id: u64) -> String {
    format!("{id:016x}")
}

/// `cluster/status DB` in ovsdb-server's layout (docs/ovsdb-protocol.md §7.3). Lines whose data
/// Halyard does not have (election history, disconnection count) are left out rather than
/// invented.
pub fn cluster_status(member: &Member, db: &str) -> String {
    let r = member.report();
    let me = r.id;
    let sid = r.server_id.to_string();
    let in_membership = r.peer(me).is_some();
    let voter = r.peer(me).is_some_and(|p| p.voter);

    let mut out = String::new();
    out.push_str(&format!("{}\n", short(&sid)));
    out.push_str(&format!("Name: {db}\n"));
    if r.cluster_id.is_nil() {
        out.push_str("Cluster ID: not yet known\n");
    } else {
        let cid = r.cluster_id.to_string();
        out.push_str(&format!("Cluster ID: {} ({cid})\n", short(&cid)));
    }
    out.push_str(&format!("Server ID: {} ({sid})\n", short(&sid)));
    out.push_str(&format!("Address: {}\n", with_scheme(&r.address)));
    let state = if r.non_voting {
        if r.connected {
            "cluster member (non-voting)"
        } else {
            "disconnected from the cluster (non-voting)"
        }
    } else if r.cluster_id.is_nil() || (in_membership && !voter) {
        "joining cluster"
    } else if !in_membership {
        "left cluster"
    } else if !r.connected {
        "disconnected from the cluster (election timeout)"
    } else {
        "cluster member"
    };
    out.push_str(&format!("Status: {state}\n"));
    let is_leader = r.is_leader();
    if is_leader {
        for p in r.members.iter().filter(|p| !p.voter) {
            let h = node_hex(p.id);
            out.push_str(&format!(
                "Adding server {} ({} at {}) (catchup)\n",
                short(&h),
                short(&h),
                with_scheme(&p.address)
            ));
        }
    }
    let role = match r.role {
        // A learner is a member catching up before it votes: ovsdb-server's joining follower.
        Role::Learner => Role::Follower,
        role => role,
    };
    out.push_str(&format!("Role: {}\n", role.as_str()));
    out.push_str(&format!("Term: {}\n", r.term));
    let who = |id: Option<u64>| match id {
        Some(id) if id == me => "self".to_string(),
        Some(id) => short(&node_hex(id)).to_string(),
        None => "unknown".to_string(),
    };
    out.push_str(&format!("Leader: {}\n", who(r.leader)));
    out.push_str(&format!("Vote: {}\n", who(r.vote)));
    out.push('\n');
    out.push_str(&format!("Election timer: {}\n", r.election_timer_ms));
    let first = r.purged_index.map(|i| i + 1).unwrap_or(0);
    let end = r.last_log_index.map(|i| i + 1).unwrap_or(0);
    out.push_str(&format!("Log: [{first}, {end}]\n"));
    let last = r.last_log_index.unwrap_or(0);
    out.push_str(&format!(
        "Entries not yet committed: {}\n",
        last.saturating_sub(r.commit_index)
    ));
    out.push_str(&format!(
        "Entries not yet applied: {}\n",
        r.commit_index.saturating_sub(r.applied_index)
    ));
    out.push_str(&format!("Connections:{}\n", connections(&r)));
    out.push_str("Servers:\n");
    for p in r.voters() {
        let h = node_hex(p.id);
        let mut line = format!(
            "    {} ({} at {})",
            short(&h),
            short(&h),
            with_scheme(&p.address)
        );
        if p.id == me {
            line.push_str(" (self)");
        }
        if r.role == Role::Candidate && r.vote == Some(p.id) {
            line.push_str(&format!(" (voted for {})", short(&h)));
        }
        if is_leader {
            let matched = if p.id == me {
                r.last_log_index
            } else {
                p.match_index
            };
            let next = matched.map(|i| i + 1).unwrap_or(0);
            line.push_str(&format!(
                " next_index={next} match_index={}",
                matched.unwrap_or(0)
            ));
        }
        if p.id != me {
            if let Some(ms) = r.last_contact_ms(p.id) {
                line.push_str(&format!(" last msg {ms} ms ago"));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// ovsdb-server's `Connections:` list: `->id` for the peers this member sends to, `<-id` for
/// the peer it hears from, each in parentheses while it is not in contact (no message within
/// an election timeout).
fn connections(r: &MemberReport) -> String {
    let mut out = String::new();
    for p in r.members.iter().filter(|p| p.id != r.id) {
        let h = node_hex(p.id);
        let fresh = r
            .last_contact_ms(p.id)
            .is_some_and(|ms| ms < r.election_timer_ms);
        let dir = if r.is_leader() {
            "->"
        } else if r.leader == Some(p.id) {
            "<-"
        } else {
            continue;
        };
        if fresh {
            out.push_str(&format!(" {dir}{}", short(&h)));
        } else {
            out.push_str(&format!(" ({dir}{})", short(&h)));
        }
    }
    out
}

async fn compact(member: &Member, db: Option<&String>) -> Result<String, String> {
    if let Some(db) = db {
        if db == SERVER_DB {
            return Err("cannot compact built-in databases".into());
        }
        if !member.db_names().contains(db) {
            return Err("no database by that name".into());
        }
    }
    // All databases share one Raft log and are snapshotted together.
    match member.compact(COMPACT_WAIT).await {
        Ok(Some(_)) => Ok(String::new()),
        Ok(None) => Err("ovsdb error: not storing a duplicate snapshot".into()),
        Err(e) => Err(format!("ovsdb error: {e}")),
    }
}

/// `cluster/kick DB SERVER`: SERVER is a server id prefix or a Raft address (with or without
/// `tcp:`), as in ovsdb-server (see `MemberReport::find_member`).
async fn kick(member: &Member, server: &str) -> Result<String, String> {
    let node = match member.report().find_member(server) {
        Ok(p) => p.id,
        Err(_) => return Err("unknown server".to_string()),
    };
    match member.remove_through_leader(node).await {
        Ok(true) => Ok("started removal".into()),
        Ok(false) => Ok("sent removal request to leader".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `cluster/change-election-timer DB MS`: validated exactly as ovsdb-server does (same order,
/// same texts; it limits an increase to double the current timer, not a decrease), then
/// committed through the log, so every member runs with it (and keeps it across restarts).
async fn change_election_timer(member: &Member, value: &str) -> Result<String, String> {
    if !member.status().is_leader {
        return Err("election timer must be changed through leader.".into());
    }
    let current = member.election_timeout_ms();
    // atoll(): leading digits, 0 when there are none; a negative value wraps to a huge one.
    let trimmed = value.trim_start();
    let (neg, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let digits: String = digits.chars().take_while(|c| c.is_ascii_digit()).collect();
    let parsed = digits
        .parse::<u64>()
        .unwrap_or(if digits.is_empty() { 0 } else { u64::MAX });
    let requested = if neg && parsed != 0 { u64::MAX } else { parsed };
    if requested == current {
        return Ok("change election timer to current value.".into());
    }
    if !(100..=600_000).contains(&requested) {
        return Err("election timer must be between 100 and 600000, in msec.".into());
    }
    if requested > current * 2 {
        return Err("election timer increase should not exceed the current value x 2.".into());
    }
    member
        .set_election_timer(requested)
        .await
        .map_err(|e| format!("election timer change failed: {e}"))?;
    tracing::info!(from = current, to = requested, "election timer changed");
    Ok("change of election timer initiated.".into())
}

/// `memory/show`: counts that explain the member's memory use, `key:value` sorted by key.
fn memory_show(ops: &Ops) -> String {
    let r = ops.member.report();
    let (rows, cells, atoms, history, history_atoms) = ops.member.with_state(|s| {
        let (mut rows, mut cells, mut atoms, mut history, mut history_atoms) = (0, 0, 0, 0, 0);
        for d in s.dbs.values() {
            for table in &d.db.schema().tables {
                let n = d.db.row_count(&table.name);
                rows += n;
                cells += n * table.columns.len();
            }
            atoms += d.atoms();
            history += d.history.len();
            history_atoms += d.history.atoms();
        }
        (rows, cells, atoms, history, history_atoms)
    });
    let raft_log = match (r.last_log_index, r.purged_index) {
        (Some(last), Some(p)) => last - p,
        (Some(last), None) => last + 1,
        _ => 0,
    };
    let mut pairs = [
        ("atoms", atoms.to_string()),
        ("cells", cells.to_string()),
        ("txn-history", history.to_string()),
        ("txn-history-atoms", history_atoms.to_string()),
        ("raft-log", raft_log.to_string()),
        ("rows", rows.to_string()),
        ("monitors", ops.server.stats().monitors.to_string()),
        ("sessions", ops.server.session_count().to_string()),
        (
            "proposal-queue",
            ops.member.proposal_queue_len().to_string(),
        ),
        ("forward-queue", ops.member.forward_queue_len().to_string()),
        ("read-queue", ops.member.read_queue_len().to_string()),
        (
            "queued-command-bytes",
            ops.member.queued_command_bytes().to_string(),
        ),
        (
            "split-command-bytes",
            ops.member.incomplete_command_bytes().to_string(),
        ),
    ];
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}
