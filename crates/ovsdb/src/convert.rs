//! Online schema conversion (the `convert` method, an Open vSwitch extension; protocol
//! doc §2.12): the data of a database moved to a new schema. Columns missing from the new
//! schema are dropped, new columns get their defaults, every value is re-checked against
//! its new type, and the ordinary commit-time checks run on the result (references,
//! garbage collection under the new root set, `maxRows`, weak references, indexes), as
//! ovsdb-server does by converting inside one transaction.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::database::Database;
use crate::error::OvsdbError;
use crate::schema::DatabaseSchema;
use crate::transaction::TxnEnv;

impl Database {
    /// Returns this database's data converted to `schema`. Row UUIDs are kept; every row
    /// gets a new `_version` from `env`. Fails with the first error the conversion or the
    /// commit-time checks report.
    pub fn convert(
        &self,
        schema: Arc<DatabaseSchema>,
        env: &mut dyn TxnEnv,
    ) -> Result<Database, OvsdbError> {
        let mut ops = Vec::new();
        for nt in &schema.tables {
            let Some(ot) = self.schema().table(&nt.name) else {
                continue;
            };
            for (u, row) in self.rows(&nt.name) {
                let mut m = Map::new();
                for nc in &nt.columns {
                    if let Some(oc) = ot.column(&nc.name) {
                        m.insert(nc.name.clone(), row.get(oc.index).to_json());
                    }
                }
                ops.push(json!({"op":"insert","table":nt.name,"uuid":u.to_string(),"row":Value::Object(m)}));
            }
        }
        let mut db = Database::new(schema);
        db.set_reserved(self.is_reserved());
        let out = db.transact_privileged(&ops, env);
        if let Some(err) = out
            .result
            .as_array()
            .and_then(|a| a.iter().find(|r| r.get("error").is_some()))
        {
            return Err(error_from_json(err));
        }
        Ok(db)
    }
}

fn error_from_json(v: &Value) -> OvsdbError {
    let tag = v["error"]
        .as_str()
        .and_then(crate::ErrorTag::from_str_tag)
        .unwrap_or(crate::ErrorTag::InternalError);
    OvsdbError {
        tag,
        details: v.get("details").and_then(Value::as_str).map(str::to_string),
        syntax: v.get("syntax").and_then(Value::as_str).map(str::to_string),
    }
}
