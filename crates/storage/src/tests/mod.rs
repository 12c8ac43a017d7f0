//! Tests against real sled databases in temporary directories.

mod batching;
mod conformance;
mod corruption;
mod durability;
mod fixture;
mod restart;
mod throughput;
