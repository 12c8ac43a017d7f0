//! The OVSDB engine (RFC 7047 + Open vSwitch extensions). Pure: no I/O, no async, no clocks.
//!
//! Modules: [`schema`] (schemas), [`atom`] and [`datum`] (values and their JSON notation),
//! [`error`] (error objects), [`row`] and [`changes`] (rows and committed change sets),
//! [`condition`] and [`mutation`] (`where` clauses and mutators), [`transaction`] (the
//! `transact` method and its commit-time checks) and [`database`] (the in-memory database
//! and its snapshot format).

pub mod atom;
pub mod changes;
mod commit;
pub mod condition;
pub mod database;
pub mod datum;
pub mod error;
pub mod monitor;
pub mod mutation;
mod parser;
pub mod row;
pub mod schema;
mod snapshot;
pub mod transaction;

pub use atom::Atom;
pub use changes::{ChangeSet, RowChange};
pub use database::Database;
pub use datum::Datum;
pub use error::{ErrorTag, OvsdbError};
pub use row::Row;
pub use schema::{
    AtomicType, BaseType, ColumnRef, ColumnSchema, ColumnType, DatabaseSchema, RefType, TableSchema,
};
pub use transaction::{is_read_only, SeqEnv, TxnEnv, TxnOutcome};
