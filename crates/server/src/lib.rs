//! The OVSDB JSON-RPC front end (RFC 7047 plus the ovsdb-server extensions OVN uses):
//! listeners, framing, sessions, methods, monitors, locks as a client sees them, and the
//! `_Server` database. The replicated state behind it is reached only through [`Backend`].

pub mod framing;
pub mod jsonrpc;
pub mod listener;
