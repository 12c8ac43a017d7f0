//! The OVSDB JSON-RPC front end (RFC 7047 plus the ovsdb-server extensions OVN uses):
//! listeners, framing, sessions, methods, monitors, locks as a client sees them, and the
//! `_Server` database. The replicated state behind it is reached only through [`Backend`].
//!
//! Shape: [`Server::new`] installs the [`ApplyHook`] (the `hub` module) on the backend;
//! [`Server::run`] binds the remotes and spawns one session per connection. A session is a
//! reader task (framing, JSON-RPC checks, methods, parked requests, inactivity probe) plus a
//! writer task draining a byte-bounded outbox. The backend calls the hook synchronously,
//! in log order, under its state lock; the hook computes monitor updates (`ovsdb::monitor`)
//! and queues them on the sessions' outboxes right there. A `transact` future resolves only
//! after that, so a client always receives the updates its write caused before the reply.
//! Locks taken in the hook path are always in the order backend state → session state →
//! outbox, and no backend method is ever called while a session lock is held.

pub mod backend;
pub mod config;
pub mod framing;
mod hub;
mod input_budget;
pub mod jsonrpc;
pub mod listener;
mod methods;
pub mod monitor;
mod outbox;
pub mod remotes;
mod server;
pub mod server_db;
mod session;
pub mod tls;
mod trigger;

pub use backend::{
    ApplyHook, Backend, BackendError, DbView, LockEvent, ServerDbStatus, SessionKey, Transacted,
    TxnHistory,
};
pub use config::ServerConfig;
pub use hub::FrontEndStats;
pub use server::{Server, ServerError};
pub use session::SessionOptions;
pub use tls::{TlsError, TlsLoader, TlsSettings};
