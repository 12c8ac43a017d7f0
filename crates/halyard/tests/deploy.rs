//! The deployment files under `deploy/`, each exercised by the tool that consumes it:
//! the scripts under `tests/deploy/` do the work; these tests run them with this build's
//! `halyard` binary so that `cargo test` (and CI) covers them.
//!
//! - `configs`: the Pacemaker OCF agent under `ocf-tester` against a real member, the HAProxy
//!   example health-checking a real member, `systemd-analyze verify` on the unit, the Kubernetes
//!   manifest against the Kubernetes schemas, the compose files through `docker compose config`.
//! - `compose`: the Docker image built from a locally debootstrapped base, the 3-member compose
//!   cluster driven with the real `ovn-nbctl` through each container's published port, one
//!   container stopped, then started again.
//!
//! Both install what they need from Debian (tests/deploy/install-deps.sh) and need root and a
//! Docker engine, as CI's machines have.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

/// The two scripts start servers and containers: one at a time on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn run_script(name: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/deploy").join(name);
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .env("HALYARD_BIN", env!("CARGO_BIN_EXE_halyard"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    // Also kept in a file: the harness shows captured output only for the failing test.
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("deploy-{name}.log"));
    let _ = std::fs::write(&log, format!("{stdout}\n--- stderr ---\n{stderr}"));
    assert!(
        out.status.success(),
        "{} failed ({}) after {:.0?}; output in {}",
        script.display(),
        out.status,
        started.elapsed(),
        log.display()
    );
    assert!(
        stdout.contains(" passed, 0 failed"),
        "{} exited 0 without its closing line",
        script.display()
    );
}

#[test]
fn configs() {
    run_script("configs.sh");
}

#[test]
fn compose() {
    run_script("compose.sh");
}
