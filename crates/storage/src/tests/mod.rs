//! Tests against real stores (sled database and log segment files) in temporary directories.

mod batching;
mod conformance;
mod corruption;
mod durability;
mod fixture;
mod replication_reads;
mod restart;
mod segments;
mod snapshots;
mod throughput;
