//! A Halyard cluster under test: one `halyard serve` process per member, each in its own network
//! namespace, and the process-level controls the faults use (SIGKILL, SIGSTOP/SIGCONT, restart,
//! join and kick).

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use halyard_raft::pb;
use halyard_raft::pb::member_client::MemberClient;
use halyard_raft::MemberReport;

use crate::netns::{member_ip, Net};

pub const CLIENT_PORT: u16 = 6641;
pub const RAFT_PORT: u16 = 6643;
pub const DB: &str = "Faults";

pub struct MemberProc {
    pub index: usize,
    pub ns: String,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
    pub paused: bool,
    /// Kicked out of the cluster (and stopped): not restarted, not read at the end.
    pub removed: bool,
}

impl MemberProc {
    pub fn name(&self) -> String {
        format!("m{}", self.index)
    }

    pub fn raft_addr(&self) -> String {
        format!("{}:{RAFT_PORT}", member_ip(self.index))
    }

    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from((member_ip(self.index), CLIENT_PORT))
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

pub struct Cluster {
    pub net: Net,
    bin: PathBuf,
    dir: PathBuf,
    schema: PathBuf,
    election_timer_ms: u64,
    unsafe_ack: bool,
    pub members: Vec<MemberProc>,
    /// Members at the start: membership changes return to this size.
    pub initial_size: usize,
    /// Members that exited without being told to, with their exit status, as found.
    pub exits: Vec<String>,
}

impl Cluster {
    pub fn new(net: Net, bin: &Path, dir: &Path, schema: &Path, election_timer_ms: u64) -> Cluster {
        Cluster {
            net,
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            schema: schema.to_path_buf(),
            election_timer_ms,
            unsafe_ack: false,
            members: Vec::new(),
            initial_size: 0,
            exits: Vec::new(),
        }
    }

    /// Creates an `n`-member cluster, one member at a time (each joins through the first and
    /// must be a voter before the next is added).
    pub async fn start(&mut self, n: usize) -> Result<()> {
        self.initial_size = n;
        for _ in 0..n {
            self.add_member().await?;
        }
        Ok(())
    }

    /// Members that are part of the cluster (not kicked).
    pub fn in_cluster(&self) -> Vec<usize> {
        self.members
            .iter()
            .filter(|m| !m.removed)
            .map(|m| m.index)
            .collect()
    }

    pub fn member(&self, index: usize) -> &MemberProc {
        &self.members[index - 1]
    }

    fn member_mut(&mut self, index: usize) -> &mut MemberProc {
        &mut self.members[index - 1]
    }

    /// Adds a new member: namespace, `create-cluster` (first) or `join-cluster` through the
    /// current members, `serve`; waits until it is a voter and answers clients.
    pub async fn add_member(&mut self) -> Result<usize> {
        self.add_member_as(false).await
    }

    /// Adds a member as [`Cluster::add_member`] does; `non_voting`: with `join-cluster
    /// --non-voting`, and waits until it is in the membership as a learner (not a voter).
    pub async fn add_member_as(&mut self, non_voting: bool) -> Result<usize> {
        let index = self.members.len() + 1;
        let ns = self.net.add_host(&format!("m{index}"), member_ip(index))?;
        let data_dir = self.dir.join(format!("m{index}"));
        let raft = format!("{}:{RAFT_PORT}", member_ip(index));
        let peers: Vec<String> = self
            .in_cluster()
            .iter()
            .map(|i| self.member(*i).raft_addr())
            .collect();
        let dd = data_dir.to_str().context("non-UTF-8 work directory")?;
        let mut args: Vec<String> = Vec::new();
        if peers.is_empty() {
            let schema = self.schema.to_str().context("non-UTF-8 schema path")?;
            args.extend(
                [
                    "create-cluster",
                    "--data-dir",
                    dd,
                    "--schema",
                    schema,
                    "--raft-addr",
                    &raft,
                ]
                .map(String::from),
            );
        } else {
            args.extend(["join-cluster", "--data-dir", dd, "--raft-addr", &raft].map(String::from));
            for p in &peers {
                args.push("--peer".into());
                args.push(p.clone());
            }
            if non_voting {
                args.push("--non-voting".into());
            }
        }
        let out = Command::new(&self.bin)
            .args(&args)
            .output()
            .with_context(|| format!("running {}", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "halyard {} failed: {}",
                args[0],
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.members.push(MemberProc {
            index,
            ns,
            data_dir,
            child: None,
            paused: false,
            removed: false,
        });
        self.spawn(index)?;
        let deadline = Instant::now() + Duration::from_secs(90);
        let addr = self.member(index).raft_addr();
        loop {
            if let Some(status) = self.leader_status().await {
                let voter = status.peer_at(&addr).is_some_and(|m| m.voter != non_voting);
                if voter
                    && crate::workload::list_dbs(self.member(index).client_addr())
                        .await
                        .is_some_and(|d| d.contains(&DB.to_string()))
                {
                    return Ok(index);
                }
            }
            if Instant::now() > deadline {
                let what = if non_voting {
                    "a non-voting member"
                } else {
                    "a voter"
                };
                bail!("member m{index} did not become {what} serving {DB} within 90 s (see {}/m{index}.log)", self.dir.display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Restarts every member with `--unsafe-ack-before-commit` (the broken mode), once
    /// the suite's own setup has been committed normally.
    pub async fn restart_unsafe(&mut self) -> Result<()> {
        self.unsafe_ack = true;
        for i in self.in_cluster() {
            self.kill(i);
            self.spawn(i)?;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in self.in_cluster() {
            while !crate::workload::list_dbs(self.member(i).client_addr())
                .await
                .is_some_and(|d| d.contains(&DB.to_string()))
            {
                if Instant::now() > deadline {
                    bail!(
                        "m{i} did not come back within 60 s after the restart into the broken mode"
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.wait_leader(Duration::from_secs(60))
            .await
            .context("no leader after the restart into the broken mode")?;
        Ok(())
    }

    /// Starts `halyard serve` for a member that is not running.
    pub fn spawn(&mut self, index: usize) -> Result<()> {
        let log_path = self.dir.join(format!("m{index}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let m = self.member(index);
        let remote = format!("ptcp:{CLIENT_PORT}:{}", member_ip(index));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &m.ns])
            .arg(&self.bin)
            .args(["serve", "--data-dir"])
            .arg(&m.data_dir)
            .args([
                "--remote",
                &remote,
                "--election-timer",
                &self.election_timer_ms.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if self.unsafe_ack {
            cmd.arg("--unsafe-ack-before-commit");
        }
        let child = cmd.spawn().context("starting halyard serve")?;
        // `ip netns exec` execs the program: this pid is halyard's own.
        let mut pids = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("pids"))?;
        writeln!(pids, "{}", child.id())?;
        let m = self.member_mut(index);
        m.child = Some(child);
        m.paused = false;
        Ok(())
    }

    fn signal(&mut self, index: usize, sig: i32) {
        if let Some(child) = &self.member(index).child {
            // SAFETY: kill(2) on a child we started and have not reaped.
            unsafe { libc::kill(child.id() as i32, sig) };
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self, index: usize) {
        self.signal(index, libc::SIGKILL);
        if let Some(mut child) = self.member_mut(index).child.take() {
            let _ = child.wait();
        }
        self.member_mut(index).paused = false;
    }

    pub fn pause(&mut self, index: usize) {
        self.signal(index, libc::SIGSTOP);
        self.member_mut(index).paused = true;
    }

    pub fn resume(&mut self, index: usize) {
        self.signal(index, libc::SIGCONT);
        self.member_mut(index).paused = false;
    }

    /// `halyard promote` of the non-voting member `index` (run from the client namespace,
    /// through a live member).
    pub async fn promote(&mut self, index: usize, through: usize) -> Result<String> {
        self.admin("promote", index, through).await
    }

    /// `halyard COMMAND --peer THROUGH MEMBER` from the client namespace; its output.
    async fn admin(&self, command: &'static str, index: usize, through: usize) -> Result<String> {
        let target = self.member(index).raft_addr();
        let peer = self.member(through).raft_addr();
        let bin = self.bin.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(bin)
                .args([command, "--peer", &peer, &target])
                .output()
        })
        .await??;
        if !out.status.success() {
            bail!(
                "halyard {command} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `halyard kick` (run from the client namespace, through a live member), then stops it.
    pub async fn kick(&mut self, index: usize, through: usize) -> Result<String> {
        let out = match self.admin("kick", index, through).await {
            Ok(out) => out,
            // The change may have been committed all the same (the answer was lost, or came
            // after a leader change): a member already out of the configuration is removed,
            // or the suite would restart it, again and again, as if it had crashed.
            Err(e) => {
                let target = self.member(index).raft_addr();
                let report = self.status(through).await;
                match report {
                    Some(r) if !r.members.iter().any(|p| p.address == target) => {
                        format!("{e:#}; but m{index} is no longer a member")
                    }
                    _ => return Err(e),
                }
            }
        };
        self.member_mut(index).removed = true;
        self.kill(index);
        Ok(out)
    }

    /// Cuts the links between members `a` and `b` (rules in `a`'s namespace, both directions).
    pub fn cut(&self, a: usize, b: usize) -> Result<()> {
        self.net.cut(&self.member(a).ns, member_ip(b))?;
        Ok(())
    }

    /// Reaps members that exited on their own (a crash: the suite never stops one without
    /// reaping it), recording them; they count as not running, so healing restarts them.
    pub fn reap_exited(&mut self) {
        for m in self.members.iter_mut() {
            let Some(child) = m.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                self.exits.push(format!(
                    "m{} exited on its own ({status}); see {}/m{}.log",
                    m.index,
                    self.dir.display(),
                    m.index
                ));
                m.child = None;
                m.paused = false;
            }
        }
    }

    /// Removes every partition, resumes paused members, restarts killed ones.
    pub fn heal_all(&mut self) -> Result<()> {
        self.reap_exited();
        for i in self.in_cluster() {
            self.net.heal(&self.member(i).ns.clone())?;
            if self.member(i).paused {
                self.resume(i);
            }
            if !self.member(i).running() {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// The report of member `index` (over its Raft port), if it answers in time.
    pub async fn status(&self, index: usize) -> Option<MemberReport> {
        member_status(&self.member(index).raft_addr()).await
    }

    /// The member currently leading (highest term among those that say they lead).
    /// Waits until member `index` answers a status request, or until `deadline`.
    pub async fn wait_answering(&self, index: usize, deadline: tokio::time::Instant) {
        while self.status(index).await.is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in self.in_cluster() {
            let m = self.member(i);
            if !m.running() || m.paused {
                continue;
            }
            if let Some(s) = self.status(i).await {
                if s.is_leader() && best.is_none_or(|(t, _)| s.term > t) {
                    best = Some((s.term, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Waits (up to `within`) for a leader, returning it.
    pub async fn wait_leader(&self, within: Duration) -> Option<usize> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.leader().await {
                return Some(l);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn leader_status(&self) -> Option<MemberReport> {
        let l = self.leader().await?;
        self.status(l).await
    }

    /// Stops every member (SIGCONT first so a paused one can die) and deletes the namespaces.
    pub fn shutdown(&mut self) {
        for i in 1..=self.members.len() {
            self.signal(i, libc::SIGCONT);
            self.kill(i);
        }
        self.net.destroy();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A member's report of itself through the member-to-member gRPC service.
pub async fn member_status(raft_addr: &str) -> Option<MemberReport> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{raft_addr}"))
        .ok()?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2));
    let channel = tokio::time::timeout(Duration::from_secs(2), endpoint.connect())
        .await
        .ok()?
        .ok()?;
    let reply = MemberClient::new(channel).status(pb::Empty {}).await.ok()?;
    serde_json::from_str(&reply.into_inner().json).ok()
}
