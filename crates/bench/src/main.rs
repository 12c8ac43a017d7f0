//! halyard-bench: load generator for OVSDB servers.
fn main() {}
