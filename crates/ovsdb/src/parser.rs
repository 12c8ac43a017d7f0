//! Member-by-member parsing of JSON objects with ovsdb-server's error texts
//! (`ovsdb/ovsdb-parser.c`): "Parsing `<context>` failed: Required 'x' member is missing.",
//! "Type mismatch for member 'x'.", "Member 'x' is present but not allowed here.",
//! "Object expected.". The first error wins; later calls are no-ops.

use crate::atom::is_id;
use crate::error::OvsdbError;
use crate::json::JsonLike;

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
    fn accepts<'a>(self, v: impl JsonLike<'a>) -> bool {
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

pub(crate) struct Parser<J> {
    json: J,
    is_object: bool,
    context: Context,
    /// Members asked for so far (no operation or schema object has more than 10).
    used: [&'static str; 10],
    n_used: usize,
    error: Option<OvsdbError>,
}

impl<'a, J: JsonLike<'a>> Parser<J> {
    pub(crate) fn new(json: J, context: impl Into<Context>) -> Parser<J> {
        let mut p = Parser {
            json,
            is_object: json.is_object(),
            context: context.into(),
            used: [""; 10],
            n_used: 0,
            error: None,
        };
        if !p.is_object {
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

    /// A required member.
    pub(crate) fn required(&mut self, name: &'static str, kind: Kind) -> Option<J> {
        self.member(name, kind, false)
    }

    /// An optional member.
    pub(crate) fn optional(&mut self, name: &'static str, kind: Kind) -> Option<J> {
        self.member(name, kind, true)
    }

    fn member(&mut self, name: &'static str, kind: Kind, optional: bool) -> Option<J> {
        if !self.is_object || self.error.is_some() {
            return None;
        }
        let found = self.json.get(name);
        match found {
            Some(v) => {
                // Each name once, so that `finish` can compare counts.
                if self.n_used < self.used.len() && !self.used[..self.n_used].contains(&name) {
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
        if let Some(members) = self.json.members() {
            // As many distinct members found as the object has: none is unknown.
            if members.size_hint() == (self.n_used, Some(self.n_used)) {
                return Ok(());
            }
            if let Some((k, _)) = members
                .into_iter()
                .find(|(k, _)| !self.used[..self.n_used].contains(k))
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

impl<'a, J: JsonLike<'a>> Parser<J> {
    /// The object being parsed.
    pub(crate) fn json(&self) -> J {
        self.json
    }
}
