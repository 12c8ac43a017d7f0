//! The replicated state machine and Raft plumbing.
