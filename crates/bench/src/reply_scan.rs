//! Counting the rows of a monitor reply as its bytes arrive, without keeping them: the storm's
//! clients receive the whole `Logical_Flow` table each (tens of MB, and a 1,000-client storm of
//! 200k flows would be 80 GB), so a client that buffered and parsed its reply would measure
//! itself, not the server. Messages up to `SMALL` bytes (echo requests, errors) are kept whole
//! for the caller to parse.
//!
//! Framing as in `framing.rs` (RFC 7047 section 3: JSON objects back to back); the rows counted
//! are the keys of each table object in a reply's `result[2]`, the `table-updates` of a
//! `monitor_cond_since` reply (RFC 7047 section 4.1.5, docs/ovsdb-protocol.md).

use crate::framing::FramingError;

/// Messages up to this size are handed over whole.
const SMALL: usize = 64 * 1024;

/// One complete top-level message.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Scanned {
    /// A message of at most `SMALL` bytes, whole.
    Small(Vec<u8>),
    /// A larger message: whether it had a `result`, and the rows per table in `result[2]`.
    Large {
        result: bool,
        rows: Vec<(String, usize)>,
    },
}

#[derive(Debug, Default)]
struct Frame {
    object: bool,
    /// An object's member name is next (after `{` or `,`).
    expecting_key: bool,
    /// An array's element index.
    index: usize,
    /// An object's current member name, kept only where it selects what is counted.
    key: Vec<u8>,
}

/// Where member names are kept: the top object ("result"), the updates object (table names).
const KEYS_KEPT_BELOW_DEPTH: usize = 3;

#[derive(Debug, Default)]
pub struct ReplyScanner {
    frames: Vec<Frame>,
    in_string: bool,
    escaped: bool,
    /// The string being read is a member name being kept (into the last frame's `key`).
    capturing: bool,
    /// The current message's bytes while it is small; `None` once it outgrew `SMALL`.
    small: Option<Vec<u8>>,
    result: bool,
    rows: Vec<(String, usize)>,
}

impl ReplyScanner {
    pub fn new() -> ReplyScanner {
        ReplyScanner {
            small: Some(Vec::new()),
            ..Default::default()
        }
    }

    /// Scans `bytes` up to the end of the first message completed in them: how many bytes were
    /// used, and that message. The bytes after it are the caller's to scan next (or to hand to
    /// another reader once the reply it waited for came).
    pub fn scan(&mut self, bytes: &[u8]) -> Result<(usize, Option<Scanned>), FramingError> {
        let mut pos = 0;
        // Where the current message's bytes in `bytes` start, for `small`.
        let mut kept_from = 0;
        while pos < bytes.len() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    self.capture(&bytes[pos..pos + 1]);
                    pos += 1;
                    continue;
                }
                let span = memchr::memchr2(b'"', b'\\', &bytes[pos..]).unwrap_or(bytes.len() - pos);
                self.capture(&bytes[pos..pos + span]);
                pos += span;
                if pos == bytes.len() {
                    break;
                }
                if bytes[pos] == b'\\' {
                    self.escaped = true;
                    self.capture(b"\\");
                } else {
                    self.in_string = false;
                    self.capturing = false;
                }
                pos += 1;
                continue;
            }
            let b = bytes[pos];
            pos += 1;
            match b {
                b'"' if !self.frames.is_empty() => self.string_starts(),
                b'{' | b'[' => {
                    match self.frames.len() {
                        0 if b != b'{' => return Err(FramingError::Stray(b)),
                        0 => kept_from = pos - 1,
                        1 if self.frames[0].key == b"result" => self.result = true,
                        _ => {}
                    }
                    self.frames.push(Frame {
                        object: b == b'{',
                        expecting_key: b == b'{',
                        ..Default::default()
                    });
                }
                b'}' | b']' if !self.frames.is_empty() => {
                    self.frames.pop();
                    if self.frames.is_empty() {
                        let whole = self
                            .small
                            .take()
                            .filter(|kept| kept.len() + (pos - kept_from) <= SMALL);
                        let message = match whole {
                            Some(mut kept) => {
                                kept.extend_from_slice(&bytes[kept_from..pos]);
                                Scanned::Small(kept)
                            }
                            None => Scanned::Large {
                                result: self.result,
                                rows: std::mem::take(&mut self.rows),
                            },
                        };
                        self.small = Some(Vec::new());
                        self.result = false;
                        return Ok((pos, Some(message)));
                    }
                }
                b':' => {
                    if let Some(f) = self.frames.last_mut() {
                        f.expecting_key = false;
                    }
                }
                b',' => {
                    if let Some(f) = self.frames.last_mut() {
                        if f.object {
                            f.expecting_key = true;
                        } else {
                            f.index += 1;
                        }
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ if self.frames.is_empty() => return Err(FramingError::Stray(b)),
                _ => {}
            }
        }
        // Keep the unfinished message's bytes while it is still small.
        if !self.frames.is_empty() {
            if let Some(kept) = &mut self.small {
                if kept.len() + (bytes.len() - kept_from) > SMALL {
                    self.small = None;
                } else {
                    kept.extend_from_slice(&bytes[kept_from..]);
                }
            }
        }
        Ok((bytes.len(), None))
    }

    fn capture(&mut self, bytes: &[u8]) {
        if self.capturing {
            if let Some(f) = self.frames.last_mut() {
                f.key.extend_from_slice(bytes);
            }
        }
    }

    fn string_starts(&mut self) {
        self.in_string = true;
        let depth = self.frames.len();
        let Some(f) = self.frames.last_mut() else {
            return;
        };
        if !(f.object && f.expecting_key) {
            return;
        }
        if depth <= KEYS_KEPT_BELOW_DEPTH {
            f.key.clear();
            self.capturing = true;
            return;
        }
        // A member name in the fourth level: a row, if the path is result[2][TABLE].
        let fr = &self.frames;
        if depth == 4 && fr[0].key == b"result" && !fr[1].object && fr[1].index == 2 && fr[2].object
        {
            let table = &fr[2].key;
            match self.rows.iter_mut().find(|(t, _)| t.as_bytes() == table) {
                Some((_, n)) => *n += 1,
                None => {
                    let name = String::from_utf8_lossy(table).into_owned();
                    self.rows.push((name, 1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(text: &[u8], piece: usize) -> Vec<Scanned> {
        let mut s = ReplyScanner::new();
        let mut out = Vec::new();
        for mut chunk in text.chunks(piece) {
            while !chunk.is_empty() {
                let (used, message) = s.scan(chunk).unwrap();
                out.extend(message);
                chunk = &chunk[used..];
            }
        }
        out
    }

    fn reply(rows: usize) -> String {
        let flows: Vec<String> = (0..rows)
            .map(|i| {
                format!(
                    r#""{i:08x}-0000-0000-0000-000000000000":{{"initial":{{"match":"inport == \"lp{i}\" && {{x}}","priority":{i},"external_ids":["map",[["a","b"]]]}}}}"#
                )
            })
            .collect();
        let head = r#"{"id":7,"result":[false,"5f1a",{"Logical_Flow":{"#;
        let tail = r#"},"Port_Binding":{"p":{"initial":{}}}}],"error":null}"#;
        format!("{head}{}{tail}", flows.join(","))
    }

    #[test]
    fn counts_rows_of_a_large_reply_in_any_pieces() {
        let text = reply(2_000);
        assert!(text.len() > SMALL);
        let want = Scanned::Large {
            result: true,
            rows: vec![("Logical_Flow".into(), 2_000), ("Port_Binding".into(), 1)],
        };
        for piece in [1, 7, 4096, text.len()] {
            assert_eq!(scan_in_pieces(text.as_bytes(), piece), vec![want.clone()]);
        }
    }

    #[test]
    fn small_messages_come_whole_between_large_ones() {
        let echo = r#"{"id":"echo","method":"echo","params":[]}"#;
        let text = format!("{echo} {}\n{echo}{}", reply(2_000), reply(3));
        let out = scan_in_pieces(text.as_bytes(), 1000);
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], Scanned::Small(echo.as_bytes().to_vec()));
        assert!(matches!(&out[1], Scanned::Large { result: true, rows } if rows[0].1 == 2_000));
        assert_eq!(out[2], Scanned::Small(echo.as_bytes().to_vec()));
        assert_eq!(out[3], Scanned::Small(reply(3).into_bytes()));
    }

    #[test]
    fn a_large_error_has_no_result() {
        let text = format!(
            r#"{{"id":1,"error":"{}","result":null}}"#,
            "x".repeat(SMALL)
        );
        assert_eq!(
            scan_in_pieces(text.as_bytes(), 999),
            vec![Scanned::Large {
                result: false,
                rows: vec![]
            }]
        );
    }

    #[test]
    fn a_top_level_non_object_is_refused() {
        assert_eq!(
            ReplyScanner::new().scan(b"[1]"),
            Err(FramingError::Stray(b'['))
        );
    }
}
