//! The OVSDB engine (RFC 7047 + Open vSwitch extensions). Pure: no I/O, no async, no clocks.
//!
//! Modules: [`schema`] (schemas), [`atom`] and [`datum`] (values and their JSON notation;
//! `bigset` holds the chunked form of large sets),
//! [`error`] (error objects), [`row`] and [`changes`] (rows and committed change sets),
//! [`condition`] and [`mutation`] (`where` clauses and mutators), [`transaction`] (the
//! `transact` method and its commit-time checks) and [`database`] (the in-memory database
//! and its snapshot format; `shared_map` holds its maps in shards that copies share).
//!
//! The public API is the team contract (`Database::{new, schema, transact, snapshot,
//! from_snapshot, rows, row}`, `TxnEnv`, `TxnOutcome`, `ChangeSet`/`RowChange`,
//! `DatabaseSchema`, `Datum`, `Atom`, `OvsdbError`). Nothing was renamed; `is_read_only` was
//! removed: it disagreed with `is_read_only_transaction` about `abort`, and
//! everything now uses the latter.
//! Additions:
//! * `TxnOutcome` also has `comment` (last `comment` op) and `durable` (`commit` with
//!   `durable:true`); `result` is `null` when `blocked`.
//! * `Database::new_reserved` (client writes refused with `not allowed`, as `_Server`),
//!   `transact_privileged` (the server's own writes), `transact_read_only` (a read-only
//!   server), `set_reserved`, `row_count`, `ref_count`, `convert` (online schema conversion).
//! * `Database::transact_read` (and `_json`, `_text`): a transaction that cannot write
//!   (`is_read_only_transaction`) on `&self`, with `transact`'s outcome; `NotReadOnly`
//!   otherwise.
//! * `SeqEnv`: a deterministic counter-based `TxnEnv` for tests.
//! * `Row::{uuid, version, columns, get, get_ref, get_by_name, to_json}`; columns are indexed
//!   like `TableSchema::columns` (sorted by name); `_uuid`/`_version` are `ColumnRef`s.
//! * `OvsdbError` is `{tag: ErrorTag, details, syntax}`; `ErrorTag::as_str` is the wire tag.
//! * `TxnEnv::rbac` (default None): the session's `RbacIdentity` (role, certificate CN);
//!   writes are then checked against `RBAC_Role`/`RBAC_Permission` as ovsdb-server does
//!   ([`rbac`]); `RbacIdentity::check_convert` is the `convert` refusal for a role.
//!
//! Deliberate differences from ovsdb-server 3.1: dangling weak references are always
//! removed (3.1 misses rows modified earlier in the transaction); `INT64_MIN *= -1` is a
//! range error; reals are written so that they round-trip exactly; rows of `select` without
//! `sort` come in UUID order; when an index conflict involves two rows changed by the
//! transaction, the one with the smaller UUID is named first (3.1 orders them by comparing
//! all columns in hash order).

pub mod atom;
mod bigset;
pub mod changes;
mod commit;
pub mod condition;
mod convert;
pub mod database;
pub mod datum;
pub mod error;
pub mod json;
pub mod monitor;
pub mod mutation;
mod parser;
mod per_table;
#[cfg(test)]
mod query_tests;
pub mod rbac;
pub mod row;
pub mod schema;
mod shared_map;
mod snapshot;
pub mod transaction;

pub use atom::Atom;
pub use changes::{ChangeSet, RowChange};
pub use database::{Database, RowsIter};
pub use datum::Datum;
pub use error::{ErrorTag, OvsdbError};
pub use rbac::{RbacIdentity, RbacIdentityBuf};
pub use row::Row;
pub use schema::{
    AtomicType, BaseType, ColumnRef, ColumnSchema, ColumnType, DatabaseSchema, RefType, TableSchema,
};
pub use transaction::{
    is_read_only_transaction, NotReadOnly, ReadTextError, SeqEnv, TxnEnv, TxnOutcome,
};
