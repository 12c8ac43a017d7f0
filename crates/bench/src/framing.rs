//! JSON-RPC stream framing (RFC 7047 section 3, docs/ovsdb-protocol.md section 1.2): the stream carries
//! JSON objects back to back with no length prefix and no delimiter, so messages are found by
//! scanning for the end of each top-level value.
//!
//! The scanner keeps its state between reads, so a large message (a monitor's initial contents)
//! arriving in many pieces is scanned once, not re-parsed from its start on every read.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("byte {0:#04x} outside a JSON object between messages")]
    Stray(u8),
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
}

/// Splits a byte stream into complete top-level JSON values.
#[derive(Debug)]
pub struct Splitter {
    buf: Vec<u8>,
    /// How far `buf` has been scanned.
    pos: usize,
    /// Where the current value starts in `buf`, once its first byte was seen.
    start: Option<usize>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    max: usize,
}

impl Splitter {
    pub fn new(max: usize) -> Splitter {
        Splitter {
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
            start: None,
            depth: 0,
            in_string: false,
            escaped: false,
            max,
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete value's bytes, if the buffer holds one.
    pub fn next_value(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        while self.pos < self.buf.len() {
            if self.in_string && !self.escaped {
                // Most of a large reply is string contents: jump to the next quote or backslash
                // instead of looking at every byte, so the client keeps up with a storm's replies.
                match memchr::memchr2(b'"', b'\\', &self.buf[self.pos..]) {
                    Some(at) => self.pos += at,
                    None => {
                        self.pos = self.buf.len();
                        break;
                    }
                }
            }
            let b = self.buf[self.pos];
            self.pos += 1;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' if self.depth > 0 => self.in_string = true,
                b'{' | b'[' => {
                    if self.depth == 0 {
                        if b != b'{' {
                            return Err(FramingError::Stray(b));
                        }
                        self.start = Some(self.pos - 1);
                    }
                    self.depth += 1;
                }
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        // The value keeps the buffer it was received in and the buffer starts
                        // afresh with what follows: a storm's reply of tens of MB is not copied
                        // (fresh pages for a copy cost the client more than everything else).
                        let start = self.start.take().unwrap_or(0);
                        let rest = self.buf.split_off(self.pos);
                        let mut value = std::mem::replace(&mut self.buf, rest);
                        value.drain(..start);
                        self.pos = 0;
                        return Ok(Some(value));
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' if self.depth == 0 => {}
                _ if self.depth == 0 => return Err(FramingError::Stray(b)),
                _ => {}
            }
        }
        if self.start.is_none() {
            // Only whitespace so far: nothing worth keeping.
            self.buf.clear();
            self.pos = 0;
        } else if self.buf.len() > self.max {
            return Err(FramingError::TooLarge(self.max));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &mut Splitter) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(v) = s.next_value().unwrap() {
            out.push(String::from_utf8(v).unwrap());
        }
        out
    }

    #[test]
    fn back_to_back_values_split_at_their_ends() {
        let mut s = Splitter::new(1 << 20);
        s.extend(
            br#"{"id":3,"error":"unknown method"}{"id":4,"result":[{"a":"}{\"]"}],"error":null}"#,
        );
        assert_eq!(
            all(&mut s),
            vec![
                r#"{"id":3,"error":"unknown method"}"#,
                r#"{"id":4,"result":[{"a":"}{\"]"}],"error":null}"#
            ]
        );
    }

    #[test]
    fn values_split_over_reads_byte_by_byte() {
        let text = br#" {"method":"update2","params":["x",{"t":{"u":{"insert":{"name":"a\\\"b{"}}}}],"id":null}
{"id":"echo","method":"echo","params":[]}"#;
        let mut s = Splitter::new(1 << 20);
        let mut out = Vec::new();
        for b in text {
            s.extend(&[*b]);
            out.extend(all(&mut s));
        }
        assert_eq!(out.len(), 2);
        for v in &out {
            serde_json::from_str::<serde_json::Value>(v).unwrap();
        }
    }

    #[test]
    fn a_top_level_non_object_is_refused() {
        let mut s = Splitter::new(1 << 20);
        s.extend(b"[1]");
        assert_eq!(s.next_value(), Err(FramingError::Stray(b'[')));
        let mut s = Splitter::new(1 << 20);
        s.extend(b"7");
        assert_eq!(s.next_value(), Err(FramingError::Stray(b'7')));
    }

    #[test]
    fn an_oversized_message_is_refused() {
        let mut s = Splitter::new(8);
        s.extend(br#"{"id":1,"result":"#);
        assert_eq!(s.next_value(), Err(FramingError::TooLarge(8)));
    }
}
