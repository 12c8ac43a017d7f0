//! The suite's private network: one Linux network namespace per cluster member and one for the
//! clients, each with a veth pair to a bridge that lives in a namespace of its own. The address
//! range (10.77.0.0/24) exists only inside these namespaces, so nothing the suite does can reach
//! or disturb another host, and partitions are real packet loss (iptables DROP rules inside a
//! member's namespace), not switches inside Halyard.
//!
//! Needs root (CAP_NET_ADMIN) and the `ip` and `iptables` tools.

use std::net::Ipv4Addr;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {ns}: {source}")]
    Enter { ns: String, source: std::io::Error },
}

/// The client namespace's address; members are 10.77.0.(10+i).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

pub fn member_ip(index: usize) -> Ipv4Addr {
    assert!(
        (1..=200).contains(&index),
        "member index out of the suite's range"
    );
    Ipv4Addr::new(10, 77, 0, 10 + index as u8)
}

/// Runs a command, failing with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, NetError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| NetError::Spawn {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError::Command {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The namespaces of one run, named `hfx-TAG-*`; deleted when dropped.
pub struct Net {
    tag: String,
    bridge_ns: String,
    hosts: Vec<String>,
}

impl Net {
    /// Creates the bridge namespace and the client namespace.
    pub fn create(tag: &str) -> Result<Net, NetError> {
        let bridge_ns = format!("hfx-{tag}-br");
        let mut net = Net {
            tag: tag.to_string(),
            bridge_ns: bridge_ns.clone(),
            hosts: Vec::new(),
        };
        run("ip", &["netns", "add", &bridge_ns])?;
        run("ip", &["-n", &bridge_ns, "link", "set", "lo", "up"])?;
        run(
            "ip",
            &["-n", &bridge_ns, "link", "add", "br0", "type", "bridge"],
        )?;
        run("ip", &["-n", &bridge_ns, "link", "set", "br0", "up"])?;
        net.add_host("cl", CLIENT_IP)?;
        Ok(net)
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn ns_name(&self, host: &str) -> String {
        format!("hfx-{}-{host}", self.tag)
    }

    /// Creates namespace `hfx-TAG-HOST` with `ip`/24 on eth0, plugged into the bridge.
    pub fn add_host(&mut self, host: &str, ip: Ipv4Addr) -> Result<String, NetError> {
        let ns = self.ns_name(host);
        run("ip", &["netns", "add", &ns])?;
        self.hosts.push(ns.clone());
        let port = format!("p{host}");
        run(
            "ip",
            &[
                "-n",
                &self.bridge_ns,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ],
        )?;
        run(
            "ip",
            &[
                "-n",
                &self.bridge_ns,
                "link",
                "set",
                &port,
                "master",
                "br0",
                "up",
            ],
        )?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        run(
            "ip",
            &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        )?;
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        Ok(ns)
    }

    /// Moves the calling thread into the client namespace. Called before any other thread is
    /// started: threads created afterwards (the async runtime's) inherit it.
    pub fn enter_client(&self) -> Result<(), NetError> {
        let ns = self.ns_name("cl");
        let path = format!("/run/netns/{ns}");
        let file = std::fs::File::open(&path).map_err(|source| NetError::Enter {
            ns: ns.clone(),
            source,
        })?;
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd affects only the calling thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(NetError::Enter {
                ns,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Drops all traffic between the host of namespace `ns` and `peer`, in both directions.
    pub fn cut(&self, ns: &str, peer: Ipv4Addr) -> Result<(), NetError> {
        let peer = peer.to_string();
        run(
            "ip",
            &[
                "netns", "exec", ns, "iptables", "-A", "INPUT", "-s", &peer, "-j", "DROP",
            ],
        )?;
        run(
            "ip",
            &[
                "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-d", &peer, "-j", "DROP",
            ],
        )?;
        Ok(())
    }

    /// Removes every filter rule in namespace `ns`.
    pub fn heal(&self, ns: &str) -> Result<(), NetError> {
        run("ip", &["netns", "exec", ns, "iptables", "-F"])?;
        Ok(())
    }

    /// Deletes every namespace of this run (processes still inside keep theirs alive until they
    /// exit, so members are stopped first).
    pub fn destroy(&mut self) {
        if self.bridge_ns.is_empty() {
            return;
        }
        for ns in self
            .hosts
            .drain(..)
            .chain(std::iter::once(self.bridge_ns.clone()))
        {
            if let Err(e) = run("ip", &["netns", "del", &ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        self.bridge_ns.clear();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.destroy();
    }
}
