//! halyard-faults: a fault-injection suite for Halyard clusters and the checker of its histories
//! .
//!
//! A run starts a cluster of real `halyard serve` processes, each in its own network namespace
//! ([`netns`], [`cluster`]), drives two workloads through randomly chosen members over raw OVSDB
//! JSON-RPC ([`ovsdb_client`], [`workload`]) while [`nemesis`] kills, pauses, partitions,
//! restarts and re-members the cluster, records every operation ([`history`]) and checks the
//! result ([`check`]: lost writes, phantoms, and register linearizability by the search in
//! [`linearizability`]). [`large`] is the large-value workload and the leader watch (no stretch without a leader longer than a few election timers).
//! [`suite`] ties one run together.

pub mod check;
pub mod cluster;
pub mod history;
pub mod large;
pub mod linearizability;
pub mod nemesis;
pub mod netns;
pub mod ovsdb_client;
pub mod suite;
pub mod workload;
