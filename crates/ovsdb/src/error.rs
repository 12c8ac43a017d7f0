//! OVSDB error objects (RFC 7047 §3.1 "Notation": `<error>`), with the error tags that
//! ovsdb-server 3.1 actually emits (see ovsdb-protocol.md §1.7).
//!
//! Every failure the engine reports is an [`OvsdbError`]: a tag (one [`ErrorTag`] per
//! wire tag), free-text details and, for syntax errors, the offending JSON re-serialised
//! with sorted keys. `to_json()` gives the object that goes into a transact result slot.

use crate::json::JsonLike;
use serde_json::{json, Map, Value};

/// The `error` member of an OVSDB error object. One variant per tag on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorTag {
    SyntaxError,
    UnknownColumn,
    UnknownTable,
    UnknownDatabase,
    DatabaseNotAvailable,
    ConstraintViolation,
    ReferentialIntegrityViolation,
    OvsdbError,
    DomainError,
    RangeError,
    TimedOut,
    Aborted,
    NotOwner,
    NotAllowed,
    DuplicateUuidName,
    DuplicateUuid,
    UnknownFunction,
    UnknownMutator,
    InvalidParameters,
    Canceled,
    PermissionError,
    InternalError,
    IoError,
    ResourcesExhausted,
    NotSupported,
}

impl ErrorTag {
    /// The exact string used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorTag::SyntaxError => "syntax error",
            ErrorTag::UnknownColumn => "unknown column",
            ErrorTag::UnknownTable => "unknown table",
            ErrorTag::UnknownDatabase => "unknown database",
            ErrorTag::DatabaseNotAvailable => "database not available",
            ErrorTag::ConstraintViolation => "constraint violation",
            ErrorTag::ReferentialIntegrityViolation => "referential integrity violation",
            ErrorTag::OvsdbError => "ovsdb error",
            ErrorTag::DomainError => "domain error",
            ErrorTag::RangeError => "range error",
            ErrorTag::TimedOut => "timed out",
            ErrorTag::Aborted => "aborted",
            ErrorTag::NotOwner => "not owner",
            ErrorTag::NotAllowed => "not allowed",
            ErrorTag::DuplicateUuidName => "duplicate uuid-name",
            ErrorTag::DuplicateUuid => "duplicate uuid",
            ErrorTag::UnknownFunction => "unknown function",
            ErrorTag::UnknownMutator => "unknown mutator",
            ErrorTag::InvalidParameters => "invalid parameters",
            ErrorTag::Canceled => "canceled",
            ErrorTag::PermissionError => "permission error",
            ErrorTag::InternalError => "internal error",
            ErrorTag::IoError => "I/O error",
            ErrorTag::ResourcesExhausted => "resources exhausted",
            ErrorTag::NotSupported => "not supported",
        }
    }

    /// Inverse of [`ErrorTag::as_str`].
    pub fn from_str_tag(s: &str) -> Option<ErrorTag> {
        const ALL: [ErrorTag; 25] = [
            ErrorTag::SyntaxError,
            ErrorTag::UnknownColumn,
            ErrorTag::UnknownTable,
            ErrorTag::UnknownDatabase,
            ErrorTag::DatabaseNotAvailable,
            ErrorTag::ConstraintViolation,
            ErrorTag::ReferentialIntegrityViolation,
            ErrorTag::OvsdbError,
            ErrorTag::DomainError,
            ErrorTag::RangeError,
            ErrorTag::TimedOut,
            ErrorTag::Aborted,
            ErrorTag::NotOwner,
            ErrorTag::NotAllowed,
            ErrorTag::DuplicateUuidName,
            ErrorTag::DuplicateUuid,
            ErrorTag::UnknownFunction,
            ErrorTag::UnknownMutator,
            ErrorTag::InvalidParameters,
            ErrorTag::Canceled,
            ErrorTag::PermissionError,
            ErrorTag::InternalError,
            ErrorTag::IoError,
            ErrorTag::ResourcesExhausted,
            ErrorTag::NotSupported,
        ];
        ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for ErrorTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OVSDB error: tag, optional details, optional syntax (the offending JSON as text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tag}{}", details.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct OvsdbError {
    pub tag: ErrorTag,
    pub details: Option<String>,
    pub syntax: Option<String>,
}

impl OvsdbError {
    pub fn new(tag: ErrorTag, details: impl Into<String>) -> OvsdbError {
        OvsdbError {
            tag,
            details: Some(details.into()),
            syntax: None,
        }
    }

    /// A tag-only error (no details).
    pub fn bare(tag: ErrorTag) -> OvsdbError {
        OvsdbError {
            tag,
            details: None,
            syntax: None,
        }
    }

    /// `syntax error` about `json`: the offending JSON is recorded, re-serialised with
    /// sorted keys as ovsdb-server does.
    pub fn syntax<'a>(json: impl JsonLike<'a>, details: impl Into<String>) -> OvsdbError {
        OvsdbError::new(ErrorTag::SyntaxError, details).with_syntax(json)
    }

    /// `syntax error` with no recorded JSON.
    pub fn syntax_msg(details: impl Into<String>) -> OvsdbError {
        OvsdbError::new(ErrorTag::SyntaxError, details)
    }

    pub fn constraint(details: impl Into<String>) -> OvsdbError {
        OvsdbError::new(ErrorTag::ConstraintViolation, details)
    }

    pub fn with_syntax<'a>(mut self, json: impl JsonLike<'a>) -> OvsdbError {
        self.syntax = Some(json.sorted_string());
        self
    }

    /// Prefixes the details (used for "Parsing ovsdb operation N of M failed: ...").
    pub fn prefixed(mut self, prefix: &str) -> OvsdbError {
        self.details = Some(match self.details {
            Some(d) => format!("{prefix}{d}"),
            None => prefix.to_string(),
        });
        self
    }

    pub fn tag_str(&self) -> &'static str {
        self.tag.as_str()
    }

    pub fn details(&self) -> Option<&str> {
        self.details.as_deref()
    }

    /// `{"error":tag,"details":...,"syntax":...}` (absent members omitted).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("error".into(), json!(self.tag.as_str()));
        if let Some(d) = &self.details {
            m.insert("details".into(), json!(d));
        }
        if let Some(s) = &self.syntax {
            m.insert("syntax".into(), json!(s));
        }
        Value::Object(m)
    }
}

/// Serialises `v` the way ovsdb-server writes the `syntax` member: compact, object keys
/// sorted at every level, numbers as its JSON reader holds them (integral values that fit an
/// int64 as integers, other reals as C's `%.15g`).
pub fn sorted_json_string(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, e) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(e, out);
                }
                out.push(']');
            }
            Value::Number(_) => match crate::atom::json_number(v) {
                Some(crate::atom::JsonNum::Int(i)) => out.push_str(&i.to_string()),
                Some(crate::atom::JsonNum::Real(r)) => out.push_str(&crate::atom::format_g15(r)),
                None => out.push_str(&v.to_string()),
            },
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_json_shapes() {
        let e = OvsdbError::syntax(&json!({"b":1,"a":2}), "bad");
        assert_eq!(
            e.to_json(),
            json!({"error":"syntax error","details":"bad","syntax":"{\"a\":2,\"b\":1}"})
        );
        assert_eq!(
            OvsdbError::bare(ErrorTag::Aborted).to_json(),
            json!({"error":"aborted"})
        );
        for t in [
            "syntax error",
            "not owner",
            "I/O error",
            "duplicate uuid-name",
        ] {
            assert_eq!(ErrorTag::from_str_tag(t).unwrap().as_str(), t);
        }
    }
}
