//! Role-based access control for `transact` and `convert`, as ovsdb-server 3.1 evaluates it
//! (`ovsdb/rbac.c`, called from `ovsdb/execution.c` for `insert`, `update`, `mutate` and
//! `delete`, and from `ovsdb/trigger.c` for `convert`).
//!
//! The rules live in the database being transacted: the `RBAC_Role` and `RBAC_Permission`
//! tables of the OVN Southbound schema (ovn-sb(5)), which ovn-northd fills. A session whose
//! listener has a non-empty `role` may write a table only through the permission row that
//! the role's `permissions` map names for that table:
//! * `authorization` lists the columns of the written row that must equal the client's
//!   identity (its certificate CN): `name` for a string column, `column:key` for the value
//!   of `key` in a string-to-string map column, and `""` for every client;
//! * `insert_delete` says whether authorized rows may be inserted and deleted;
//! * `update` lists the columns that `update` and `mutate` may touch on authorized rows.
//!
//! Everything is read from the transaction's own view of the database (rows it already
//! wrote included), as ovsdb-server reads its in-place modified tables, so the verdict is a
//! pure function of the database, the operations, the role and the identity. Where
//! ovsdb-server's answer depends on hash order (two `RBAC_Role` rows with the same name),
//! the row with the smallest UUID is taken instead.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::atom::Atom;
use crate::condition::Condition;
use crate::datum::Datum;
use crate::error::{ErrorTag, OvsdbError};
use crate::schema::{AtomicType, TableSchema};
use crate::transaction::Exec;

/// The table that turns RBAC on: a database without it grants everything, whatever the role.
const ROLE_TABLE: &str = "RBAC_Role";

/// How ovsdb-server prints a client without an identity (a `printf("%s", NULL)` in glibc):
/// a role on a listener that is not SSL denies every write, with this name in the message.
const NO_ID: &str = "(null)";

/// Who is transacting, for the RBAC checks: the role of the listener the session came in
/// through and the client's identity (the CN of its certificate; None without SSL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RbacIdentity<'a> {
    /// The `role` column of the session's `Connection` row. Empty: no restriction.
    pub role: &'a str,
    /// The peer's identity. None (not an SSL session) is denied every checked write.
    pub id: Option<&'a str>,
}

/// An owned [`RbacIdentity`], to carry in a replicated command.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RbacIdentityBuf {
    pub role: String,
    pub id: Option<String>,
}

impl RbacIdentityBuf {
    pub fn as_identity(&self) -> RbacIdentity<'_> {
        RbacIdentity {
            role: &self.role,
            id: self.id.as_deref(),
        }
    }
}

impl<'a> RbacIdentity<'a> {
    /// Whether this session is restricted at all (ovsdb-server skips every check for an
    /// empty role).
    pub fn is_restricted(&self) -> bool {
        !self.role.is_empty()
    }

    /// The error ovsdb-server returns, as a JSON-RPC error (not inside a result), to a
    /// `convert` request from a session with a role, whatever the database: only the
    /// root role (no role) may convert. Checked before the parameters are looked at.
    pub fn check_convert(&self, db_name: &str) -> Result<(), OvsdbError> {
        if !self.is_restricted() {
            return Ok(());
        }
        Err(OvsdbError::new(
            ErrorTag::PermissionError,
            format!(
                "RBAC rules for client \"{}\" role \"{}\" prohibit \"convert\" of database \
                 {db_name} (only the root role may convert databases)",
                self.id.unwrap_or(NO_ID),
                self.role
            ),
        ))
    }
}

/// A write operation about to be executed on one table, as the checks need it.
pub(crate) enum Write<'c> {
    /// The complete new row (defaults filled in).
    Insert(&'c [Datum]),
    /// The rows `cond` selects, and the columns the `row` sets.
    Update(&'c Condition, &'c [usize]),
    /// The rows `cond` selects, and the columns the mutations touch.
    Mutate(&'c Condition, &'c [usize]),
    Delete(&'c Condition),
}

impl Write<'_> {
    fn prohibits(&self) -> &'static str {
        match self {
            Write::Insert(_) => "row insertion into",
            Write::Update(..) => "modification of",
            Write::Mutate(..) => "mutate operation on",
            Write::Delete(_) => "row deletion from",
        }
    }
}

/// Checks one write operation on table `t` against the session's role; the
/// `permission error` ovsdb-server returns when the role does not allow it.
pub(crate) fn check(x: &Exec<'_>, t: usize, write: &Write<'_>) -> Result<(), OvsdbError> {
    let Some(who) = x.env.rbac() else {
        return Ok(());
    };
    if !who.is_restricted() {
        return Ok(());
    }
    let Some(role_table) = x.db.schema().table_index(ROLE_TABLE) else {
        return Ok(());
    };
    let allowed = who
        .id
        .is_some_and(|id| permitted(x, role_table, t, who.role, id, write));
    if allowed {
        return Ok(());
    }
    Err(OvsdbError::new(
        ErrorTag::PermissionError,
        format!(
            "RBAC rules for client \"{}\" role \"{}\" prohibit {} table \"{}\".",
            who.id.unwrap_or(NO_ID),
            who.role,
            write.prohibits(),
            x.db.schema().tables[t].name
        ),
    ))
}

/// A row as the checks read it: its table's schema and its working columns.
#[derive(Clone, Copy)]
struct RowView<'r> {
    ts: &'r TableSchema,
    cols: &'r [Datum],
}

impl<'r> RowView<'r> {
    /// The column `name` if it has exactly this type (`ovsdb_util_get_datum`): key type,
    /// value type (None: a set or scalar) and maximum size; anything else reads as absent.
    fn datum(
        &self,
        name: &str,
        key: AtomicType,
        value: Option<AtomicType>,
        max: u32,
    ) -> Option<&'r Datum> {
        let c = self.ts.column(name)?;
        let ty = &c.type_;
        let same_value = ty.value.as_ref().map(|b| b.atomic) == value;
        (ty.key.atomic == key && same_value && ty.max == max).then(|| &self.cols[c.index])
    }

    /// A string column of at most one element, when it has one.
    fn string(&self, name: &str) -> Option<&'r str> {
        let d = self.datum(name, AtomicType::String, None, 1)?;
        d.keys().next().and_then(Atom::as_str)
    }

    fn boolean(&self, name: &str) -> Option<bool> {
        let d = self.datum(name, AtomicType::Boolean, None, 1)?;
        d.keys().next().and_then(Atom::as_bool)
    }

    /// The value of `key` in a string-to-string map column without a size limit.
    fn map_string(&self, name: &str, key: &str) -> Option<&'r str> {
        let d = self.datum(name, AtomicType::String, Some(AtomicType::String), u32::MAX)?;
        d.get(&Atom::string(key)).and_then(Atom::as_str)
    }

    /// The elements of a string set column without a size limit.
    fn string_set(&self, name: &str) -> Option<Vec<&'r str>> {
        let d = self.datum(name, AtomicType::String, None, u32::MAX)?;
        Some(d.keys().filter_map(Atom::as_str).collect())
    }
}

fn row_view<'r>(x: &'r Exec<'_>, t: usize, u: &Uuid) -> Option<RowView<'r>> {
    let (_, cols) = x.current(t, u)?;
    Some(RowView {
        ts: x.db.table_schema(t),
        cols,
    })
}

/// The permission row of `role` for the table named `table`: the first `RBAC_Role` row
/// whose `name` is `role`, then its `permissions` entry for `table`.
fn lookup_perms<'r>(
    x: &'r Exec<'_>,
    role_table: usize,
    role: &str,
    table: &str,
) -> Option<RowView<'r>> {
    let rts = x.db.table_schema(role_table);
    let name_col = rts.column("name")?;
    if name_col.type_.key.atomic != AtomicType::String {
        return None;
    }
    let role_row = x
        .query(role_table, &Condition::default())
        .into_iter()
        .filter_map(|u| row_view(x, role_table, &u))
        .find(|r| {
            r.cols[name_col.index]
                .keys()
                .filter_map(Atom::as_str)
                .any(|k| !k.is_empty() && k == role)
        })?;
    let perms_col = rts.column("permissions")?;
    let ty = &perms_col.type_;
    let value = ty.value.as_ref()?;
    if ty.key.atomic != AtomicType::String || value.atomic != AtomicType::Uuid {
        return None;
    }
    let perm_table = value.ref_table_index?;
    let perm_uuid = *role_row.cols[perms_col.index]
        .get(&Atom::string(table))?
        .as_uuid()?;
    row_view(x, perm_table, &perm_uuid)
}

/// Whether the permission row's `authorization` lets client `id` write `row`.
fn authorized(perms: &RowView<'_>, id: &str, row: &RowView<'_>) -> bool {
    let Some(auth) = perms.string_set("authorization") else {
        return false;
    };
    auth.into_iter().any(|name| {
        if name.is_empty() {
            return true;
        }
        let value = if name.contains(':') {
            // `column:key`, split as strtok does: empty fields are skipped and anything
            // after the second field is ignored.
            let mut fields = name.split(':').filter(|f| !f.is_empty());
            match (fields.next(), fields.next()) {
                (Some(col), Some(key)) => row.map_string(col, key),
                _ => None,
            }
        } else {
            row.string(name)
        };
        value == Some(id)
    })
}

fn permitted(
    x: &Exec<'_>,
    role_table: usize,
    t: usize,
    role: &str,
    id: &str,
    write: &Write<'_>,
) -> bool {
    let ts = x.db.table_schema(t);
    let Some(perms) = lookup_perms(x, role_table, role, &ts.name) else {
        return false;
    };
    // Every row the operation selects must pass, in the transaction's current view; an
    // operation that selects no row is allowed whatever the permission row says.
    let each_row = |cond: &Condition, ok: &dyn Fn(&RowView<'_>) -> bool| {
        x.query(t, cond)
            .iter()
            .all(|u| row_view(x, t, u).is_some_and(|r| ok(&r)))
    };
    let insert_delete = || perms.boolean("insert_delete") == Some(true);
    match write {
        Write::Insert(cols) => authorized(&perms, id, &RowView { ts, cols }) && insert_delete(),
        Write::Delete(cond) => each_row(cond, &|r| authorized(&perms, id, r) && insert_delete()),
        Write::Update(cond, columns) | Write::Mutate(cond, columns) => {
            let Some(modifiable) = perms.string_set("update") else {
                return false;
            };
            let columns_ok = columns
                .iter()
                .all(|&c| modifiable.contains(&ts.columns[c].name.as_str()));
            each_row(cond, &|r| authorized(&perms, id, r) && columns_ok)
        }
    }
}
