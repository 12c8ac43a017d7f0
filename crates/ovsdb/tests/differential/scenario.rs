//! Scenario files and golden files of the differential suite.
//!
//! A scenario (`scenarios/NNN-name.json`) is
//! `{"schema": "test" | "ovn-nb", "description": "...", "notes": [...], "transactions": [[op, ...], ...]}`
//! where each transaction is the `transact` params after the database name (RFC 7047 §4.1.3),
//! run in order against an empty database. The harness appends one more transaction that
//! selects every table, so final states are compared too.
//!
//! Its golden file (`scenarios/NNN-name.golden`, next to it) holds ovsdb-server 3.1's
//! normalised answers, one block per transaction:
//! ```text
//! ### 3
//! >>> [the request ops, compact]
//! <<< [
//!   result of op 1,
//!   {"rows":[
//!     row,
//!     row
//!   ]}
//! ]
//! ```
//! Only the `<<<` part is compared; the `>>>` line is there for the reader and to detect a
//! golden file that no longer matches its scenario.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};

pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    pub schema_path: PathBuf,
    pub schema: Value,
    /// The scripted transactions plus the final select of every table.
    pub transactions: Vec<Vec<Value>>,
}

pub fn differential_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential")
}

pub fn schema_path(name: &str) -> Result<PathBuf, String> {
    match name {
        "test" => Ok(differential_dir().join("test.ovsschema")),
        "ovn-nb" => Ok(differential_dir().join("ovn-nb.ovsschema")),
        other => Err(format!(
            "unknown schema {other:?} (use \"test\" or \"ovn-nb\")"
        )),
    }
}

/// A transaction that selects every table of `schema`, all columns, in table-name order.
pub fn select_all(schema: &Value) -> Vec<Value> {
    let mut tables: Vec<&String> = schema["tables"]
        .as_object()
        .map(|t| t.keys().collect())
        .unwrap_or_default();
    tables.sort();
    tables
        .into_iter()
        .map(|t| serde_json::json!({"op": "select", "table": t, "where": []}))
        .collect()
}

pub fn load_all() -> Result<Vec<Scenario>, String> {
    let dir = differential_dir().join("scenarios");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load(p)).collect()
}

pub fn load(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let schema_name = v["schema"]
        .as_str()
        .ok_or_else(|| format!("{}: missing \"schema\"", path.display()))?;
    let schema_path = schema_path(schema_name).map_err(|e| format!("{}: {e}", path.display()))?;
    let schema: Value = serde_json::from_slice(
        &std::fs::read(&schema_path).map_err(|e| format!("{}: {e}", schema_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", schema_path.display()))?;
    let mut transactions: Vec<Vec<Value>> = v["transactions"]
        .as_array()
        .ok_or_else(|| format!("{}: missing \"transactions\" array", path.display()))?
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_array()
                .cloned()
                .ok_or_else(|| format!("{}: transaction {} is not an array", path.display(), i + 1))
        })
        .collect::<Result<_, _>>()?;
    transactions.push(select_all(&schema));
    Ok(Scenario {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        path: path.to_path_buf(),
        schema_path,
        schema,
        transactions,
    })
}

impl Scenario {
    pub fn golden_path(&self) -> PathBuf {
        self.path.with_extension("golden")
    }
}

/// Pretty-prints one normalised result: one op result per line, one selected row per line.
fn format_result(result: &Value) -> String {
    let Some(items) = result.as_array() else {
        return result.to_string();
    };
    if items.is_empty() {
        return "[]".to_string();
    }
    let mut out = String::from("[\n");
    for (i, item) in items.iter().enumerate() {
        let sep = if i + 1 < items.len() { "," } else { "" };
        let compact = item.to_string();
        match item.get("rows").and_then(Value::as_array) {
            Some(rows) if item.as_object().is_some_and(|o| o.len() == 1) && compact.len() > 100 => {
                out.push_str("  {\"rows\":[\n");
                for (j, row) in rows.iter().enumerate() {
                    let rsep = if j + 1 < rows.len() { "," } else { "" };
                    out.push_str(&format!("    {row}{rsep}\n"));
                }
                out.push_str(&format!("  ]}}{sep}\n"));
            }
            _ => out.push_str(&format!("  {compact}{sep}\n")),
        }
    }
    out.push(']');
    out
}

pub fn write_golden(s: &Scenario, results: &[Value]) -> Result<(), String> {
    let mut out = format!(
        "# Golden answers of ovsdb-server 3.1 for {}.json, normalised (see tests/differential/normalise.rs).\n\
         # Regenerate with: HALYARD_REGEN_GOLDEN=1 cargo test -p ovsdb --test differential\n",
        s.name
    );
    for (i, (req, res)) in s.transactions.iter().zip(results).enumerate() {
        out.push_str(&format!("### {}\n", i + 1));
        out.push_str(&format!(">>> {}\n", Value::Array(req.clone())));
        out.push_str(&format!("<<< {}\n", format_result(res)));
    }
    std::fs::write(s.golden_path(), out).map_err(|e| format!("{}: {e}", s.golden_path().display()))
}

pub struct Golden {
    pub requests: Vec<Value>,
    pub results: Vec<Value>,
}

pub fn read_golden(s: &Scenario) -> Result<Golden, String> {
    let path = s.golden_path();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut g = Golden {
        requests: Vec::new(),
        results: Vec::new(),
    };
    for block in text.split("\n### ").skip(1) {
        let (_num, rest) = block.split_once('\n').unwrap_or((block, ""));
        let (req_line, res_part) = rest
            .split_once("\n<<< ")
            .ok_or_else(|| format!("{}: block without <<<", path.display()))?;
        let req = req_line
            .strip_prefix(">>> ")
            .ok_or_else(|| format!("{}: block without >>>", path.display()))?;
        g.requests.push(
            serde_json::from_str(req).map_err(|e| format!("{}: request: {e}", path.display()))?,
        );
        g.results.push(
            serde_json::from_str(res_part)
                .map_err(|e| format!("{}: result: {e}", path.display()))?,
        );
    }
    Ok(g)
}
