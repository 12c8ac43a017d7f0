//! JSON-RPC 1.0 messages as ovsdb-server reads and writes them (RFC 7047 §4 and
//! `lib/jsonrpc.c`; docs/ovsdb-protocol.md §1.3 and §1.7).
//!
//! Incoming messages are classified by their *non-null* members and then checked strictly;
//! any violation is a protocol error that drops the connection without a reply. Outgoing
//! messages have exactly ovsdb-server's shapes: note that an error reply has no `result`
//! member at all, which differs from RFC 7047 and which clients already cope with.

use serde_json::{Map, Value};

/// A message received from a client, after the shape checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Vec<Value>,
    },
    Notification {
        method: String,
        params: Vec<Value>,
    },
    /// A reply sent *to* the server; only answers to the server's own echo probe (id
    /// `"echo"`) are expected.
    Reply {
        id: Value,
    },
    /// An error reply sent to the server: never expected, even with id `"echo"`.
    ErrorReply {
        id: Value,
    },
}

/// Why a message is not valid JSON-RPC; logged as `received bad JSON-RPC message: ...`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadMessage {
    #[error("message has unexpected member \"{0}\"")]
    UnexpectedMember(String),
    #[error("method is not a JSON string")]
    MethodNotString,
    #[error("\"params\" must be JSON array")]
    ParamsNotArray,
    #[error("{kind} must have \"{member}\"")]
    Missing {
        kind: &'static str,
        member: &'static str,
    },
    #[error("{kind} must not have \"{member}\"")]
    Forbidden {
        kind: &'static str,
        member: &'static str,
    },
}

const MEMBERS: [&str; 5] = ["method", "params", "result", "error", "id"];

/// Classifies and checks one top-level object. `null` members count as absent.
pub fn parse(msg: Value) -> Result<Incoming, BadMessage> {
    let Value::Object(mut obj) = msg else {
        // The framer only yields objects; be defensive anyway.
        return Err(BadMessage::UnexpectedMember(String::new()));
    };
    if let Some(k) = obj.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
        return Err(BadMessage::UnexpectedMember(k.clone()));
    }
    // `"method": null` is present-but-not-a-string in ovsdb-server, unlike the other members.
    let method_member = match obj.remove("method") {
        None => MethodMember::Absent,
        Some(Value::String(s)) => MethodMember::String(s),
        Some(_) => MethodMember::Other,
    };
    let mut take = |name: &str| match obj.remove(name) {
        Some(Value::Null) | None => None,
        Some(v) => Some(v),
    };
    let params = take("params");
    let result = take("result");
    let error = take("error");
    let id = take("id");
    let method = match method_member {
        MethodMember::Absent => None,
        MethodMember::String(s) => Some(s),
        MethodMember::Other => return Err(BadMessage::MethodNotString),
    };
    let params = match params {
        None => None,
        Some(Value::Array(a)) => Some(a),
        Some(_) => return Err(BadMessage::ParamsNotArray),
    };

    // Bit order: method, params, result, error, id (as in jsonrpc_msg_is_valid()).
    let (kind, pattern) = if result.is_some() {
        ("reply", [false, false, true, false, true])
    } else if error.is_some() {
        ("error", [false, false, false, true, true])
    } else if id.is_some() {
        ("request", [true, true, false, false, true])
    } else {
        ("notification", [true, true, false, false, false])
    };
    let present = [
        method.is_some(),
        params.is_some(),
        result.is_some(),
        error.is_some(),
        id.is_some(),
    ];
    for ((member, want), have) in MEMBERS.iter().zip(pattern).zip(present) {
        match (want, have) {
            (true, false) => return Err(BadMessage::Missing { kind, member }),
            (false, true) => return Err(BadMessage::Forbidden { kind, member }),
            _ => {}
        }
    }
    Ok(match kind {
        "request" => Incoming::Request {
            id: id.unwrap_or(Value::Null),
            method: method.unwrap_or_default(),
            params: params.unwrap_or_default(),
        },
        "notification" => Incoming::Notification {
            method: method.unwrap_or_default(),
            params: params.unwrap_or_default(),
        },
        "reply" => Incoming::Reply {
            id: id.unwrap_or(Value::Null),
        },
        _ => Incoming::ErrorReply {
            id: id.unwrap_or(Value::Null),
        },
    })
}

enum MethodMember {
    Absent,
    String(String),
    Other,
}

/// `{"id":<id>,"result":<result>,"error":null}`
pub fn reply(id: Value, result: Value) -> Value {
    let mut m = Map::with_capacity(3);
    m.insert("id".into(), id);
    m.insert("result".into(), result);
    m.insert("error".into(), Value::Null);
    Value::Object(m)
}

/// `{"id":<id>,"error":<error>}` — no `result` member, as ovsdb-server sends it.
pub fn error_reply(id: Value, error: Value) -> Value {
    let mut m = Map::with_capacity(2);
    m.insert("id".into(), id);
    m.insert("error".into(), error);
    Value::Object(m)
}

/// `{"id":null,"method":<method>,"params":<params>}`
pub fn notification(method: &str, params: Value) -> Value {
    let mut m = Map::with_capacity(3);
    m.insert("id".into(), Value::Null);
    m.insert("method".into(), Value::String(method.into()));
    m.insert("params".into(), params);
    Value::Object(m)
}

/// The inactivity probe: `{"id":"echo","method":"echo","params":[]}`.
pub fn echo_probe() -> Value {
    let mut m = Map::with_capacity(3);
    m.insert("id".into(), Value::String("echo".into()));
    m.insert("method".into(), Value::String("echo".into()));
    m.insert("params".into(), Value::Array(Vec::new()));
    Value::Object(m)
}

/// An OVSDB error object, `{"error":<tag>,"details":<text>,"syntax":<json text>}`. `syntax`
/// holds the offending JSON re-serialised with sorted keys, as ovsdb-server does.
pub fn error_object(tag: &str, details: Option<&str>, syntax: Option<&Value>) -> Value {
    let mut m = Map::with_capacity(3);
    m.insert("error".into(), Value::String(tag.into()));
    if let Some(d) = details {
        m.insert("details".into(), Value::String(d.into()));
    }
    if let Some(s) = syntax {
        m.insert("syntax".into(), Value::String(to_sorted_string(s)));
    }
    Value::Object(m)
}

/// `{"error":"syntax error","details":<details>,"syntax":<params>}`
pub fn syntax_error(details: &str, syntax: &Value) -> Value {
    error_object("syntax error", Some(details), Some(syntax))
}

/// Compact JSON with object keys sorted at every level (ovsdb-server's `json_to_string` with
/// `JSSF_SORT`), used for `syntax` members and for `_Server.Database.schema`.
pub fn to_sorted_string(v: &Value) -> String {
    serde_json::to_string(&sorted(v)).unwrap_or_default()
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::with_capacity(m.len());
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Serialises a message for the wire: compact, raw UTF-8, control characters escaped.
pub fn encode(msg: &Value) -> Vec<u8> {
    serde_json::to_vec(msg).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classification_table() {
        use Incoming::*;
        let ok: Vec<(Value, Incoming)> = vec![
            (
                json!({"method":"echo","params":[],"id":1}),
                Request {
                    id: json!(1),
                    method: "echo".into(),
                    params: vec![],
                },
            ),
            (
                json!({"method":"echo","params":[1],"id":[1,{"x":2}]}),
                Request {
                    id: json!([1, {"x":2}]),
                    method: "echo".into(),
                    params: vec![json!(1)],
                },
            ),
            (
                json!({"method":"cancel","params":[3],"id":null}),
                Notification {
                    method: "cancel".into(),
                    params: vec![json!(3)],
                },
            ),
            (
                json!({"method":"cancel","params":[3]}),
                Notification {
                    method: "cancel".into(),
                    params: vec![json!(3)],
                },
            ),
            (
                json!({"id":"echo","result":[],"error":null}),
                Reply { id: json!("echo") },
            ),
            (
                json!({"id":77,"result":[],"error":null}),
                Reply { id: json!(77) },
            ),
            (
                json!({"id":"echo","error":"x"}),
                ErrorReply { id: json!("echo") },
            ),
            (
                json!({"id":"echo","error":"x","result":null}),
                ErrorReply { id: json!("echo") },
            ),
        ];
        for (input, want) in ok {
            assert_eq!(parse(input.clone()), Ok(want), "{input}");
        }

        let bad: Vec<(Value, BadMessage)> = vec![
            (
                json!({"jsonrpc":"2.0","method":"echo","params":[],"id":1}),
                BadMessage::UnexpectedMember("jsonrpc".into()),
            ),
            (
                json!({"method":"echo","params":{},"id":1}),
                BadMessage::ParamsNotArray,
            ),
            (
                json!({"method":"echo","params":"x","id":1}),
                BadMessage::ParamsNotArray,
            ),
            (
                json!({"method":"echo","params":null,"id":1}),
                BadMessage::Missing {
                    kind: "request",
                    member: "params",
                },
            ),
            (
                json!({"method":"echo","id":1}),
                BadMessage::Missing {
                    kind: "request",
                    member: "params",
                },
            ),
            (
                json!({"method":"cancel"}),
                BadMessage::Missing {
                    kind: "notification",
                    member: "params",
                },
            ),
            (
                json!({"method":5,"params":[],"id":1}),
                BadMessage::MethodNotString,
            ),
            // `"method":null` is present but not a string in ovsdb-server.
            (
                json!({"method":null,"params":[],"id":1}),
                BadMessage::MethodNotString,
            ),
            (
                json!({"params":[],"id":1}),
                BadMessage::Missing {
                    kind: "request",
                    member: "method",
                },
            ),
            (
                json!({}),
                BadMessage::Missing {
                    kind: "notification",
                    member: "method",
                },
            ),
            (
                json!({"result":[],"error":"e","id":1}),
                BadMessage::Forbidden {
                    kind: "reply",
                    member: "error",
                },
            ),
            (
                json!({"result":[]}),
                BadMessage::Missing {
                    kind: "reply",
                    member: "id",
                },
            ),
            (
                json!({"method":"x","params":[],"result":1,"id":1}),
                BadMessage::Forbidden {
                    kind: "reply",
                    member: "method",
                },
            ),
        ];
        for (input, want) in bad {
            assert_eq!(parse(input.clone()), Err(want), "{input}");
        }
    }

    #[test]
    fn output_shapes() {
        let cases: Vec<(Value, &str)> = vec![
            (
                reply(json!(4), json!([{"count":1}])),
                r#"{"id":4,"result":[{"count":1}],"error":null}"#,
            ),
            (
                error_reply(json!(3), json!("unknown method")),
                r#"{"id":3,"error":"unknown method"}"#,
            ),
            (
                notification("update2", json!(["m", {}])),
                r#"{"id":null,"method":"update2","params":["m",{}]}"#,
            ),
            (echo_probe(), r#"{"id":"echo","method":"echo","params":[]}"#),
            (
                error_object(
                    "unknown database",
                    Some("get_schema request specifies unknown database Nope"),
                    Some(&json!(["Nope"])),
                ),
                r#"{"error":"unknown database","details":"get_schema request specifies unknown database Nope","syntax":"[\"Nope\"]"}"#,
            ),
            (
                json!({"s":"a\nb\tc\u{1}d\u{1f}\u{7f}é\"\\/"}),
                // Captured from ovsdb-server 3.1: short escapes, \u00XX for the rest, raw UTF-8.
                "{\"s\":\"a\\nb\\tc\\u0001d\\u001f\u{7f}é\\\"\\\\/\"}",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(String::from_utf8(encode(&v)).unwrap(), want);
        }
    }

    #[test]
    fn sorted_syntax() {
        let v = json!([{"b":1,"a":{"d":1,"c":2}}, "x"]);
        assert_eq!(to_sorted_string(&v), r#"[{"a":{"c":2,"d":1},"b":1},"x"]"#);
    }
}
