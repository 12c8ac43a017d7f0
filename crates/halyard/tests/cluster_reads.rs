//! Reads through any member are linearizable as real OVN tools use them: `ovn-nbctl` reads the
//! initial contents of its `monitor_cond_since`, so a write acknowledged through one member
//! must be in what another member sends next (a read barrier before the initial reply).
//! Uses the repo's own `scripts/cluster.sh` (the README's first command), which also starts a
//! Southbound cluster and `ovn-northd`: a switch added through one Northbound member shows up
//! as logical flows through another Southbound member.

use std::process::Command;

/// A base port with the script's ports (base+1..=3, +11..=13, +21..=23, +31..=33) free now.
fn free_base() -> u16 {
    halyard_testkit::single::free_ports(33) - 1
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

    // ovn-northd turned sw0 into logical flows; any Southbound member serves them.
    let sb = format!("--db=tcp:127.0.0.1:{}", base + 22);
    let started = std::time::Instant::now();
    loop {
        let out = Command::new("ovn-sbctl")
            .args([
                sb.as_str(),
                "--timeout=10",
                "--no-leader-only",
                "lflow-list",
                "sw0",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && text.contains("ls_in_check_port_sec") {
            eprintln!("logical flows of sw0 after {:?}", started.elapsed());
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no logical flows for sw0 through the Southbound: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
