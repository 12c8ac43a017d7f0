//! Reads through any member are linearizable as real OVN tools use them: `ovn-nbctl` reads the
//! initial contents of its `monitor_cond_since`, so a write acknowledged through one member
//! must be in what another member sends next (a read barrier before the initial reply).
//! Uses the repo's own `scripts/cluster.sh`.

use std::net::TcpListener;
use std::process::Command;

/// A base port with base+1..=base+3 and base+11..=base+13 free right now.
fn free_base() -> u16 {
    for _ in 0..200 {
        let probe = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = probe.saturating_sub(20);
        if !(20000..=60000).contains(&base) {
            continue;
        }
        let all_free = (1..=3)
            .chain(11..=13)
            .all(|d| TcpListener::bind(("127.0.0.1", base + d)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free port range");
}

struct Cluster {
    dir: tempfile::TempDir,
    script: std::path::PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn nbctl(port: u16, args: &[&str]) -> String {
    let out = Command::new("ovn-nbctl")
        .arg(format!("--db=tcp:127.0.0.1:{port}"))
        .arg("--timeout=60")
        .args(args)
        .output()
        .expect("ovn-nbctl (Debian's ovn-common) must be installed: scripts/install-deps.sh");
    assert!(
        out.status.success(),
        "ovn-nbctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_write_through_one_member_is_read_through_the_others_at_once() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster.sh");
    let dir = tempfile::tempdir().unwrap();
    let base = free_base();
    let cluster = Cluster { dir, script };
    let st = Command::new("bash")
        .arg(&cluster.script)
        .arg("start")
        .arg(cluster.dir.path())
        .arg("3")
        .arg(base.to_string())
        .env("HALYARD_BIN", env!("CARGO_BIN_EXE_halyard"))
        .status()
        .unwrap();
    assert!(st.success(), "scripts/cluster.sh start failed");
    let ports = [base + 1, base + 2, base + 3];
    nbctl(ports[0], &["ls-add", "sw0"]);
    for i in 0..30 {
        let writer = ports[i % 3];
        let reader = ports[(i + 1) % 3];
        let port = format!("p{i}");
        nbctl(writer, &["lsp-add", "sw0", &port]);
        let seen = nbctl(reader, &["lsp-list", "sw0"]);
        assert!(
            seen.contains(&format!("({port})")),
            "{port} acknowledged through :{writer} but missing through :{reader}:\n{seen}"
        );
    }
}
