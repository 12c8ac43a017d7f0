//! JSON as the engine reads it. The parsers of operations, conditions, mutations and values
//! are written against [`JsonLike`], which both `&serde_json::Value` and [`JsonRef`] (a node
//! of a [`Document`]) implement.
//!
//! A [`Document`] is a request parsed straight from its text into one flat vector of nodes
//! that borrow their strings from the text: no map, no `String` per key or value, no
//! allocation per array or object. Building and dropping a `serde_json::Value` for an
//! `lsp-add` request (an `IndexMap` with SipHash per object, a `String` per key) cost half of
//! a transaction's instructions. The tree is the one serde_json builds (with the workspace's
//! `preserve_order`): member order is first appearance, a repeated key keeps its first
//! position and its last value. Text that this parser does not take on the fast path (an
//! error, deep nesting) is handed to serde_json, so errors, and what is accepted, are
//! serde_json's, with one exception: a string (key or value) holding a NUL character is
//! refused, as ovsdb-server's JSON parser refuses `\u0000` (`null bytes not supported in
//! quoted strings`). The front end closes such connections before anything is proposed; this
//! keeps the replicated log's own entry point from ever storing a NUL either.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

/// Read access to a JSON value, by copy.
pub trait JsonLike<'a>: Copy + 'a {
    /// Elements of an array, in order.
    type Elems: ExactSizeIterator<Item = Self> + Clone;
    /// Members of an object, in `preserve_order` order, each key once.
    type Members: Iterator<Item = (&'a str, Self)>;

    fn as_str(self) -> Option<&'a str>;
    fn as_bool(self) -> Option<bool>;
    fn as_number(self) -> Option<&'a Number>;
    fn elems(self) -> Option<Self::Elems>;
    fn members(self) -> Option<Self::Members>;
    /// The value of member `key` of an object.
    fn get(self, key: &str) -> Option<Self>;
    fn is_object(self) -> bool;
    /// An owned copy (for error objects).
    fn to_value(self) -> Value;

    fn is_array(self) -> bool {
        self.elems().is_some()
    }
    fn is_string(self) -> bool {
        self.as_str().is_some()
    }
    fn is_boolean(self) -> bool {
        self.as_bool().is_some()
    }
    fn is_number(self) -> bool {
        self.as_number().is_some()
    }
    fn as_f64(self) -> Option<f64> {
        self.as_number().and_then(Number::as_f64)
    }
    /// ovsdb-server's rendering of this value in an error's `syntax` member.
    fn sorted_string(self) -> String {
        crate::error::sorted_json_string(&self.to_value())
    }
}

/// Members of a `serde_json` object as `(&str, &Value)`.
#[derive(Clone)]
pub struct ValueMembers<'a>(serde_json::map::Iter<'a>);

impl<'a> Iterator for ValueMembers<'a> {
    type Item = (&'a str, &'a Value);

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_str(), v))
    }
}

impl<'a> JsonLike<'a> for &'a Value {
    type Elems = std::slice::Iter<'a, Value>;
    type Members = ValueMembers<'a>;

    fn as_str(self) -> Option<&'a str> {
        Value::as_str(self)
    }
    fn as_bool(self) -> Option<bool> {
        Value::as_bool(self)
    }
    fn as_number(self) -> Option<&'a Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }
    fn elems(self) -> Option<Self::Elems> {
        self.as_array().map(|a| a.iter())
    }
    fn members(self) -> Option<Self::Members> {
        self.as_object().map(|m| ValueMembers(m.iter()))
    }
    fn get(self, key: &str) -> Option<Self> {
        let obj = self.as_object()?;
        // Operation objects have a handful of members: comparing names beats hashing one.
        if obj.len() <= 16 {
            obj.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
        } else {
            obj.get(key)
        }
    }
    fn is_object(self) -> bool {
        Value::is_object(self)
    }
    fn to_value(self) -> Value {
        self.clone()
    }
    fn sorted_string(self) -> String {
        crate::error::sorted_json_string(self)
    }
}

/// One node of a [`Document`]. A container is followed by its subtree: the elements of an
/// array, or (key, value) pairs of an object with the key as a `Str` node.
#[derive(Debug, Clone, PartialEq)]
enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    /// `size`: nodes in the subtree, this one included; `len`: elements.
    Array {
        size: u32,
        len: u32,
    },
    /// `len`: (key, value) pairs as written; `dups`: some key is written twice.
    Object {
        size: u32,
        len: u32,
        dups: bool,
    },
}

impl Node<'_> {
    fn size(&self) -> usize {
        match self {
            Node::Array { size, .. } | Node::Object { size, .. } => *size as usize,
            _ => 1,
        }
    }
}

/// A JSON text parsed into a flat vector of nodes that borrow the text's strings (those
/// with escapes are unescaped into owned strings).
#[derive(Debug, Clone, PartialEq)]
pub struct Document<'a> {
    nodes: Vec<Node<'a>>,
}

/// Deeper nesting is left to serde_json (whose own limit is 128).
const MAX_DEPTH: u32 = 64;

impl<'a> Document<'a> {
    /// Parses `text`; accepts and rejects exactly what `serde_json::from_str::<Value>` does
    /// (with its error), and yields the same tree, except that a string with a NUL
    /// character is refused (see the module header).
    pub fn parse(text: &'a str) -> Result<Document<'a>, serde_json::Error> {
        let mut p = TextParser {
            text,
            s: text.as_bytes(),
            pos: 0,
            // About one node per 7 bytes of an OVSDB request.
            nodes: Vec::with_capacity(text.len() / 6 + 4),
        };
        if p.value(0).is_some() {
            p.ws();
            if p.pos == p.s.len() {
                return Ok(Document { nodes: p.nodes });
            }
        }
        // Malformed text gets serde_json's error even if it also holds a NUL.
        let v: Value = serde_json::from_str(text)?;
        if has_nul(&v) {
            return Err(null_byte_error());
        }
        Ok(Document::from_value(&v))
    }

    /// The same tree as `v`, with owned strings.
    pub fn from_value(v: &Value) -> Document<'static> {
        fn add(v: &Value, nodes: &mut Vec<Node<'static>>) {
            match v {
                Value::Null => nodes.push(Node::Null),
                Value::Bool(b) => nodes.push(Node::Bool(*b)),
                Value::Number(n) => nodes.push(Node::Number(n.clone())),
                Value::String(s) => nodes.push(Node::Str(Cow::Owned(s.clone()))),
                Value::Array(a) => {
                    let at = nodes.len();
                    nodes.push(Node::Null);
                    for e in a {
                        add(e, nodes);
                    }
                    nodes[at] = Node::Array {
                        size: (nodes.len() - at) as u32,
                        len: a.len() as u32,
                    };
                }
                Value::Object(m) => {
                    let at = nodes.len();
                    nodes.push(Node::Null);
                    for (k, e) in m {
                        nodes.push(Node::Str(Cow::Owned(k.clone())));
                        add(e, nodes);
                    }
                    nodes[at] = Node::Object {
                        size: (nodes.len() - at) as u32,
                        len: m.len() as u32,
                        dups: false,
                    };
                }
            }
        }
        let mut nodes = Vec::new();
        add(v, &mut nodes);
        Document { nodes }
    }

    /// The top-level value.
    pub fn root(&self) -> JsonRef<'_> {
        JsonRef { nodes: &self.nodes }
    }
}

/// ovsdb-server's refusal of `\u0000` (lib/json.c), as a serde_json error so that callers
/// see one error type for every text they cannot use.
fn null_byte_error() -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom("null bytes not supported in quoted strings")
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

struct TextParser<'a> {
    text: &'a str,
    s: &'a [u8],
    pos: usize,
    nodes: Vec<Node<'a>>,
}

impl<'a> TextParser<'a> {
    #[inline(always)]
    fn ws(&mut self) {
        // Compact requests have none: one comparison rules out all four.
        while self.s.get(self.pos).is_some_and(|&b| b <= b' ')
            && matches!(self.s[self.pos], b' ' | b'\n' | b'\r' | b'\t')
        {
            self.pos += 1;
        }
    }

    /// Parses one value at `pos` (after whitespace). None: not on the fast path.
    fn value(&mut self, depth: u32) -> Option<()> {
        self.ws();
        match *self.s.get(self.pos)? {
            b'"' => {
                let s = self.string()?;
                self.nodes.push(Node::Str(s));
            }
            b'[' => self.array(depth)?,
            b'{' => self.object(depth)?,
            b't' => self.literal("true", Node::Bool(true))?,
            b'f' => self.literal("false", Node::Bool(false))?,
            b'n' => self.literal("null", Node::Null)?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return None,
        }
        Some(())
    }

    fn literal(&mut self, word: &str, node: Node<'a>) -> Option<()> {
        if !self.s[self.pos..].starts_with(word.as_bytes()) {
            return None;
        }
        self.pos += word.len();
        self.nodes.push(node);
        Some(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// RFC 8259 number syntax; the value is serde_json's own reading of the text.
    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        if self.s[self.pos] == b'-' {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.s.get(self.pos)? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let int_digits = self.pos - int_start;
        let mut simple = true;
        if self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
            simple = false;
        }
        if let Some(b'e' | b'E') = self.s.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.s.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            simple = false;
        }
        let text = &self.text[start..self.pos];
        let n = if simple && int_start == start && int_digits <= 19 {
            // Non-negative integers below 10^19 fit a u64, as serde_json reads them.
            Number::from(text.parse::<u64>().ok()?)
        } else {
            text.parse::<Number>().ok()?
        };
        self.nodes.push(Node::Number(n));
        Some(())
    }

    /// A string at `pos` (its opening quote).
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let s = self.s;
        let start = self.pos + 1;
        let mut i = start;
        loop {
            // Eight bytes at a time up to the first that needs a look.
            while let Some(chunk) = s.get(i..i + 8) {
                let m = special_bytes(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
                if m != 0 {
                    i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            match *s.get(i)? {
                b'"' => {
                    self.pos = i + 1;
                    return Some(Cow::Borrowed(&self.text[start..i]));
                }
                b'\\' => return self.escaped_string(),
                b if b < 0x20 => return None,
                _ => i += 1,
            }
        }
    }

    /// A string with escapes: its extent found here, its unescaping left to serde_json.
    fn escaped_string(&mut self) -> Option<Cow<'a, str>> {
        let quote = self.pos;
        let mut i = quote + 1;
        loop {
            match *self.s.get(i)? {
                b'"' => break,
                b'\\' => i += 2,
                b if b < 0x20 => return None,
                _ => i += 1,
            }
        }
        let s: String = serde_json::from_str(self.text.get(quote..=i)?).ok()?;
        // Off the fast path: `parse` refuses it once serde_json has parsed the whole text.
        if s.contains('\0') {
            return None;
        }
        self.pos = i + 1;
        Some(Cow::Owned(s))
    }

    fn array(&mut self, depth: u32) -> Option<()> {
        let (at, len) = self.container(depth, b']', |p| p.value(depth + 1))?;
        self.nodes[at] = Node::Array {
            size: u32::try_from(self.nodes.len() - at).ok()?,
            len,
        };
        Some(())
    }

    fn object(&mut self, depth: u32) -> Option<()> {
        let (at, len) = self.container(depth, b'}', |p| {
            p.ws();
            if p.s.get(p.pos) != Some(&b'"') {
                return None;
            }
            let k = p.string()?;
            p.nodes.push(Node::Str(k));
            p.ws();
            if p.s.get(p.pos) != Some(&b':') {
                return None;
            }
            p.pos += 1;
            p.value(depth + 1)
        })?;
        let size = u32::try_from(self.nodes.len() - at).ok()?;
        let dups = has_duplicate_keys(&self.nodes[at + 1..], len);
        self.nodes[at] = Node::Object { size, len, dups };
        Some(())
    }

    /// The members of an array or object opened at `self.pos`, each parsed by `member`, up to
    /// the `close` byte: the node slot reserved for the container (filled in by the caller)
    /// and the number of members.
    fn container(
        &mut self,
        depth: u32,
        close: u8,
        mut member: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<(usize, u32)> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        let at = self.nodes.len();
        self.nodes.push(Node::Null);
        let mut len = 0u32;
        self.ws();
        if self.s.get(self.pos) == Some(&close) {
            self.pos += 1;
            return Some((at, len));
        }
        loop {
            member(self)?;
            len += 1;
            self.ws();
            match *self.s.get(self.pos)? {
                b',' => self.pos += 1,
                b if b == close => {
                    self.pos += 1;
                    return Some((at, len));
                }
                _ => return None,
            }
        }
    }
}

/// The high bit set in each byte of `w` (little-endian) that is a quote, a backslash or a
/// control character, at least for the first such byte (a borrow may flag later ones too).
fn special_bytes(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let q = w ^ (LO * b'"' as u64);
    let b = w ^ (LO * b'\\' as u64);
    let quote = q.wrapping_sub(LO) & !q;
    let backslash = b.wrapping_sub(LO) & !b;
    let control = w.wrapping_sub(LO * 0x20) & !w;
    (quote | backslash | control) & HI
}

fn key_of<'n>(n: &'n Node<'_>) -> &'n str {
    match n {
        Node::Str(s) => s,
        _ => unreachable!("object keys are strings"),
    }
}

/// Whether the `len` (key, value) pairs in `members` repeat a key.
fn has_duplicate_keys(members: &[Node<'_>], len: u32) -> bool {
    if len < 2 {
        return false;
    }
    if len <= 16 {
        // Operation and row objects have a handful of members.
        let mut keys: [&str; 16] = [""; 16];
        let mut i = 0;
        for k in 0..len as usize {
            let key = key_of(&members[i]);
            if keys[..k].iter().any(|e| e.len() == key.len() && *e == key) {
                return true;
            }
            keys[k] = key;
            i += 1 + members[i + 1].size();
        }
        return false;
    }
    let mut keys: Vec<&str> = pairs(members, len as usize).map(|(k, _)| k).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// A node of a [`Document`]: the slice of its subtree.
#[derive(Debug, Clone, Copy)]
pub struct JsonRef<'a> {
    nodes: &'a [Node<'a>],
}

/// Elements of an array of a [`Document`].
#[derive(Debug, Clone)]
pub struct RefElems<'a> {
    rest: &'a [Node<'a>],
    left: usize,
}

impl<'a> Iterator for RefElems<'a> {
    type Item = JsonRef<'a>;
    fn next(&mut self) -> Option<JsonRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (e, rest) = self.rest.split_at(self.rest[0].size());
        self.rest = rest;
        Some(JsonRef { nodes: e })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for RefElems<'_> {}

/// Members of an object of a [`Document`].
#[derive(Debug, Clone)]
pub struct RefMembers<'a> {
    all: &'a [Node<'a>],
    rest: &'a [Node<'a>],
    left: usize,
    total: usize,
    dups: bool,
}

/// The (key, value) pairs of an object's subtree.
fn pairs<'a>(mut rest: &'a [Node<'a>], n: usize) -> impl Iterator<Item = (&'a str, JsonRef<'a>)> {
    (0..n).map(move |_| {
        let key = key_of(&rest[0]);
        let (v, r) = rest[1..].split_at(rest[1].size());
        rest = r;
        (key, JsonRef { nodes: v })
    })
}

impl<'a> Iterator for RefMembers<'a> {
    type Item = (&'a str, JsonRef<'a>);

    fn size_hint(&self) -> (usize, Option<usize>) {
        (
            if self.dups {
                1.min(self.left)
            } else {
                self.left
            },
            Some(self.left),
        )
    }

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.left == 0 {
                return None;
            }
            self.left -= 1;
            let key = key_of(&self.rest[0]);
            let (v, rest) = self.rest[1..].split_at(self.rest[1].size());
            self.rest = rest;
            if !self.dups {
                return Some((key, JsonRef { nodes: v }));
            }
            // A repeated key: first position, last value (serde_json's `preserve_order`).
            let before = self.total - self.left - 1;
            if pairs(self.all, before).any(|(k, _)| k == key) {
                continue;
            }
            let last = pairs(rest, self.left)
                .filter(|(k, _)| *k == key)
                .last()
                .map_or(JsonRef { nodes: v }, |(_, v)| v);
            return Some((key, last));
        }
    }
}

impl<'a> JsonLike<'a> for JsonRef<'a> {
    type Elems = RefElems<'a>;
    type Members = RefMembers<'a>;

    fn as_str(self) -> Option<&'a str> {
        match &self.nodes[0] {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }
    fn as_bool(self) -> Option<bool> {
        match self.nodes[0] {
            Node::Bool(b) => Some(b),
            _ => None,
        }
    }
    fn as_number(self) -> Option<&'a Number> {
        match &self.nodes[0] {
            Node::Number(n) => Some(n),
            _ => None,
        }
    }
    fn elems(self) -> Option<RefElems<'a>> {
        match self.nodes[0] {
            Node::Array { len, .. } => Some(RefElems {
                rest: &self.nodes[1..],
                left: len as usize,
            }),
            _ => None,
        }
    }
    fn members(self) -> Option<RefMembers<'a>> {
        match self.nodes[0] {
            Node::Object { len, dups, .. } => Some(RefMembers {
                all: &self.nodes[1..],
                rest: &self.nodes[1..],
                left: len as usize,
                total: len as usize,
                dups,
            }),
            _ => None,
        }
    }
    fn get(self, key: &str) -> Option<JsonRef<'a>> {
        match self.nodes[0] {
            Node::Object { len, dups, .. } => {
                let mut found = pairs(&self.nodes[1..], len as usize).filter(|(k, _)| *k == key);
                if dups { found.last() } else { found.next() }.map(|(_, v)| v)
            }
            _ => None,
        }
    }
    fn is_object(self) -> bool {
        matches!(self.nodes[0], Node::Object { .. })
    }
    fn to_value(self) -> Value {
        match &self.nodes[0] {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::Str(s) => Value::String(s.to_string()),
            Node::Array { .. } => {
                Value::Array(self.elems().expect("array").map(|e| e.to_value()).collect())
            }
            Node::Object { len, .. } => {
                let mut m = Map::new();
                for (k, v) in pairs(&self.nodes[1..], *len as usize) {
                    m.insert(k.to_string(), v.to_value());
                }
                Value::Object(m)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde_json's answer, except for the NUL characters that ovsdb-server refuses.
    fn same_as_serde(text: &str) {
        let ours = Document::parse(text).map(|d| d.root().to_value());
        let theirs = serde_json::from_str::<Value>(text);
        if theirs.as_ref().is_ok_and(has_nul) {
            let e = ours.expect_err(text);
            assert_eq!(
                e.to_string(),
                "null bytes not supported in quoted strings",
                "{text}"
            );
            return;
        }
        match (ours, theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
            (a, b) => panic!("{text}: {a:?} vs {b:?}"),
        }
    }

    #[test]
    fn parses_like_serde_json() {
        for t in [
            r#"{"a":1,"b":[true,false,null],"c":"x\"y\u00e9\n","d":{}}"#,
            r#" [ 1 , -2 , 3.5 , 1e2 , -0 , 0.0 , 18446744073709551615 , 18446744073709551616 ] "#,
            r#"[-9223372036854775808, -9223372036854775809, 1E-3, 2e+3, 123456789012345678901]"#,
            r#"{"a":1,"a":2,"b":3,"a":4}"#,
            r#"{"x":{"k":[1],"k":{"y":1,"y":[]}},"z":"é"}"#,
            r#"["\ud83d\ude00", "\u0000", "é\\"]"#,
            "[1,]",
            "[1 2]",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "\"\u{1}\"",
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "[] x",
            "",
            r#""\ud800""#,
            "1e400",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        ] {
            same_as_serde(t);
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        same_as_serde(&deep);
    }

    #[test]
    fn null_characters_are_refused() {
        let deep = format!("{}\"\\u0000\"{}", "[".repeat(100), "]".repeat(100));
        for t in [
            r#"["\u0000"]"#,
            r#"[{"op":"insert","table":"A","row":{"s":"a\u0000b"}}]"#,
            r#"[{"k\u0000":1}]"#,
            r#"["x\n", "\u0000\u00e9"]"#,
            deep.as_str(),
        ] {
            let e = Document::parse(t).expect_err(t);
            assert_eq!(
                e.to_string(),
                "null bytes not supported in quoted strings",
                "{t}"
            );
        }
        // An escaped backslash before "u0000" is no NUL, and other control characters pass.
        let d = Document::parse(r#"["\\u0000", "\u0001"]"#).unwrap();
        assert_eq!(d.root().to_value(), serde_json::json!(["\\u0000", "\u{1}"]));
    }

    #[test]
    fn duplicate_keys_keep_first_position_and_last_value() {
        let d = Document::parse(r#"{"a":1,"b":2,"a":3,"c":{"a":[4]},"b":5}"#).unwrap();
        let r = d.root();
        let got: Vec<(&str, Value)> = r
            .members()
            .unwrap()
            .map(|(k, v)| (k, v.to_value()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", Value::from(3)),
                ("b", Value::from(5)),
                ("c", serde_json::json!({"a":[4]}))
            ]
        );
        assert_eq!(r.get("a").unwrap().to_value(), Value::from(3));
        assert_eq!(r.get("b").unwrap().to_value(), Value::from(5));
        assert!(r.get("d").is_none());
    }

    use proptest::prelude::*;

    /// JSON texts (valid or slightly broken) with random spacing, escapes, numbers of every
    /// form and repeated object keys.
    fn json_text() -> impl Strategy<Value = String> {
        let ws = prop::sample::select(vec!["", " ", "\n\t ", "\r"]);
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|i| i.to_string()),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            any::<f64>().prop_map(|f| f.to_string()),
            "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?",
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            "\"([a-z\\\\\"é]|\\\\u00[0-9a-f]{2}|\\\\ud83d\\\\ude00|\\\\n)*\"",
            "[\\]\\[{}:,\"0-9a-z.-]{0,4}",
        ];
        leaf.prop_recursive(5, 48, 6, move |inner| {
            let ws = ws.clone();
            prop_oneof![
                (prop::collection::vec(inner.clone(), 0..6), ws.clone())
                    .prop_map(|(v, w)| format!("[{w}{}{w}]", v.join(&format!("{w},")))),
                (
                    prop::collection::vec(
                        (prop::sample::select(vec!["a", "b", "op", "é"]), inner),
                        0..6
                    ),
                    ws
                )
                    .prop_map(|(v, w)| {
                        let m: Vec<String> = v
                            .into_iter()
                            .map(|(k, e)| format!("\"{k}\"{w}:{e}"))
                            .collect();
                        format!("{{{w}{}}}", m.join(","))
                    }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn parse_matches_serde_json(t in json_text()) {
            same_as_serde(&t);
        }
    }
}
