//! TLS for clients (`pssl:` remotes) and between members (`ssl:` Raft addresses), with real
//! certificates from the real `ovs-pki` and the real OVS/OVN clients and `openssl s_client`:
//! - a 3-member cluster with `ssl:` Raft addresses serves `ovn-nbctl` and `ovsdb-client` over
//!   `ssl:` through every member; a plaintext client and a client whose certificate comes from
//!   another CA are refused with a log line; the Raft port speaks TLS (and nothing else);
//! - rotation: the server's key and certificate files replaced by a newly signed pair are used
//!   by the next connection (its serial is seen), while a session opened before keeps working;
//! - bad input (a stalled handshake, garbage bytes, an expired certificate, a wrong CA) gives a
//!   clear log line each and the member keeps serving a good client meanwhile;
//! - `halyard status` reaches members at `ssl:` addresses with the same options, and
//!   `halyard backup` reads a member over `ssl:`;
//! - `--ssl-protocols` and `--ssl-ciphers` restrict what a client can negotiate;
//! - a would-be member with a certificate from another CA cannot join (either side refuses);
//! - a cluster mixing `ssl:` and plain Raft addresses is refused at `join-cluster`, and TLS
//!   options that cannot be honoured are refused at `serve`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use halyard_testkit::cluster::*;

const T: Duration = Duration::from_secs(60);

/// A PKI made with `ovs-pki` (switch CA) in a directory, and certificates signed by it.
struct Pki {
    dir: PathBuf,
}

/// A private key and certificate pair.
#[derive(Clone)]
struct Cert {
    key: String,
    cert: String,
}

impl Pki {
    /// `ovs-pki --dir=DIR/NAME init`.
    fn init(parent: &Path, name: &str) -> Pki {
        let dir = parent.join(name);
        let out = ovs_pki(parent, &[&format!("--dir={}", dir.display()), "init"]);
        assert!(out.status.success(), "ovs-pki init: {out:?}");
        Pki { dir }
    }

    fn ca(&self) -> String {
        self.dir.join("switchca/cacert.pem").display().to_string()
    }

    /// `ovs-pki req+sign NAME switch` in the PKI's parent directory.
    fn sign(&self, name: &str) -> Cert {
        self.sign_with(name, &[])
    }

    /// `ovs-pki -u req+sign NAME switch`: the certificate's CN is exactly NAME (without `-u`
    /// ovs-pki appends an id, and RBAC compares the whole CN with the chassis name).
    fn sign_unique(&self, name: &str) -> Cert {
        self.sign_with(name, &["-u"])
    }

    fn sign_with(&self, name: &str, flags: &[&str]) -> Cert {
        let parent = self.dir.parent().unwrap();
        let dir = format!("--dir={}", self.dir.display());
        let mut args = vec![dir.as_str()];
        args.extend_from_slice(flags);
        args.extend(["req+sign", name, "switch"]);
        let out = ovs_pki(parent, &args);
        assert!(out.status.success(), "ovs-pki {args:?}: {out:?}");
        Cert {
            key: parent
                .join(format!("{name}-privkey.pem"))
                .display()
                .to_string(),
            cert: parent
                .join(format!("{name}-cert.pem"))
                .display()
                .to_string(),
        }
    }

    /// A certificate for NAME signed by this CA but valid only in January 2020.
    fn sign_expired(&self, name: &str) -> Cert {
        let parent = self.dir.parent().unwrap();
        let out = ovs_pki(
            parent,
            &[&format!("--dir={}", self.dir.display()), "req", name],
        );
        assert!(out.status.success(), "ovs-pki req {name}: {out:?}");
        let req = parent.join(format!("{name}-req.pem"));
        let cert = parent.join(format!("{name}-cert.pem"));
        let out = Command::new("openssl")
            .current_dir(self.dir.join("switchca"))
            .args(["ca", "-config", "ca.cnf", "-batch"])
            .args([
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
            ])
            .arg("-in")
            .arg(&req)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl ca: {out:?}");
        Cert {
            key: parent
                .join(format!("{name}-privkey.pem"))
                .display()
                .to_string(),
            cert: cert.display().to_string(),
        }
    }
}

fn ovs_pki(cwd: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .current_dir(cwd)
        .arg("120")
        .arg("ovs-pki")
        .arg(format!("--log={}", cwd.join("ovs-pki.log").display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The serial number (hex, as `openssl x509 -serial` prints it) of a PEM certificate file.
fn serial_of_file(cert: &str) -> String {
    let out = run_ok(
        "openssl",
        &["x509", "-noout", "-serial", "-in", cert],
        Duration::from_secs(10),
    );
    out.trim().trim_start_matches("serial=").to_string()
}

/// Connects with `openssl s_client` (presenting `client`, trusting `ca`) and returns its output
/// and the serial of the certificate the server presented.
fn s_client(port: u16, client: &Cert, ca: &str) -> (String, Option<String>) {
    s_client_with(port, client, ca, &[])
}

fn s_client_with(port: u16, client: &Cert, ca: &str, extra: &[&str]) -> (String, Option<String>) {
    s_client_in(&[], &format!("127.0.0.1:{port}"), client, ca, extra)
}

/// `openssl s_client` to `addr`, run behind `prefix` (e.g. `ip netns exec NS`): its output and
/// the serial of the certificate the server presented.
fn s_client_in(
    prefix: &[&str],
    addr: &str,
    client: &Cert,
    ca: &str,
    extra: &[&str],
) -> (String, Option<String>) {
    let (program, before) = match prefix.split_first() {
        Some((p, rest)) => (*p, rest),
        None => ("timeout", &[][..]),
    };
    let mut cmd = Command::new(program);
    cmd.args(before);
    if !prefix.is_empty() {
        cmd.arg("timeout");
    }
    let out = cmd
        .args(["20", "openssl", "s_client", "-connect", addr])
        .args(extra)
        .args(["-cert", &client.cert, "-key", &client.key, "-CAfile", ca])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The server certificate block, then its serial.
    let pem: String = {
        let start = text.find("-----BEGIN CERTIFICATE-----");
        let end = text.find("-----END CERTIFICATE-----");
        match (start, end) {
            (Some(s), Some(e)) => text[s..e + "-----END CERTIFICATE-----".len()].to_string(),
            _ => return (text, None),
        }
    };
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let serial = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_string();
    (text, Some(serial))
}

/// A Halyard cluster whose members talk TLS between themselves (`ssl:` Raft addresses) and
/// serve clients on `pssl:` (and on `ptcp:`, which the shared helpers use to wait for them).
struct TlsCluster {
    dir: tempfile::TempDir,
    pki: Pki,
    members: Vec<Member>,
    ssl_ports: Vec<u16>,
    certs: Vec<Cert>,
    /// A client certificate signed by the cluster's CA.
    client: Cert,
    /// More `serve` options for every member.
    extra: Vec<String>,
    /// The databases the cluster is created with.
    schemas: Vec<String>,
}

impl TlsCluster {
    fn start(n: usize) -> TlsCluster {
        TlsCluster::start_with(n, &[])
    }

    fn start_with(n: usize, extra: &[&str]) -> TlsCluster {
        TlsCluster::start_schemas(n, extra, &[NB_SCHEMA])
    }

    fn start_schemas(n: usize, extra: &[&str], schemas: &[&str]) -> TlsCluster {
        let dir = tempfile::Builder::new()
            .prefix("halyard-tls-")
            .tempdir()
            .unwrap();
        let pki = Pki::init(dir.path(), "pki");
        let client = pki.sign("client");
        let mut c = TlsCluster {
            dir,
            pki,
            members: Vec::new(),
            ssl_ports: Vec::new(),
            certs: Vec::new(),
            client,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            schemas: schemas.iter().map(|s| s.to_string()).collect(),
        };
        for _ in 0..n {
            c.add_member();
        }
        c
    }

    fn add_member(&mut self) {
        let index = self.members.len() + 1;
        let cert = self.pki.sign(&format!("m{index}"));
        let data_dir = self.dir.path().join(format!("m{index}"));
        let raft_addr = format!("ssl:127.0.0.1:{}", free_port());
        let mut args: Vec<String> = vec!["--data-dir".into(), data_dir.display().to_string()];
        if index == 1 {
            args.insert(0, "create-cluster".into());
            for schema in &self.schemas {
                args.extend(["--schema".into(), schema.clone()]);
            }
        } else {
            args.insert(0, "join-cluster".into());
            args.extend(["--peer".into(), self.members[0].raft_addr.clone()]);
        }
        args.extend(["--raft-addr".into(), raft_addr.clone()]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(halyard_bin(), &argv, T);
        let ssl_port = free_port();
        let mut serve_args = vec![
            "--remote".to_string(),
            format!("pssl:{ssl_port}:127.0.0.1"),
            "--private-key".into(),
            cert.key.clone(),
            "--certificate".into(),
            cert.cert.clone(),
            "--ca-cert".into(),
            self.pki.ca(),
        ];
        serve_args.extend(self.extra.iter().cloned());
        let mut m = Member {
            index,
            port: free_port(),
            raft_addr,
            data_dir,
            log: self.dir.path().join(format!("m{index}.log")),
            serve_args,
            proc: None,
        };
        m.start_and_wait("OVN_Northbound", UP_TIMEOUT);
        self.members.push(m);
        self.ssl_ports.push(ssl_port);
        self.certs.push(cert);
    }

    fn log(&self, index: usize) -> String {
        std::fs::read_to_string(&self.members[index - 1].log).unwrap_or_default()
    }

    /// Waits until member `index`'s log has a line containing every one of `words` and
    /// returns that line.
    fn wait_log_line(&self, index: usize, words: &[&str]) -> String {
        wait_until(
            &format!("a log line with {words:?} on m{index}"),
            Duration::from_secs(30),
            || {
                self.log(index)
                    .lines()
                    .find(|l| words.iter().all(|w| l.contains(w)))
                    .map(str::to_string)
            },
        )
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
        if std::thread::panicking() || std::env::var_os("HALYARD_KEEP").is_some() {
            let path = self.dir.path().to_path_buf();
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            let _ = kept.keep();
            eprintln!("cluster directory kept: {}", path.display());
        }
    }
}

/// `ovn-nbctl` over `ssl:` to `port` with `client`'s key and certificate, trusting `ca`.
fn nbctl(port: u16, client: &Cert, ca: &str, args: &[&str]) -> Output {
    let db = format!("--db=ssl:127.0.0.1:{port}");
    let mut argv = vec![
        "-p",
        &client.key,
        "-c",
        &client.cert,
        "-C",
        ca,
        db.as_str(),
        "--timeout=20",
    ];
    argv.extend_from_slice(args);
    run("ovn-nbctl", &argv, Duration::from_secs(40))
}

fn nbctl_ok(port: u16, client: &Cert, ca: &str, args: &[&str]) -> String {
    let out = nbctl(port, client, ca, args);
    assert!(
        out.status.success(),
        "ovn-nbctl {args:?} on {port}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tls_cluster_serves_real_clients_through_every_member() {
    let c = TlsCluster::start(3);
    let ca = c.pki.ca();

    // The members formed one cluster over TLS: every member lists the three ssl: addresses.
    for m in &c.members {
        let ctl = m.data_dir.join("halyard.ctl").display().to_string();
        let status = run_ok(
            "ovs-appctl",
            &["-t", &ctl, "cluster/status", "OVN_Northbound"],
            Duration::from_secs(20),
        );
        for other in &c.members {
            assert!(
                status.contains(&other.raft_addr),
                "m{} does not list {}:\n{status}",
                m.index,
                other.raft_addr
            );
        }
    }

    // `halyard status` reaches every member over TLS with a certificate of the PKI, and
    // refuses clearly without one.
    let status = run(
        halyard_bin(),
        &[
            "status",
            "--remote",
            &c.members[1].raft_addr,
            "--private-key",
            &c.client.key,
            "--certificate",
            &c.client.cert,
            "--ca-cert",
            &ca,
            "--json",
        ],
        T,
    );
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout)
        .unwrap_or_else(|e| panic!("status output: {e}: {status:?}"));
    assert_eq!(status.status.code(), Some(0), "{doc:#}");
    let text = doc.to_string();
    for m in &c.members {
        assert!(text.contains(&m.raft_addr), "{doc:#}");
    }
    let status = run(
        halyard_bin(),
        &["status", "--remote", &c.members[1].raft_addr],
        T,
    );
    let out = String::from_utf8_lossy(&status.stdout).into_owned()
        + &String::from_utf8_lossy(&status.stderr);
    assert_ne!(status.status.code(), Some(0), "{out}");
    assert!(out.contains("needs --private-key"), "{out}");

    // ovn-nbctl writes through every member, and every member shows every write.
    for (i, port) in c.ssl_ports.iter().enumerate() {
        nbctl_ok(*port, &c.client, &ca, &["ls-add", &format!("sw{}", i + 1)]);
    }
    for port in &c.ssl_ports {
        let listed = wait_until("every switch on every member", T, || {
            let l = nbctl_ok(*port, &c.client, &ca, &["ls-list"]);
            (l.contains("(sw1)") && l.contains("(sw2)") && l.contains("(sw3)")).then_some(l)
        });
        assert_eq!(listed.lines().count(), 3, "{listed}");
    }

    // ovsdb-client over ssl: too.
    for port in &c.ssl_ports {
        let remote = format!("ssl:127.0.0.1:{port}");
        let common = [
            "-p",
            c.client.key.as_str(),
            "-c",
            c.client.cert.as_str(),
            "-C",
            ca.as_str(),
            "--timeout=20",
        ];
        let mut argv = common.to_vec();
        argv.extend(["list-dbs", &remote]);
        let dbs = run_ok("ovsdb-client", &argv, Duration::from_secs(40));
        assert!(dbs.lines().any(|l| l == "OVN_Northbound"), "{dbs}");
        let mut argv = common.to_vec();
        argv.extend(["dump", &remote, "OVN_Northbound", "Logical_Switch", "name"]);
        let dump = run_ok("ovsdb-client", &argv, Duration::from_secs(40));
        assert!(dump.contains("sw3"), "{dump}");
    }
    // `halyard backup` over ssl: writes a database file ovsdb-tool reads.
    let backup = c.dir.path().join("nb-backup.db").display().to_string();
    run_ok(
        halyard_bin(),
        &[
            "backup",
            "--remote",
            &format!("ssl:127.0.0.1:{}", c.ssl_ports[2]),
            "-p",
            &c.client.key,
            "-c",
            &c.client.cert,
            "-C",
            &ca,
            "-o",
            &backup,
        ],
        T,
    );
    let names = run_ok(
        "ovsdb-tool",
        &[
            "query",
            &backup,
            r#"["OVN_Northbound",{"op":"select","table":"Logical_Switch","where":[],"columns":["name"]}]"#,
        ],
        T,
    );
    assert!(names.contains("sw1") && names.contains("sw3"), "{names}");

    // The session's identity is the certificate's CN, logged at accept.
    c.wait_log_line(1, &["TLS session established", "CN \"client id:"]);

    // A plaintext client on a pssl: port is refused.
    let plain = run(
        "ovn-nbctl",
        &[
            &format!("--db=tcp:127.0.0.1:{}", c.ssl_ports[0]),
            "--timeout=5",
            "ls-list",
        ],
        Duration::from_secs(20),
    );
    assert!(!plain.status.success(), "a plaintext client was served");
    c.wait_log_line(1, &["TLS handshake failed", "not a TLS client"]);

    // A client whose certificate another CA signed is refused (it trusts our CA, so the
    // refusal is the server's).
    let other = Pki::init(c.dir.path(), "other-pki");
    let stranger = other.sign("stranger");
    let refused = nbctl(c.ssl_ports[1], &stranger, &ca, &["ls-list"]);
    assert!(
        !refused.status.success(),
        "a client certificate from another CA was accepted"
    );
    let line = c.wait_log_line(2, &["TLS handshake failed", "invalid peer certificate"]);
    assert!(line.contains("UnknownIssuer"), "{line}");

    // The Raft port speaks TLS with the member's certificate (openssl s_client completes a
    // handshake and sees m1's serial) and nothing in clear: a plaintext gRPC call gets nothing.
    let raft_port: u16 = c.members[0]
        .raft_addr
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (text, serial) = s_client(raft_port, &c.client, &ca);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(
        text.contains("TLSv1.3") || text.contains("TLSv1.2"),
        "{text}"
    );
    assert_eq!(
        serial.as_deref(),
        Some(serial_of_file(&c.certs[0].cert).as_str())
    );
    assert!(
        raft_status(&format!("127.0.0.1:{raft_port}")).is_none(),
        "the Raft port answered plaintext gRPC"
    );
    // A peer that is not a member of the PKI cannot talk to the Raft port either.
    // (With TLS 1.3 the client may finish before the server's alert reaches it: the server's
    // log says it refused.)
    let _ = s_client(raft_port, &stranger, &ca);
    c.wait_log_line(
        1,
        &["member-to-member TLS handshake failed", "UnknownIssuer"],
    );
}

/// Replaces `dst` with the contents of `src` atomically (as a certificate manager does).
fn replace_file(src: &str, dst: &str) {
    let tmp = format!("{dst}.new");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dst).unwrap();
}

#[test]
fn rotated_certificate_is_used_by_new_connections_and_old_sessions_keep_working() {
    let c = TlsCluster::start(1);
    let ca = c.pki.ca();
    let port = c.ssl_ports[0];
    let old_serial = serial_of_file(&c.certs[0].cert);
    let (_, seen) = s_client(port, &c.client, &ca);
    assert_eq!(seen.as_deref(), Some(old_serial.as_str()));

    // An old session: ovsdb-client monitoring Logical_Switch names over ssl:.
    let monitor_out = c.dir.path().join("monitor.out");
    let mut monitor = {
        let mut cmd = Command::new("ovsdb-client");
        cmd.args(["-p", &c.client.key, "-c", &c.client.cert, "-C", &ca])
            .arg("monitor")
            .arg(format!("ssl:127.0.0.1:{port}"))
            .args(["OVN_Northbound", "Logical_Switch", "name"]);
        Proc::spawn("ovsdb-client monitor", cmd, &monitor_out)
    };
    nbctl_ok(port, &c.client, &ca, &["ls-add", "before"]);
    wait_until("the monitor sees `before`", T, || {
        std::fs::read_to_string(&monitor_out)
            .ok()
            .filter(|t| t.contains("before"))
    });

    // Rotation: a newly signed pair replaces the files in place.
    let new = c.pki.sign("m1-renewed");
    let new_serial = serial_of_file(&new.cert);
    assert_ne!(new_serial, old_serial);
    replace_file(&new.key, &c.certs[0].key);
    replace_file(&new.cert, &c.certs[0].cert);

    let seen = wait_until("a new connection sees the new certificate", T, || {
        let (_, s) = s_client(port, &c.client, &ca);
        s.filter(|s| *s == new_serial)
    });
    assert_eq!(seen, new_serial);
    c.wait_log_line(1, &["TLS: reloaded", &format!("serial {}", new_serial)]);
    // Clients work with the new certificate, and the old session still gets updates.
    nbctl_ok(port, &c.client, &ca, &["ls-add", "after"]);
    wait_until("the old session sees `after`", T, || {
        std::fs::read_to_string(&monitor_out)
            .ok()
            .filter(|t| t.contains("after"))
    });
    assert!(monitor.is_running(), "the old session ended");
    monitor.kill();

    // A broken replacement (a key that does not match the certificate) is logged and the
    // current certificate stays in use.
    let stray = c.pki.sign("stray");
    replace_file(&stray.key, &c.certs[0].key);
    // Files are checked when connections are accepted, at most once a RELOAD_CHECK_INTERVAL.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, seen) = s_client(port, &c.client, &ca);
    assert_eq!(seen.as_deref(), Some(new_serial.as_str()));
    c.wait_log_line(1, &["cannot be used", "keeping the previous ones"]);
    nbctl_ok(port, &c.client, &ca, &["ls-list"]);
}

#[test]
fn bad_tls_input_is_logged_and_the_member_keeps_serving() {
    let c = TlsCluster::start(1);
    let ca = c.pki.ca();
    let port = c.ssl_ports[0];

    // A client that connects and never starts its handshake.
    let stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Garbage instead of a ClientHello.
    let mut garbage = TcpStream::connect(("127.0.0.1", port)).unwrap();
    garbage
        .write_all(b"GET / HTTP/1.0\r\n\r\n{\"method\":\"list_dbs\"}")
        .unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = garbage.read_to_end(&mut buf);
    c.wait_log_line(1, &["TLS handshake failed", "not a TLS client"]);

    // Meanwhile (the stalled connection still open) a good client is served.
    nbctl_ok(port, &c.client, &ca, &["ls-add", "served"]);

    // An expired client certificate.
    let expired = c.pki.sign_expired("expired");
    let out = nbctl(port, &expired, &ca, &["ls-list"]);
    assert!(!out.status.success(), "an expired certificate was accepted");
    let line = c.wait_log_line(1, &["TLS handshake failed", "expired"]);
    assert!(line.contains("invalid peer certificate"), "{line}");

    // A certificate from another CA.
    let other = Pki::init(c.dir.path(), "other-pki");
    let stranger = other.sign("stranger");
    let out = nbctl(port, &stranger, &ca, &["ls-list"]);
    assert!(
        !out.status.success(),
        "a certificate from another CA was accepted"
    );
    c.wait_log_line(1, &["TLS handshake failed", "UnknownIssuer"]);

    // The stalled handshake is cut after HANDSHAKE_TIMEOUT.
    let started = Instant::now();
    c.wait_log_line(1, &["TLS handshake not completed within"]);
    let mut stalled = stalled;
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut one = [0u8; 1];
    assert_eq!(
        stalled.read(&mut one).unwrap_or(0),
        0,
        "the stalled connection was not closed"
    );
    assert!(started.elapsed() < Duration::from_secs(40));

    // Still serving.
    let l = nbctl_ok(port, &c.client, &ca, &["ls-list"]);
    assert!(l.contains("(served)"), "{l}");
}

#[test]
fn mixed_clusters_and_unusable_tls_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).display().to_string();

    // join-cluster with an ssl: address through a plain member, and the other way round.
    for (own, peer) in [
        ("ssl:127.0.0.1:1", "127.0.0.1:2"),
        ("tcp:127.0.0.1:1", "ssl:127.0.0.1:2"),
    ] {
        let out = run(
            halyard_bin(),
            &[
                "join-cluster",
                "--data-dir",
                &d("j"),
                "--raft-addr",
                own,
                "--peer",
                peer,
            ],
            T,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{own} joined through {peer}");
        assert!(err.contains("cannot mix ssl: and plain"), "{err}");
    }

    // A member whose Raft address is ssl: but that is given no key: a clear startup error.
    run_ok(
        halyard_bin(),
        &[
            "create-cluster",
            "--data-dir",
            &d("m"),
            "--schema",
            NB_SCHEMA,
            "--raft-addr",
            &format!("ssl:127.0.0.1:{}", free_port()),
        ],
        T,
    );
    let serve = |extra: &[&str]| {
        let mut argv = vec!["serve", "--data-dir"];
        let data = d("m");
        argv.push(&data);
        argv.extend_from_slice(extra);
        let out = run(halyard_bin(), &argv, T);
        assert!(!out.status.success(), "serve {extra:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = serve(&["--remote", "ptcp:0:127.0.0.1"]);
    assert!(
        err.contains("needs --private-key, --certificate and --ca-cert"),
        "{err}"
    );

    let pki = Pki::init(dir.path(), "pki");
    let m = pki.sign("m");
    let ca = pki.ca();
    let tls = ["-p", &m.key, "-c", &m.cert, "-C", &ca];
    let with = |more: &[&str]| -> Vec<String> {
        tls.iter()
            .chain(more.iter())
            .map(|s| s.to_string())
            .collect()
    };
    for (more, want) in [
        (
            vec![
                "--remote",
                "ptcp:0:127.0.0.1",
                "--ssl-protocols",
                "TLSv1,TLSv1.1",
            ],
            "not supported",
        ),
        (
            vec![
                "--remote",
                "ptcp:0:127.0.0.1",
                "--ssl-ciphers",
                "RC4-MD5:DES-CBC3-SHA",
            ],
            "selects no cipher suite",
        ),
        (
            vec![
                "--remote",
                "ptcp:0:127.0.0.1",
                "--ssl-ciphers",
                "MEDIUM:!HIGH",
            ],
            "selects no cipher suite",
        ),
        (
            vec![
                "--remote",
                "ptcp:0:127.0.0.1",
                "--bootstrap-ca-cert",
                "/tmp/x.pem",
            ],
            "not supported",
        ),
    ] {
        let args = with(&more);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = serve(&argv);
        assert!(err.contains(want), "{more:?}: {err}");
    }
    // A pssl: remote without key material.
    let err = serve(&["--remote", "pssl:0:127.0.0.1"]);
    assert!(
        err.contains("needs --private-key") || err.contains("pssl:"),
        "{err}"
    );
    // A key that does not belong to the certificate.
    let other = pki.sign("other");
    let err = serve(&[
        "-p",
        &other.key,
        "-c",
        &m.cert,
        "-C",
        &ca,
        "--remote",
        "pssl:0:127.0.0.1",
    ]);
    assert!(err.contains("do not go together"), "{err}");
}

#[test]
fn member_with_a_certificate_from_another_ca_cannot_join() {
    let c = TlsCluster::start(1);
    // A would-be member whose key, certificate and CA come from another PKI. ovs-pki names a
    // CA after the second it was made in: made in the same second as the cluster's, the other
    // CA has the same name, and rustls then reports a bad signature instead of an unknown
    // issuer (this test failed so once). A second apart, the names differ.
    std::thread::sleep(Duration::from_millis(1100));
    let other = Pki::init(c.dir.path(), "other-pki");
    let intruder = other.sign("intruder");
    let data_dir = c.dir.path().join("intruder");
    let raft_addr = format!("ssl:127.0.0.1:{}", free_port());
    run_ok(
        halyard_bin(),
        &[
            "join-cluster",
            "--data-dir",
            &data_dir.display().to_string(),
            "--raft-addr",
            &raft_addr,
            "--peer",
            &c.members[0].raft_addr,
        ],
        T,
    );
    let log = c.dir.path().join("intruder.log");
    let serve = |ca: &str| {
        let mut cmd = Command::new(halyard_bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--remote", &format!("ptcp:{}:127.0.0.1", free_port())])
            .args(["--private-key", &intruder.key])
            .args(["--certificate", &intruder.cert])
            .args(["--ca-cert", ca]);
        Proc::spawn("intruder", cmd, &log)
    };
    let intruder_line = |words: &[&str]| {
        wait_until(&format!("{words:?} in the intruder's log"), T, || {
            std::fs::read_to_string(&log).ok().and_then(|t| {
                t.lines()
                    .find(|l| words.iter().all(|w| l.contains(w)))
                    .map(str::to_string)
            })
        })
    };
    // Trusting its own CA, the intruder refuses the member's certificate (the joiner verifies
    // the member it dials).
    let mut p = serve(&other.ca());
    intruder_line(&["TLS handshake with member failed", "UnknownIssuer"]);
    c.wait_log_line(1, &["member-to-member TLS handshake failed", "UnknownCA"]);
    p.kill();
    // Trusting our CA, its own certificate is refused by the member.
    let mut p = serve(&c.pki.ca());
    c.wait_log_line(
        1,
        &["member-to-member TLS handshake failed", "UnknownIssuer"],
    );
    p.kill();
    // The cluster still has one member and still serves.
    let ctl = c.members[0]
        .data_dir
        .join("halyard.ctl")
        .display()
        .to_string();
    let status = run_ok(
        "ovs-appctl",
        &["-t", &ctl, "cluster/status", "OVN_Northbound"],
        Duration::from_secs(20),
    );
    assert!(!status.contains(&raft_addr), "{status}");
    nbctl_ok(
        c.ssl_ports[0],
        &c.client,
        &c.pki.ca(),
        &["ls-add", "still-here"],
    );
}

#[test]
fn ssl_protocols_and_ciphers_are_applied() {
    let c = TlsCluster::start_with(
        1,
        &[
            "--ssl-protocols",
            "TLSv1,TLSv1.1,TLSv1.2",
            "--ssl-ciphers",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ],
    );
    let ca = c.pki.ca();
    let port = c.ssl_ports[0];
    // ovsdb-server 3.1's protocol list: TLSv1 and TLSv1.1 are dropped with a warning.
    c.wait_log_line(1, &["ignoring TLSv1, TLSv1.1"]);
    let (text, serial) = s_client(port, &c.client, &ca);
    assert!(serial.is_some(), "{text}");
    assert!(
        text.contains("TLSv1.2") && text.contains("ECDHE-RSA-AES128-GCM-SHA256"),
        "{text}"
    );
    // TLS 1.3 was not allowed, nor another TLS 1.2 suite.
    let (text, serial) = s_client_with(port, &c.client, &ca, &["-tls1_3"]);
    assert!(serial.is_none(), "{text}");
    c.wait_log_line(1, &["TLS handshake failed", "peer is incompatible"]);
    let (text, serial) = s_client_with(
        port,
        &c.client,
        &ca,
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"],
    );
    assert!(serial.is_none(), "{text}");
    assert!(
        !c.log(1).contains("no suite Halyard supports matches"),
        "a supported suite was reported unknown"
    );
    // OVN's tools with their default options still connect.
    nbctl_ok(port, &c.client, &ca, &["ls-add", "sw"]);
}

/// `ovn-ctl`'s command line: listeners and every SSL option from the database
/// (`--remote=db:...,connections`, `--private-key=db:OVN_Northbound,SSL,private_key`...), no
/// command-line certificate. `ovn-nbctl set-ssl` + `set-connection pssl:PORT` over the unix
/// socket, then a TLS client with the CA's certificate works; a plaintext one is refused.
#[test]
fn ssl_options_and_listeners_from_the_database_like_ovn_ctl() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(tmp.path(), "pki");
    let server = pki.sign("server");
    let client = pki.sign("client");
    let db = "OVN_Northbound";
    let args: Vec<String> = vec![
        "--remote".into(),
        format!("db:{db},NB_Global,connections"),
        format!("--private-key=db:{db},SSL,private_key"),
        format!("--certificate=db:{db},SSL,certificate"),
        format!("--ca-cert=db:{db},SSL,ca_cert"),
        format!("--ssl-protocols=db:{db},SSL,ssl_protocols"),
        format!("--ssl-ciphers=db:{db},SSL,ssl_ciphers"),
    ];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cluster = Cluster::start(3, &[NB_SCHEMA], &argv);
    cluster.wait_leader(Duration::from_secs(60));
    let plain = cluster.members[0].remote();
    let nb = |a: &[&str]| {
        let d = format!("--db={plain}");
        let mut all = vec![d.as_str(), "--timeout=20"];
        all.extend_from_slice(a);
        run_ok("ovn-nbctl", &all, Duration::from_secs(30))
    };
    nb(&["init"]);
    nb(&["set-ssl", &server.key, &server.cert, &pki.ca()]);
    let port = free_port();
    nb(&["set-connection", &format!("pssl:{port}:127.0.0.1")]);
    let out = wait_until(
        "the pssl: listener from the database",
        Duration::from_secs(10),
        || {
            let out = nbctl(port, &client, &pki.ca(), &["--no-leader-only", "show"]);
            out.status.success().then_some(out)
        },
    );
    assert!(out.status.success());
    nbctl_ok(port, &client, &pki.ca(), &["ls-add", "over-tls"]);
    assert!(nb(&["ls-list"]).contains("over-tls"));
    // A client that does not speak TLS is refused on that port.
    let refused = run(
        "ovn-nbctl",
        &[
            &format!("--db=tcp:127.0.0.1:{port}"),
            "--timeout=3",
            "--no-leader-only",
            "show",
        ],
        Duration::from_secs(20),
    );
    assert!(!refused.status.success(), "a plaintext client was served");
}

/// Southbound RBAC over TLS, as the charms deploy it: listeners and SSL options from the
/// database, a `role=ovn-controller` connection, the RBAC rows ovn-northd writes. `ovn-sbctl`
/// with chassis hv1's certificate may update hv1's `Chassis` row and gets ovsdb-server's exact
/// error for hv2's, through every member; the same requests against a real ovsdb-server with the
/// same certificates and rows give the same answers.
#[test]
fn southbound_rbac_over_tls_matches_ovsdb_server() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(tmp.path(), "pki");
    let server = pki.sign("server");
    let hv1 = pki.sign_unique("hv1");
    let db = "OVN_Southbound";
    let db_options: Vec<String> = vec![
        format!("--remote=db:{db},SB_Global,connections"),
        format!("--private-key=db:{db},SSL,private_key"),
        format!("--certificate=db:{db},SSL,certificate"),
        format!("--ca-cert=db:{db},SSL,ca_cert"),
    ];
    let rbac_rows =
        std::fs::read_to_string(repo_root().join("crates/ovsdb/tests/rbac/northd-rbac.json"))
            .unwrap();
    // The same setup through a privileged (plain) remote of either server.
    let setup = |plain: &str, port: u16| {
        let sb = |a: &[&str]| {
            let d = format!("--db={plain}");
            let mut all = vec![d.as_str(), "--timeout=20"];
            all.extend_from_slice(a);
            run_ok("ovn-sbctl", &all, Duration::from_secs(30))
        };
        sb(&["init"]);
        sb(&["set-ssl", &server.key, &server.cert, &pki.ca()]);
        sb(&[
            "set-connection",
            "role=ovn-controller",
            &format!("pssl:{port}:127.0.0.1"),
        ]);
        sb(&["chassis-add", "hv1", "geneve", "192.0.2.1"]);
        sb(&["chassis-add", "hv2", "geneve", "192.0.2.2"]);
        let txn = format!("[\"{db}\",{}", rbac_rows.trim().trim_start_matches('['));
        run_ok(
            "ovsdb-client",
            &["transact", plain, &txn],
            Duration::from_secs(30),
        );
    };
    // What hv1 is answered, over TLS on `port`: (own row, other row).
    let ca = pki.ca();
    let as_hv1 = |port: u16| -> (String, String) {
        let sb = |a: &[&str]| {
            let d = format!("--db=ssl:127.0.0.1:{port}");
            let mut all = vec![
                "-p",
                hv1.key.as_str(),
                "-c",
                hv1.cert.as_str(),
                "-C",
                ca.as_str(),
                d.as_str(),
                "--timeout=20",
                "--no-leader-only",
            ];
            all.extend_from_slice(a);
            run("ovn-sbctl", &all, Duration::from_secs(30))
        };
        let last_line = |o: &Output| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let line = text.lines().last().unwrap_or_default().to_string();
            format!("exit {:?}: {line}", o.status.code())
        };
        let own = sb(&["set", "Chassis", "hv1", "external_ids:owner=hv1"]);
        let other = sb(&["set", "Chassis", "hv2", "external_ids:owner=hv1"]);
        (last_line(&own), last_line(&other))
    };

    // The real ovsdb-server.
    let real = tempfile::tempdir().unwrap();
    let (_real, real_plain) = real_ovsdb_server(real.path(), SB_SCHEMA, &db_options);
    let real_port = free_port();
    setup(&real_plain, real_port);
    wait_until(
        "ovsdb-server's pssl: listener",
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", real_port)).ok(),
    );
    let theirs = as_hv1(real_port);
    assert!(
        theirs.0.starts_with("exit Some(0)"),
        "ovsdb-server refused hv1's own row: {theirs:?}"
    );
    assert!(
        theirs.1.contains("RBAC rules for client \\\"hv1\\\""),
        "ovsdb-server's answer changed: {theirs:?}"
    );

    // Halyard: three members; each binds the same pssl: address in turn (one machine), so
    // each is checked while it holds the port.
    let args: Vec<&str> = db_options.iter().map(String::as_str).collect();
    let mut cluster = Cluster::start(3, &[SB_SCHEMA], &args);
    cluster.wait_leader(Duration::from_secs(60));
    let port = free_port();
    setup(&cluster.members[0].remote(), port);
    wait_until("the pssl: listener", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let ours = as_hv1(port);
    assert_eq!(
        ours, theirs,
        "Halyard's RBAC answers differ from ovsdb-server's"
    );
}

/// The OVN control plane over TLS: `ovn-northd` reaches a Northbound and Southbound cluster
/// (one Halyard cluster serving both, `ssl:` Raft) only over `ssl:` with its own certificate,
/// and a switch added with `ovn-nbctl` over TLS becomes logical flows read with `ovn-sbctl`
/// over TLS through another member.
#[test]
fn ovn_northd_over_tls() {
    let c = TlsCluster::start_schemas(3, &[], &[NB_SCHEMA, SB_SCHEMA]);
    let northd_cert = c.pki.sign("northd");
    let all = c
        .ssl_ports
        .iter()
        .map(|p| format!("ssl:127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let ca = c.pki.ca();
    let tls_args = |cert: &Cert| {
        vec![
            "-p".to_string(),
            cert.key.clone(),
            "-c".to_string(),
            cert.cert.clone(),
            "-C".to_string(),
            ca.clone(),
        ]
    };
    let ctl = |prog: &str, db: &str, args: &[&str]| {
        let mut argv = tls_args(&c.client);
        argv.push(format!("--db={db}"));
        argv.push("--timeout=20".to_string());
        argv.extend(args.iter().map(|a| a.to_string()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        run_ok(prog, &argv, Duration::from_secs(30))
    };
    let first = format!("ssl:127.0.0.1:{}", c.ssl_ports[0]);
    let second = format!("ssl:127.0.0.1:{}", c.ssl_ports[1]);
    ctl("ovn-nbctl", &first, &["init"]);
    ctl("ovn-sbctl", &first, &["init"]);
    let mut cmd = Command::new("ovn-northd");
    cmd.args(tls_args(&northd_cert))
        .arg(format!("--ovnnb-db={all}"))
        .arg(format!("--ovnsb-db={all}"))
        .arg("--no-chdir")
        .arg(format!(
            "--unixctl={}",
            c.dir.path().join("northd.ctl").display()
        ))
        .arg(format!(
            "--log-file={}",
            c.dir.path().join("northd.log").display()
        ))
        .arg("-vconsole:off");
    let _northd = Proc::spawn("ovn-northd", cmd, &c.dir.path().join("northd.stderr"));
    ctl("ovn-nbctl", &first, &["ls-add", "sw-tls"]);
    wait_until(
        "logical flows of sw-tls over TLS",
        Duration::from_secs(30),
        || {
            // Until ovn-northd has made the datapath, lflow-list does not know the name.
            let mut argv = tls_args(&c.client);
            argv.extend([
                format!("--db={second}"),
                "--timeout=20".to_string(),
                "--no-leader-only".to_string(),
                "lflow-list".to_string(),
                "sw-tls".to_string(),
            ]);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = run("ovn-sbctl", &argv, Duration::from_secs(30));
            String::from_utf8_lossy(&out.stdout)
                .contains("ls_in_")
                .then_some(())
        },
    );
}

/// A hypervisor on this machine: an `ovsdb-server` with the vswitch schema, `ovs-vswitchd` with
/// the userspace datapath in its own network namespace, and `ovn-controller` (host namespace)
/// pointed at `sb_remote` with the given TLS files. Everything is stopped on drop.
struct Hypervisor {
    dir: PathBuf,
    netns: String,
    procs: Vec<Proc>,
}

impl Hypervisor {
    fn start(dir: &Path, name: &str, sb_remote: &str, tls: &[String]) -> Hypervisor {
        std::fs::create_dir_all(dir).unwrap();
        let netns = format!("hv-{name}-{}", std::process::id());
        run_ok("ip", &["netns", "add", &netns], T);
        let mut hv = Hypervisor {
            dir: dir.to_path_buf(),
            netns,
            procs: Vec::new(),
        };
        run_ok(
            "ip",
            &["netns", "exec", &hv.netns, "ip", "link", "set", "lo", "up"],
            T,
        );
        let conf = dir.join("conf.db");
        run_ok(
            "ovsdb-tool",
            &[
                "create",
                conf.to_str().unwrap(),
                "/usr/share/openvswitch/vswitch.ovsschema",
            ],
            T,
        );
        let sock = format!("unix:{}", dir.join("db.sock").display());
        let mut cmd = Command::new("ovsdb-server");
        cmd.arg(&conf)
            .arg(format!("--remote=p{sock}"))
            .arg(format!(
                "--unixctl={}",
                dir.join("ovsdb-server.ctl").display()
            ))
            .arg(format!(
                "--log-file={}",
                dir.join("ovsdb-server.log").display()
            ))
            .args(["--no-chdir", "-vconsole:off"]);
        hv.procs.push(Proc::spawn(
            "hv ovsdb-server",
            cmd,
            &dir.join("ovsdb-server.stderr"),
        ));
        wait_until("the hypervisor's ovsdb-server", T, || {
            run(
                "ovs-vsctl",
                &[&format!("--db={sock}"), "--timeout=2", "--no-wait", "init"],
                T,
            )
            .status
            .success()
            .then_some(())
        });
        // Two userspace datapaths in one namespace collide on their tap devices.
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &hv.netns, "ovs-vswitchd", &sock])
            .env("OVS_RUNDIR", dir)
            .arg(format!(
                "--unixctl={}",
                dir.join("ovs-vswitchd.ctl").display()
            ))
            .arg(format!(
                "--log-file={}",
                dir.join("ovs-vswitchd.log").display()
            ))
            .args(["--no-chdir", "-vconsole:off"]);
        hv.procs.push(Proc::spawn(
            "hv ovs-vswitchd",
            cmd,
            &dir.join("ovs-vswitchd.stderr"),
        ));
        run_ok(
            "ovs-vsctl",
            &[
                &format!("--db={sock}"),
                "--no-wait",
                "set",
                "open",
                ".",
                &format!("external_ids:system-id={name}"),
                &format!("external_ids:ovn-remote={sb_remote}"),
                "external_ids:ovn-encap-type=geneve",
                "external_ids:ovn-encap-ip=127.0.0.1",
                "external_ids:ovn-bridge-datapath-type=netdev",
            ],
            T,
        );
        let mut cmd = Command::new("ovn-controller");
        cmd.arg(&sock)
            .args(tls)
            .env("OVN_RUNDIR", dir)
            .env("OVS_RUNDIR", dir)
            .arg(format!(
                "--log-file={}",
                dir.join("ovn-controller.log").display()
            ))
            .args(["--no-chdir", "-vconsole:off"]);
        hv.procs.push(Proc::spawn(
            "ovn-controller",
            cmd,
            &dir.join("ovn-controller.stderr"),
        ));
        hv
    }

    /// Binds logical port `port` to an internal interface of br-int.
    fn bind(&self, port: &str) {
        let sock = format!("--db=unix:{}", self.dir.join("db.sock").display());
        let logs = || {
            [
                "ovn-controller.log",
                "ovn-controller.stderr",
                "ovs-vswitchd.log",
            ]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
        };
        let started = Instant::now();
        wait_until("br-int", Duration::from_secs(40), || {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no br-int after 30 s:\n{}",
                logs()
            );
            run("ovs-vsctl", &[&sock, "br-exists", "br-int"], T)
                .status
                .success()
                .then_some(())
        });
        run_ok(
            "ovs-vsctl",
            &[
                &sock,
                "--timeout=20",
                "add-port",
                "br-int",
                port,
                "--",
                "set",
                "interface",
                port,
                "type=internal",
                &format!("external_ids:iface-id={port}"),
            ],
            Duration::from_secs(30),
        );
    }
}

impl Drop for Hypervisor {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            p.kill();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

/// The whole OVN control plane over TLS with Southbound RBAC on, as the charms deploy it:
/// Halyard NB and SB clusters, `ovn-northd`, and a real hypervisor whose `ovn-controller`
/// reaches the Southbound only through a `role=ovn-controller` `pssl:` connection with chassis
/// hv1's certificate. A logical port bound on hv1 comes up (`ovn-nbctl lsp-get-up` says `up`):
/// every write ovn-controller makes (its Chassis, Encap, Port_Binding) passed the RBAC check.
#[test]
fn ovn_controller_over_tls_with_rbac_brings_a_port_up() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(tmp.path(), "pki");
    let server = pki.sign("server");
    let hv1 = pki.sign_unique("hv1");
    let sb_args: Vec<String> = vec![
        "--remote=db:OVN_Southbound,SB_Global,connections".into(),
        "--private-key=db:OVN_Southbound,SSL,private_key".into(),
        "--certificate=db:OVN_Southbound,SSL,certificate".into(),
        "--ca-cert=db:OVN_Southbound,SSL,ca_cert".into(),
    ];
    let sb_argv: Vec<&str> = sb_args.iter().map(String::as_str).collect();
    let mut nb = Cluster::start(3, &[NB_SCHEMA], &[]);
    let mut sb = Cluster::start(3, &[SB_SCHEMA], &sb_argv);
    nb.wait_leader(Duration::from_secs(60));
    sb.wait_leader(Duration::from_secs(60));
    let nb_remote = nb.remote_list();
    let sb_plain = sb.remote_list();
    let ctl = |prog: &str, db: &str, args: &[&str]| {
        let d = format!("--db={db}");
        let mut all = vec![d.as_str(), "--timeout=30"];
        all.extend_from_slice(args);
        run_ok(prog, &all, Duration::from_secs(40))
    };
    ctl("ovn-nbctl", &nb_remote, &["init"]);
    ctl("ovn-sbctl", &sb_plain, &["init"]);
    ctl(
        "ovn-sbctl",
        &sb_plain,
        &["set-ssl", &server.key, &server.cert, &pki.ca()],
    );
    let port = free_port();
    ctl(
        "ovn-sbctl",
        &sb_plain,
        &[
            "set-connection",
            "role=ovn-controller",
            &format!("pssl:{port}:127.0.0.1"),
        ],
    );
    let mut cmd = Command::new("ovn-northd");
    cmd.arg(format!("--ovnnb-db={nb_remote}"))
        .arg(format!("--ovnsb-db={sb_plain}"))
        .arg("--no-chdir")
        .arg(format!(
            "--unixctl={}",
            tmp.path().join("northd.ctl").display()
        ))
        .arg(format!(
            "--log-file={}",
            tmp.path().join("northd.log").display()
        ))
        .arg("-vconsole:off");
    let _northd = Proc::spawn("ovn-northd", cmd, &tmp.path().join("northd.stderr"));
    // ovn-northd writes the RBAC rows ovn-controller is checked against.
    wait_until("ovn-northd's RBAC rows", Duration::from_secs(30), || {
        ctl(
            "ovn-sbctl",
            &sb_plain,
            &["--bare", "--columns=name", "list", "RBAC_Role"],
        )
        .contains("ovn-controller")
        .then_some(())
    });
    ctl(
        "ovn-nbctl",
        &nb_remote,
        &["ls-add", "sw0", "--", "lsp-add", "sw0", "p1"],
    );
    let tls = vec![
        format!("--private-key={}", hv1.key),
        format!("--certificate={}", hv1.cert),
        format!("--ca-cert={}", pki.ca()),
    ];
    let hv = Hypervisor::start(
        &tmp.path().join("hv1"),
        "hv1",
        &format!("ssl:127.0.0.1:{port}"),
        &tls,
    );
    hv.bind("p1");
    let started = Instant::now();
    wait_until("lsp-get-up p1 == up", Duration::from_secs(60), || {
        (ctl("ovn-nbctl", &nb_remote, &["lsp-get-up", "p1"]).trim() == "up").then_some(())
    });
    eprintln!("p1 up {:?} after binding", started.elapsed());
    let chassis = ctl(
        "ovn-sbctl",
        &sb_plain,
        &["--bare", "--columns=chassis", "list", "Port_Binding", "p1"],
    );
    assert!(!chassis.trim().is_empty(), "p1 is not bound to a chassis");
}

/// The deployment the charms and MicroOVN make with `ovn-ctl` on three hosts, each member in a
/// network namespace of its own (so every member binds the same listener address, as hosts
/// do): `ssl:` Raft addresses with file certificates, client listeners only from the
/// `Connection` table (`--remote=db:...,connections`, plus the `punix:` socket ovn-ctl always
/// gives), `--ssl-protocols`/`--ssl-ciphers` from the `SSL` row. `set-ssl` and
/// `set-connection pssl:` over the Unix socket open the TLS port on every member; NB and SB
/// clients with default options write and read through every one of them; a plaintext client
/// and a certificate from another CA are refused; the Raft port speaks TLS with each member's
/// certificate; the `SSL` row's protocols apply; `del-connection` closes the port everywhere.
#[test]
fn ovn_ctl_deployment_over_tls_with_listeners_only_from_the_database() {
    use halyard_faults::netns::{member_ip, Net};
    const NB_PORT: u16 = 6641;
    const SB_PORT: u16 = 6642;
    const RAFT_PORT: u16 = 6643;

    let dir = tempfile::Builder::new()
        .prefix("halyard-tls-hosts-")
        .tempdir()
        .unwrap();
    let pki = Pki::init(dir.path(), "pki");
    let ca = pki.ca();
    let client = pki.sign("client");
    // Declared before the processes, so they are killed before the namespaces go.
    let mut net = Net::create(&format!("t{}", std::process::id() % 100_000))
        .expect("network namespaces (the tests run as root)");
    let client_ns = net.ns_name("cl");
    let raft: Vec<String> = (1..=3)
        .map(|i| format!("ssl:{}:{RAFT_PORT}", member_ip(i)))
        .collect();
    let mut members: Vec<Proc> = Vec::new();
    let mut sockets: Vec<String> = Vec::new();
    let mut certs: Vec<Cert> = Vec::new();
    for i in 1..=3 {
        let ns = net.add_host(&format!("m{i}"), member_ip(i)).unwrap();
        let cert = pki.sign(&format!("m{i}"));
        let data = dir.path().join(format!("m{i}"));
        let data_arg = data.display().to_string();
        if i == 1 {
            run_ok(
                halyard_bin(),
                &[
                    "create-cluster",
                    "--data-dir",
                    &data_arg,
                    "--schema",
                    NB_SCHEMA,
                    "--schema",
                    SB_SCHEMA,
                    "--raft-addr",
                    &raft[0],
                ],
                T,
            );
        } else {
            run_ok(
                halyard_bin(),
                &[
                    "join-cluster",
                    "--data-dir",
                    &data_arg,
                    "--raft-addr",
                    &raft[i - 1],
                    "--peer",
                    &raft[0],
                ],
                T,
            );
        }
        let sock = data.join("db.sock").display().to_string();
        let mut cmd = Command::new("ip");
        cmd.current_dir(&data)
            .args(["netns", "exec", &ns, halyard_bin(), "serve", "--data-dir"])
            .arg(&data)
            .arg(format!("--remote=punix:{sock}"))
            .arg("--remote=db:OVN_Northbound,NB_Global,connections")
            .arg("--remote=db:OVN_Southbound,SB_Global,connections")
            .args(["--private-key", &cert.key, "--certificate", &cert.cert])
            .args(["--ca-cert", &ca])
            .arg("--ssl-protocols=db:OVN_Northbound,SSL,ssl_protocols")
            .arg("--ssl-ciphers=db:OVN_Northbound,SSL,ssl_ciphers")
            .env("HALYARD_LOG", "info,openraft=warn");
        members.push(Proc::spawn(
            &format!("halyard m{i}"),
            cmd,
            &dir.path().join(format!("m{i}.log")),
        ));
        sockets.push(format!("unix:{sock}"));
        certs.push(cert);
    }
    let logs = || {
        (1..=3)
            .map(|i| {
                std::fs::read_to_string(dir.path().join(format!("m{i}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    // Every member answers on its Unix socket as a leader-only client wants (default options).
    for (i, sock) in sockets.iter().enumerate() {
        let db = format!("--db={sock}");
        let ready = wait_until_or(Duration::from_secs(60), || {
            run("ovn-nbctl", &[&db, "--timeout=5", "show"], T)
                .status
                .success()
                .then_some(())
        });
        assert!(ready.is_some(), "m{} never served:\n{}", i + 1, logs());
    }
    let unix_ctl = |prog: &str, args: &[&str]| {
        let db = format!("--db={}", sockets[0]);
        let mut all = vec![db.as_str(), "--timeout=20"];
        all.extend_from_slice(args);
        run_ok(prog, &all, T)
    };
    for prog in ["ovn-nbctl", "ovn-sbctl"] {
        unix_ctl(prog, &["init"]);
        unix_ctl(prog, &["set-ssl", &certs[0].key, &certs[0].cert, &ca]);
    }
    unix_ctl("ovn-nbctl", &["set-connection", &format!("pssl:{NB_PORT}")]);
    unix_ctl("ovn-sbctl", &["set-connection", &format!("pssl:{SB_PORT}")]);

    // A client on the clients' host, with a certificate of the PKI and default options.
    let tls_ctl = |prog: &str, who: &Cert, addr: String, args: &[&str]| {
        let db = format!("--db={addr}");
        let mut all = vec![
            "netns",
            "exec",
            client_ns.as_str(),
            prog,
            "-p",
            who.key.as_str(),
            "-c",
            who.cert.as_str(),
            "-C",
            ca.as_str(),
            db.as_str(),
            "--timeout=5",
        ];
        all.extend_from_slice(args);
        run("ip", &all, T)
    };
    let nb = |i: usize| format!("ssl:{}:{NB_PORT}", member_ip(i));
    let sb = |i: usize| format!("ssl:{}:{SB_PORT}", member_ip(i));
    for i in 1..=3 {
        // The first call also waits for the listener to open on that member.
        let sw = format!("sw{i}");
        let added = wait_until_or(Duration::from_secs(10), || {
            let out = tls_ctl("ovn-nbctl", &client, nb(i), &["ls-add", &sw]);
            out.status.success().then_some(())
        });
        assert!(added.is_some(), "NB over TLS at m{i}:\n{}", logs());
        let ch = format!("ch{i}");
        let ip = format!("192.0.2.{i}");
        let out = wait_until_or(Duration::from_secs(10), || {
            let out = tls_ctl(
                "ovn-sbctl",
                &client,
                sb(i),
                &["chassis-add", &ch, "geneve", &ip],
            );
            out.status.success().then_some(out)
        });
        assert!(out.is_some(), "SB over TLS at m{i}:\n{}", logs());
    }
    for i in 1..=3 {
        let out = tls_ctl("ovn-nbctl", &client, nb(i), &["ls-list"]);
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            (1..=3).all(|k| listed.contains(&format!("(sw{k})"))),
            "m{i} lists {listed:?} ({out:?})"
        );
        let out = tls_ctl(
            "ovn-sbctl",
            &client,
            sb(i),
            &["--bare", "--columns=name", "list", "Chassis"],
        );
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            (1..=3).all(|k| listed.contains(&format!("ch{k}"))),
            "m{i} lists chassis {listed:?} ({out:?})"
        );
    }

    // Refused: a plaintext client, and a certificate another CA signed.
    let plain = run(
        "ip",
        &[
            "netns",
            "exec",
            &client_ns,
            "ovn-nbctl",
            &format!("--db=tcp:{}:{NB_PORT}", member_ip(2)),
            "--timeout=3",
            "ls-list",
        ],
        T,
    );
    assert!(!plain.status.success(), "a plaintext client was served");
    let other = Pki::init(dir.path(), "other-pki");
    let stranger = other.sign("stranger");
    let refused = tls_ctl("ovn-nbctl", &stranger, nb(3), &["ls-list"]);
    assert!(
        !refused.status.success(),
        "a certificate from another CA was accepted"
    );

    // Each Raft port speaks TLS with its member's certificate.
    let prefix = ["ip", "netns", "exec", client_ns.as_str()];
    for i in 1..=3 {
        let addr = format!("{}:{RAFT_PORT}", member_ip(i));
        let (text, serial) = s_client_in(&prefix, &addr, &client, &ca, &[]);
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
        assert_eq!(
            serial.as_deref(),
            Some(serial_of_file(&certs[i - 1].cert).as_str()),
            "m{i}'s Raft port"
        );
        // Before the SSL row restricts them, clients may use TLS 1.3.
        let addr = format!("{}:{NB_PORT}", member_ip(i));
        let (text, serial) = s_client_in(&prefix, &addr, &client, &ca, &["-tls1_3"]);
        assert!(serial.is_some(), "m{i} refused TLS 1.3: {text}");
    }

    // The SSL row's protocols apply on every member: TLS 1.2 only.
    unix_ctl(
        "ovn-nbctl",
        &["set-ssl", &certs[0].key, &certs[0].cert, &ca, "TLSv1.2"],
    );
    for i in 1..=3 {
        let addr = format!("{}:{NB_PORT}", member_ip(i));
        let refused = wait_until_or(Duration::from_secs(10), || {
            let (_, serial) = s_client_in(&prefix, &addr, &client, &ca, &["-tls1_3"]);
            serial.is_none().then_some(())
        });
        assert!(refused.is_some(), "m{i} still speaks TLS 1.3");
        let (text, serial) = s_client_in(&prefix, &addr, &client, &ca, &["-tls1_2"]);
        assert!(serial.is_some(), "m{i}: {text}");
    }

    // del-connection closes the listener on every member.
    unix_ctl("ovn-nbctl", &["del-connection"]);
    for i in 1..=3 {
        let closed = wait_until_or(Duration::from_secs(10), || {
            let out = tls_ctl("ovn-nbctl", &client, nb(i), &["--timeout=2", "ls-list"]);
            (!out.status.success()).then_some(())
        });
        assert!(closed.is_some(), "m{i} still serves NB over TLS");
        // The Southbound listener stays.
        let out = tls_ctl("ovn-sbctl", &client, sb(i), &["show"]);
        assert!(out.status.success(), "m{i} lost its SB listener: {out:?}");
    }
    drop(members);
    net.destroy();
}

/// Polls `f` every 200 ms until it returns `Some`, or gives `None` after `limit`.
fn wait_until_or<V>(limit: Duration, mut f: impl FnMut() -> Option<V>) -> Option<V> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
