//! Log levels that can be changed while the member runs: the `vlog/list` and `vlog/set`
//! commands of the control socket (ovs-appctl's `vlog/*`, OVS `lib/vlog.c`), over a reloadable
//! tracing filter.
//!
//! Halyard logs to stderr only, so OVS's destinations (`console`, `syslog`, `file`) have no
//! meaning here: a `vlog/set` spec may name them, and they are accepted and ignored. Modules
//! are OVS-like short names mapped to crates (`raft` → `halyard_raft`...). A spec in tracing's
//! own filter syntax (`halyard_raft=debug,info`) is accepted as well and replaces the filter.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// OVS-style module names and the tracing targets they stand for.
pub const MODULES: &[(&str, &str)] = &[
    ("halyard", "halyard"),
    ("jsonrpc", "halyard_server"),
    ("openraft", "openraft"),
    ("ovsdb", "ovsdb"),
    ("raft", "halyard_raft"),
    ("storage", "halyard_storage"),
];

/// Levels in OVS words, most to least severe, with their tracing equivalents. OVS's `emer`
/// and `err` both become tracing's `error`.
const LEVELS: &[(&str, &str)] = &[
    ("off", "off"),
    ("emer", "error"),
    ("err", "error"),
    ("warn", "warn"),
    ("info", "info"),
    ("dbg", "debug"),
];

const DESTINATIONS: &[&str] = &["console", "syslog", "file", "any"];

struct State {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The filter as text: the default directive, then per-target directives.
    default: String,
    targets: BTreeMap<String, String>,
}

static STATE: OnceLock<Mutex<State>> = OnceLock::new();

/// Installs the global subscriber (stderr) with `filter` (tracing-subscriber syntax).
pub fn init(filter: &str) -> anyhow::Result<()> {
    let parsed =
        EnvFilter::try_new(filter).map_err(|e| anyhow::anyhow!("invalid --log filter: {e}"))?;
    let (layer, handle) = reload::Layer::new(parsed);
    tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    let (default, targets) = split(filter);
    let _ = STATE.set(Mutex::new(State {
        handle,
        default,
        targets,
    }));
    Ok(())
}

/// Splits a filter into its default directive and `target=level` directives.
fn split(filter: &str) -> (String, BTreeMap<String, String>) {
    let mut default = String::from("error");
    let mut targets = BTreeMap::new();
    for d in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match d.split_once('=') {
            Some((t, l)) => {
                targets.insert(t.to_string(), l.to_string());
            }
            None => default = d.to_string(),
        }
    }
    (default, targets)
}

fn filter_text(s: &State) -> String {
    let mut parts = vec![s.default.clone()];
    parts.extend(s.targets.iter().map(|(t, l)| format!("{t}={l}")));
    parts.join(",")
}

/// The text of `vlog/list`: the effective level per module, then the whole filter.
pub fn list() -> String {
    let Some(state) = STATE.get() else {
        return "logging is not initialised\n".into();
    };
    let s = state.lock().unwrap();
    let mut out = String::from("                 stderr\n                 ------\n");
    for (module, target) in MODULES {
        let level = s.targets.get(*target).unwrap_or(&s.default);
        out.push_str(&format!("{module:<16} {:>6}\n", ovs_level(level)));
    }
    out.push_str(&format!("filter: {}\n", filter_text(&s)));
    out
}

fn ovs_level(tracing_level: &str) -> String {
    match tracing_level.to_ascii_lowercase().as_str() {
        "off" => "OFF".into(),
        "error" => "ERR".into(),
        "warn" => "WARN".into(),
        "info" => "INFO".into(),
        "debug" => "DBG".into(),
        "trace" => "TRACE".into(),
        other => other.to_uppercase(),
    }
}

/// Applies one `vlog/set` argument. OVS form: `[module][:destination][:level]` in any order
/// (`ANY` or no module means every module); tracing form: a filter directive list.
pub fn set(spec: &str) -> Result<(), String> {
    let Some(state) = STATE.get() else {
        return Err("logging is not initialised".into());
    };
    let mut s = state.lock().unwrap();
    if spec.contains('=') || spec.contains(',') {
        EnvFilter::try_new(spec).map_err(|e| format!("invalid filter {spec:?}: {e}"))?;
        let (default, targets) = split(spec);
        s.default = default;
        s.targets = targets;
    } else {
        let mut module: Option<&str> = None;
        let mut level: Option<&str> = None;
        for word in spec.split(':').filter(|w| !w.is_empty()) {
            let lower = word.to_ascii_lowercase();
            if let Some((_, l)) = LEVELS
                .iter()
                .find(|(ovs, tr)| *ovs == lower || *tr == lower)
            {
                level = Some(l);
            } else if DESTINATIONS.contains(&lower.as_str()) {
            } else if let Some((_, t)) = MODULES.iter().find(|(m, t)| *m == lower || *t == lower) {
                module = Some(t);
            } else {
                // The text ovsdb-server answers for an unknown word.
                return Err(format!("no destination, level, or module \"{word}\""));
            }
        }
        let level = level.unwrap_or("debug");
        match module {
            Some(t) => {
                s.targets.insert(t.to_string(), level.to_string());
            }
            None => {
                s.default = level.to_string();
                for (_, t) in MODULES {
                    s.targets.remove(*t);
                }
            }
        }
    }
    let text = filter_text(&s);
    let filter = EnvFilter::try_new(&text).map_err(|e| format!("invalid filter {text:?}: {e}"))?;
    s.handle.reload(filter).map_err(|e| e.to_string())?;
    tracing::info!(filter = %text, "log filter changed");
    Ok(())
}
