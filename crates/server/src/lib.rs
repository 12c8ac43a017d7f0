//! The OVSDB JSON-RPC front end (RFC 7047 plus the ovsdb-server extensions OVN uses):
//! listeners, framing, sessions, methods, monitors, locks as a client sees them, and the
//! `_Server` database. The replicated state behind it is reached only through [`Backend`].

pub mod backend;
pub mod config;
pub mod framing;
mod hub;
pub mod jsonrpc;
pub mod listener;
mod methods;
pub mod monitor;
mod outbox;
mod server;
pub mod server_db;
mod session;

pub use backend::{
    ApplyHook, Backend, BackendError, DbView, LockEvent, ServerDbStatus, SessionKey, TxnHistory,
};
pub use config::ServerConfig;
pub use server::{Server, ServerError};
