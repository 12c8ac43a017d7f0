//! Member-by-member parsing of JSON objects with ovsdb-server's error texts
//! (`ovsdb/ovsdb-parser.c`): "Parsing `<context>` failed: Required 'x' member is missing.",
//! "Type mismatch for member 'x'.", "Member 'x' is present but not allowed here.",
//! "Object expected.". The first error wins; later calls are no-ops.

use serde_json::{Map, Value};

use crate::atom::is_id;
use crate::error::OvsdbError;

/// Which JSON types a member may have.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Any,
    Id,
    String,
    Object,
    Array,
    Boolean,
    Integer,
    Number,
    StringOrObject,
    IntegerOrString,
}

impl Kind {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::Any => true,
            Kind::Id => v.as_str().is_some_and(is_id),
            Kind::String => v.is_string(),
            Kind::Object => v.is_object(),
            Kind::Array => v.is_array(),
            Kind::Boolean => v.is_boolean(),
            Kind::Integer => {
                matches!(
                    crate::atom::json_number(v),
                    Some(crate::atom::JsonNum::Int(_))
                )
            }
            Kind::Number => v.is_number(),
            Kind::StringOrObject => v.is_string() || v.is_object(),
            Kind::IntegerOrString => v.is_string() || Kind::Integer.accepts(v),
        }
    }
}

/// What is being parsed, for error texts; rendered only when an error is raised.
pub(crate) enum Context {
    Text(String),
    /// "ovsdb operation N of M".
    Operation(usize, usize),
}

impl From<&str> for Context {
    fn from(s: &str) -> Context {
        Context::Text(s.to_string())
    }
}

impl From<String> for Context {
    fn from(s: String) -> Context {
        Context::Text(s)
    }
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Context::Text(s) => f.write_str(s),
            Context::Operation(i, n) => write!(f, "ovsdb operation {i} of {n}"),
        }
    }
}

pub(crate) struct Parser<'a> {
    json: &'a Value,
    obj: Option<&'a Map<String, Value>>,
    context: Context,
    /// Members asked for so far (no operation or schema object has more than 10).
    used: [&'a str; 10],
    n_used: usize,
    error: Option<OvsdbError>,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(json: &'a Value, context: impl Into<Context>) -> Parser<'a> {
        let mut p = Parser {
            json,
            obj: json.as_object(),
            context: context.into(),
            used: [""; 10],
            n_used: 0,
            error: None,
        };
        if p.obj.is_none() {
            // ovsdb-server reports this one without the `syntax` member.
            let msg = format!("Parsing {} failed: Object expected.", p.context);
            p.error = Some(OvsdbError::syntax_msg(msg));
        }
        p
    }

    pub(crate) fn raise(&mut self, msg: &str) {
        if self.error.is_none() {
            self.error = Some(OvsdbError::syntax(
                self.json,
                format!("Parsing {} failed: {}", self.context, msg),
            ));
        }
    }

    #[allow(dead_code)]
    pub(crate) fn has_error(&self) -> bool {
        self.error.is_some()
    }

    /// A required member.
    pub(crate) fn required(&mut self, name: &'a str, kind: Kind) -> Option<&'a Value> {
        self.member(name, kind, false)
    }

    /// An optional member.
    pub(crate) fn optional(&mut self, name: &'a str, kind: Kind) -> Option<&'a Value> {
        self.member(name, kind, true)
    }

    fn member(&mut self, name: &'a str, kind: Kind, optional: bool) -> Option<&'a Value> {
        let obj = self.obj?;
        if self.error.is_some() {
            return None;
        }
        // Operation objects have a handful of members: comparing names beats hashing one.
        let found = if obj.len() <= 16 {
            obj.iter().find(|(k, _)| k.as_str() == name).map(|(_, v)| v)
        } else {
            obj.get(name)
        };
        match found {
            Some(v) => {
                if self.n_used < self.used.len() {
                    self.used[self.n_used] = name;
                    self.n_used += 1;
                }
                if kind.accepts(v) {
                    Some(v)
                } else {
                    self.raise(&format!("Type mismatch for member '{name}'."));
                    None
                }
            }
            None => {
                if !optional {
                    self.raise(&format!("Required '{name}' member is missing."));
                }
                None
            }
        }
    }

    /// Returns the first error, or complains about the first member that was not asked for.
    pub(crate) fn finish(mut self) -> Result<(), OvsdbError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let Some(obj) = self.obj {
            if let Some(k) = obj
                .keys()
                .find(|k| !self.used[..self.n_used].contains(&k.as_str()))
            {
                let msg = format!("Member '{k}' is present but not allowed here.");
                self.raise(&msg);
                return Err(self.error.take().expect("just raised"));
            }
        }
        Ok(())
    }

    /// The error so far, without the unknown-member check.
    pub(crate) fn take_error(&mut self) -> Option<OvsdbError> {
        self.error.take()
    }
}

impl<'a> Parser<'a> {
    /// The object being parsed.
    pub(crate) fn json(&self) -> &'a Value {
        self.json
    }
}
