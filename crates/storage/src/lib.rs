//! Durable Raft log, vote and snapshots on sled.
