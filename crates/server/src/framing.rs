//! Splitting the incoming byte stream into JSON-RPC messages (RFC 7047 §2, as ovsdb-server's
//! `lib/jsonrpc.c` does it): JSON values back to back with no length prefix and no delimiter,
//! any whitespace between them. Every top-level value must be an object; anything else is a
//! protocol error that closes the connection (docs/ovsdb-protocol.md §1.2).
//!
//! The scanner only tracks nesting and string state, so bytes are looked at once however the
//! stream is chunked; a complete value is then handed to serde_json, which rejects malformed
//! JSON and numbers outside the range of a double (ovsdb-server's `number outside valid range`).
//!
//! A `\u0000` escape in any string is refused as ovsdb-server's `json.c` refuses it (`null
//! bytes not supported in quoted strings`): the connection is closed with no reply, so a NUL can
//! never reach a database, where ovsdb-server could not have stored it either. The scanner
//! refuses it at the string's closing quote, without waiting for the end of the message, as
//! ovsdb-server's lexer does.

use bytes::{Buf, BytesMut};
use serde_json::Value;

/// Largest message accepted by default. ovsdb-server has no limit at all; 64 MiB is far above
/// the largest real transaction or schema (a full OVN SB dump in one `transact` is a few MiB)
/// while still bounding what one client can make the server buffer.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// Why the stream cannot be read any further. Each one closes the connection.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FramingError {
    #[error("message is not a JSON object (first byte {0:?})")]
    NotAnObject(char),
    #[error("message exceeds the maximum size of {max} bytes")]
    TooLarge { max: usize },
    #[error("error parsing stream: {0}")]
    Parse(String),
    #[error("unbalanced JSON: unexpected {0:?}")]
    Unbalanced(char),
    #[error("error parsing stream: null bytes not supported in quoted strings")]
    NullEscape,
}

/// Incremental splitter. Feed it bytes with [`Framer::buffer_mut`], pull messages with
/// [`Framer::next_message`].
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    max: usize,
    /// How many bytes of `buf` have already been scanned (all belong to the current value).
    scanned: usize,
    /// Open brackets of the current value, so a mismatch fails at once instead of waiting.
    open: Vec<u8>,
    in_string: bool,
    escaped: bool,
    /// Hex digits still expected in the current `\u` escape, and whether all so far were `0`.
    hex_left: u8,
    hex_zero: bool,
    /// The current string has a `\u0000`.
    string_nul: bool,
    started: bool,
}

impl Framer {
    pub fn new(max_message_size: usize) -> Framer {
        Framer {
            buf: BytesMut::new(),
            max: max_message_size,
            scanned: 0,
            open: Vec::new(),
            in_string: false,
            escaped: false,
            hex_left: 0,
            hex_zero: false,
            string_nul: false,
            started: false,
        }
    }

    /// The buffer to read into. Bytes appended here are picked up by `next_message`.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes received but not yet returned as part of a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Value>, FramingError> {
        if !self.started {
            let ws = self
                .buf
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                .count();
            self.buf.advance(ws);
            match self.buf.first() {
                None => {
                    self.release_idle_capacity();
                    return Ok(None);
                }
                Some(b'{') => {
                    self.started = true;
                    self.scanned = 0;
                }
                Some(&b) => return Err(FramingError::NotAnObject(b as char)),
            }
        }
        let mut end = None;
        let len = self.buf.len();
        let mut i = self.scanned;
        while i < len {
            let b = self.buf[i];
            if self.in_string {
                if self.hex_left > 0 && b.is_ascii_hexdigit() {
                    self.hex_zero &= b == b'0';
                    self.hex_left -= 1;
                    self.string_nul |= self.hex_left == 0 && self.hex_zero;
                    i += 1;
                    continue;
                }
                // A malformed escape is serde_json's to reject once the value is complete.
                self.hex_left = 0;
                if self.escaped {
                    self.escaped = false;
                    if b == b'u' {
                        self.hex_left = 4;
                        self.hex_zero = true;
                    }
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.string_nul {
                        return Err(FramingError::NullEscape);
                    }
                } else {
                    // Nothing to track up to the string's next quote or backslash: skipped
                    // with a vectorised search. Byte by byte, this scan was a tenth of a
                    // leader's CPU under a load of large values (docs/performance.md, "Large
                    // rows: buffers kept and the allocator's purge delay").
                    i = memchr::memchr2(b'"', b'\\', &self.buf[i..]).map_or(len, |at| i + at);
                    continue;
                }
                i += 1;
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    self.string_nul = false;
                }
                b'{' | b'[' => self.open.push(b),
                b'}' | b']' => {
                    let want = if b == b'}' { b'{' } else { b'[' };
                    if self.open.pop() != Some(want) {
                        return Err(FramingError::Unbalanced(b as char));
                    }
                    if self.open.is_empty() {
                        end = Some(i + 1);
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        match end {
            None => {
                self.scanned = self.buf.len();
                if self.scanned > self.max {
                    return Err(FramingError::TooLarge { max: self.max });
                }
                Ok(None)
            }
            Some(end) => {
                if end > self.max {
                    return Err(FramingError::TooLarge { max: self.max });
                }
                let text = self.buf.split_to(end);
                self.started = false;
                self.scanned = 0;
                let parse = || serde_json::from_slice::<Value>(&text);
                // Parsing a message of many MB is CPU work long enough to hold up the other
                // tasks of this runtime worker (other sessions, Raft heartbeats): move them
                // off first.
                let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|h| {
                    h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                });
                let value = if text.len() >= BLOCKING_PARSE_BYTES && multi_thread {
                    tokio::task::block_in_place(parse)
                } else {
                    parse()
                }
                .map_err(|e| FramingError::Parse(e.to_string()))?;
                Ok(Some(value))
            }
        }
    }

    /// An idle connection should not keep a large buffer alive after one big message.
    fn release_idle_capacity(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 64 * 1024 {
            self.buf = BytesMut::new();
        }
    }
}

/// Messages of at least this many bytes are parsed off the async workers.
const BLOCKING_PARSE_BYTES: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feed_all(chunks: &[&[u8]], max: usize) -> (Vec<Value>, Option<FramingError>) {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.buffer_mut().extend_from_slice(c);
            loop {
                match f.next_message() {
                    Ok(Some(v)) => out.push(v),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    /// A message of long strings with every kind of escape, fed split at every point (and
    /// whole), comes out as serde_json reads it whole; a `\u0000` is refused wherever it is cut.
    #[test]
    fn any_split_of_strings_with_escapes_frames_as_the_whole() {
        let text = br#"{"a":"plain text \" quote \\ backslash \u00e9 }] {[ more","b":["x\\","\"{"],"c":"tail"}"#;
        let whole: Value = serde_json::from_slice(text).unwrap();
        for cut in 0..=text.len() {
            let (out, err) = feed_all(&[&text[..cut], &text[cut..]], 10_000);
            assert_eq!((out, err), (vec![whole.clone()], None), "cut at {cut}");
        }
        let nul = br#"{"a":"before \u0000 after"}"#;
        for cut in 0..=nul.len() {
            let (out, err) = feed_all(&[&nul[..cut], &nul[cut..]], 10_000);
            assert_eq!(
                (out, err),
                (vec![], Some(FramingError::NullEscape)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn table() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(100));
        type Case<'a> = (
            &'a str,
            Vec<&'a [u8]>,
            usize,
            Vec<Value>,
            Option<FramingError>,
        );
        let cases: Vec<Case> = vec![
            ("one", vec![b"{\"a\":1}"], 1000, vec![json!({"a":1})], None),
            (
                "back to back",
                vec![b"{\"a\":1}{\"b\":[1,{}]}"],
                1000,
                vec![json!({"a":1}), json!({"b":[1,{}]})],
                None,
            ),
            (
                "whitespace between",
                vec![b" \n{\"a\":1}\r\n\t {\"b\":2}  "],
                1000,
                vec![json!({"a":1}), json!({"b":2})],
                None,
            ),
            (
                "split at every point",
                vec![b"{\"a\"", b":\"x}", b"\\\"", b"{\"}", b"{}"],
                1000,
                vec![json!({"a":"x}\"{"}), json!({})],
                None,
            ),
            (
                "braces and escapes in strings",
                vec![b"{\"a\":\"}]\\\\\"}"],
                1000,
                vec![json!({"a":"}]\\"})],
                None,
            ),
            (
                "array is a protocol error",
                vec![b"[1,2]"],
                1000,
                vec![],
                Some(FramingError::NotAnObject('[')),
            ),
            (
                "bare string",
                vec![b"{}\"x\""],
                1000,
                vec![json!({})],
                Some(FramingError::NotAnObject('"')),
            ),
            (
                "number",
                vec![b"1"],
                1000,
                vec![],
                Some(FramingError::NotAnObject('1')),
            ),
            (
                "stray close",
                vec![b"}"],
                1000,
                vec![],
                Some(FramingError::NotAnObject('}')),
            ),
            (
                "oversize complete",
                vec![big.as_bytes()],
                50,
                vec![],
                Some(FramingError::TooLarge { max: 50 }),
            ),
            (
                "oversize incomplete",
                vec![&big.as_bytes()[..60]],
                50,
                vec![],
                Some(FramingError::TooLarge { max: 50 }),
            ),
            (
                "size limit is per message",
                vec![b"{\"a\":1}{\"b\":2}{\"c\":3}"],
                7,
                vec![json!({"a":1}), json!({"b":2}), json!({"c":3})],
                None,
            ),
            (
                "mismatched brackets fail without waiting for more",
                vec![b"{\"a\":[1}"],
                1000,
                vec![],
                Some(FramingError::Unbalanced('}')),
            ),
            (
                "a null escape closes at once, after what came before",
                vec![b"{\"a\":1} {\"b\":\"x\\u0000y\"}{\"c\":3}"],
                1000,
                vec![json!({"a":1})],
                Some(FramingError::NullEscape),
            ),
            (
                "a null escape in a key",
                vec![b"{\"\\u0000\":1}"],
                1000,
                vec![],
                Some(FramingError::NullEscape),
            ),
            (
                "a null escape split across reads, refused at the string's end",
                vec![b"{\"a\":[\"\\u0", b"0", b"00", b"x\""],
                1000,
                vec![],
                Some(FramingError::NullEscape),
            ),
            (
                "a string with a null escape is not refused before its end",
                vec![b"{\"a\":[\"\\u0000x"],
                1000,
                vec![],
                None,
            ),
            (
                "a null right after another escape",
                vec![b"{\"a\":\"\\n\\u0000\"}"],
                1000,
                vec![],
                Some(FramingError::NullEscape),
            ),
            (
                "u0000 followed by a digit is still a null, after other escapes",
                vec![b"{\"a\":\"\\\\u0000\\u0001\\u0100\\u00000\"}"],
                1000,
                vec![],
                Some(FramingError::NullEscape),
            ),
            (
                "an escaped backslash before u0000 and other escapes (upper-case hex too) pass",
                vec![b"{\"a\":\"\\\\u0000\\u0001\\u1000\\u000A\"}"],
                1000,
                vec![json!({"a":"\\u0000\u{1}\u{1000}\n"})],
                None,
            ),
            (
                "last key wins",
                vec![b"{\"a\":1,\"a\":2}"],
                1000,
                vec![json!({"a":2})],
                None,
            ),
        ];
        for (name, chunks, max, want, want_err) in cases {
            let (got, err) = feed_all(&chunks, max);
            assert_eq!(got, want, "{name}");
            assert_eq!(err, want_err, "{name}");
        }
    }

    #[test]
    fn parse_failures() {
        for (name, input) in [
            ("out of double range", &b"{\"a\":1e400}"[..]),
            ("malformed", b"{\"a\" 1}"),
            ("trailing comma", b"{\"a\":1,}"),
        ] {
            let (got, err) = feed_all(&[input], 1000);
            assert!(got.is_empty(), "{name}");
            assert!(
                matches!(err, Some(FramingError::Parse(_))),
                "{name}: {err:?}"
            );
        }
    }

    #[test]
    fn in_range_numbers_survive() {
        let (got, err) = feed_all(
            &[b"{\"a\":1.7976931348623157e308,\"b\":-9223372036854775808}"],
            1000,
        );
        assert!(err.is_none());
        assert_eq!(got[0]["a"].as_f64(), Some(f64::MAX));
        assert_eq!(got[0]["b"].as_i64(), Some(i64::MIN));
    }
}
