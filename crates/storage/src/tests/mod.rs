//! Tests against real sled databases in temporary directories.

mod batching;
mod conformance;
mod corruption;
mod durability;
mod fixture;
mod replication_reads;
mod restart;
mod throughput;
