//! halyard-testkit: what the multi-process tests of `crates/halyard/tests` share, in one place
//! (`publish = false`, a dev-dependency only).
//!
//! - [`single`]: one Halyard member (`create-cluster` + `serve`) or one real standalone
//!   ovsdb-server on free loopback ports, commands run with a deadline, polling waits, and the
//!   raw JSON-RPC client ([`single::Rpc`], RFC 7047 framing as the server cuts it).
//! - [`cluster`]: N-member Halyard clusters of real processes, the real 3-member ovsdb-server
//!   cluster (`ref-cluster.sh`) as the oracle, and a blocking JSON-RPC client for them.
//! - [`ops`]: clusters with control sockets and HTTP endpoints for the operations tests.
//!
//! Every process a test starts is owned by a guard that kills it on drop, so a failing test
//! leaves nothing running; ports come from the kernel; every wait polls with a generous bound
//! (the machine running the tests is shared and slow).
//!
//! A test uses it with `use halyard_testkit::cluster::*;` (or `single`, `ops`). The `halyard`
//! binary is the one cargo built for the test ([`halyard_bin`]).

pub mod cluster;
pub mod ops;
pub mod single;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The `halyard` binary under test: `$HALYARD_TEST_BIN`, else the one cargo builds next to the
/// test executables (`target/<profile>/halyard`, built for every integration test of the
/// `halyard` package).
pub fn halyard_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("HALYARD_TEST_BIN") {
            return bin;
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        // target/<profile>/deps/<test>-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("a test executable under target/<profile>/deps");
        let bin: PathBuf = profile_dir.join("halyard");
        assert!(
            bin.exists(),
            "{} not built: run the tests with cargo test -p halyard",
            bin.display()
        );
        bin.display().to_string()
    })
}
