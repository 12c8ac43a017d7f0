//! `halyard backup`: writes a database as an ovsdb-server standalone database file, the same
//! file `ovsdb-client backup` writes — `ovsdb-tool` and `ovsdb-server` open it, and
//! `halyard create-cluster --from` restores it.
//!
//! It is an ordinary OVSDB client of any member (tcp, ssl or unix remote): `get_schema`, then one
//! `transact` that selects every table, so the copy is one consistent, linearizable snapshot.
//! The file holds two records: the schema, then one transaction inserting every row with its
//! UUID (`_is_diff` true, as `ovsdb-client backup` writes it).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ovsdb_file::{write_record, STANDALONE_MAGIC};

/// A whole database can be large: accept replies up to this size.
const MAX_REPLY: usize = 4 * 1024 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// OVSDB remote of any member: `tcp:HOST:PORT`, `ssl:HOST:PORT` (with --private-key,
    /// --certificate, --ca-cert) or `unix:PATH`.
    #[arg(long, value_name = "tcp:HOST:PORT|ssl:HOST:PORT|unix:PATH")]
    pub remote: String,
    /// Database to back up (default: the only one the member serves besides _Server).
    #[arg(long, value_name = "NAME")]
    pub db: Option<String>,
    /// Write to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

/// A minimal JSON-RPC client: one request at a time, answers the server's echo probes.
pub(crate) struct Client<S> {
    stream: S,
    framer: halyard_server::framing::Framer,
    next_id: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub(crate) fn new(stream: S) -> Client<S> {
        Client {
            stream,
            framer: halyard_server::framing::Framer::new(MAX_REPLY),
            next_id: 0,
        }
    }

    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"id": id, "method": method, "params": params});
        self.stream.write_all(req.to_string().as_bytes()).await?;
        loop {
            let msg = match self.framer.next_message()? {
                Some(m) => m,
                None => {
                    if self.stream.read_buf(self.framer.buffer_mut()).await? == 0 {
                        bail!("the server closed the connection");
                    }
                    continue;
                }
            };
            if msg.get("method").and_then(Value::as_str) == Some("echo") {
                let reply = json!({"id": msg["id"], "result": msg["params"], "error": null});
                self.stream.write_all(reply.to_string().as_bytes()).await?;
                continue;
            }
            if msg.get("id") != Some(&json!(id)) {
                continue;
            }
            if !msg["error"].is_null() {
                bail!("{method}: {}", msg["error"]);
            }
            return Ok(msg["result"].clone());
        }
    }
}

/// Runs `halyard backup`.
pub fn run(
    args: BackupArgs,
    tls: Option<halyard_server::TlsSettings>,
) -> Result<std::process::ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    let (schema, data) = rt.block_on(async {
        tokio::time::timeout(TIMEOUT, fetch(&args.remote, args.db.as_deref(), tls))
            .await
            .with_context(|| format!("{}: no complete answer within {TIMEOUT:?}", args.remote))?
    })?;
    let mut bytes = Vec::new();
    write_record(&mut bytes, STANDALONE_MAGIC, &schema)?;
    write_record(&mut bytes, STANDALONE_MAGIC, &data)?;
    match &args.output {
        Some(path) => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &bytes)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, path)?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn fetch(
    remote: &str,
    db: Option<&str>,
    tls: Option<halyard_server::TlsSettings>,
) -> Result<(Value, Value)> {
    let framer = halyard_server::framing::Framer::new(MAX_REPLY);
    // Generic over the stream (TCP or unix): a closure could serve only one type.
    fn client<S>(stream: S, framer: halyard_server::framing::Framer) -> Client<S> {
        Client {
            stream,
            framer,
            next_id: 0,
        }
    }
    if let Some(addr) = remote.strip_prefix("tcp:") {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {remote}"))?;
        backup_over(client(stream, framer), db).await
    } else if let Some(addr) = remote.strip_prefix("ssl:") {
        let Some(settings) = tls else {
            bail!("{remote}: ssl: remotes need --private-key, --certificate and --ca-cert");
        };
        let config = halyard_server::tls::build(&settings)?.client;
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {remote}"))?;
        // As for members, the server is verified against the CA, not by name.
        let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .with_context(|| format!("bad host in {remote}"))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .with_context(|| format!("{remote}: TLS handshake failed"))?;
        backup_over(client(stream, framer), db).await
    } else if let Some(path) = remote.strip_prefix("unix:") {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .with_context(|| format!("cannot connect to {remote}"))?;
        backup_over(client(stream, framer), db).await
    } else {
        bail!("--remote must be tcp:HOST:PORT, ssl:HOST:PORT or unix:PATH, not {remote:?}")
    }
}

async fn backup_over<S: AsyncRead + AsyncWrite + Unpin>(
    mut c: Client<S>,
    db: Option<&str>,
) -> Result<(Value, Value)> {
    let db = match db {
        Some(db) => db.to_string(),
        None => {
            let dbs = c.call("list_dbs", json!([])).await?;
            let names: Vec<&str> = dbs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|d| *d != "_Server")
                .collect();
            match names.as_slice() {
                [one] => one.to_string(),
                [] => bail!("the server has no database to back up"),
                many => bail!(
                    "the server has several databases ({}); choose one with --db",
                    many.join(", ")
                ),
            }
        }
    };
    let schema = c.call("get_schema", json!([db])).await?;
    let tables: Vec<String> = schema["tables"]
        .as_object()
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    let mut params = vec![json!(db)];
    params.extend(
        tables
            .iter()
            .map(|t| json!({"op": "select", "table": t, "where": []})),
    );
    let result = c.call("transact", Value::Array(params)).await?;
    let mut data = Map::new();
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    data.insert("_date".into(), json!(millis));
    data.insert("_comment".into(), json!("produced by \"halyard backup\""));
    data.insert("_is_diff".into(), json!(true));
    for (table, r) in tables.iter().zip(result.as_array().into_iter().flatten()) {
        if let Some(e) = r.get("error") {
            bail!(
                "select on {table}: {e} {}",
                r.get("details").unwrap_or(&Value::Null)
            );
        }
        let mut rows = Map::new();
        for row in r["rows"].as_array().into_iter().flatten() {
            let Some(mut cols) = row.as_object().cloned() else {
                continue;
            };
            let Some(uuid) = cols
                .remove("_uuid")
                .and_then(|u| u.get(1).and_then(Value::as_str).map(str::to_string))
            else {
                bail!("select on {table} returned a row without _uuid");
            };
            cols.remove("_version");
            rows.insert(uuid, Value::Object(cols));
        }
        if !rows.is_empty() {
            data.insert(table.clone(), Value::Object(rows));
        }
    }
    Ok((schema, Value::Object(data)))
}
