//! The on-disk record format: every value this crate writes is sealed with a
//! format version and a CRC-32 so that damaged bytes are detected on read
//! instead of being handed to openraft or the state machine.
//!
//! Layout: `[format: u8 = 1][crc32(key ‖ payload): u32 big-endian][payload]`.
//! The key is part of the checksum so that a value found under the wrong key
//! (a misdirected write) is detected like a flipped bit.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Corruption, StorageError};

const FORMAT_V1: u8 = 1;

/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 5;

fn checksum(key: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(payload);
    h.finalize()
}

/// A buffer with room for the header, to which a test appends a payload before
/// [`seal_buffer`] (records as earlier versions wrote them).
#[cfg(test)]
pub(crate) fn buffer_with_capacity(payload_capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_LEN + payload_capacity);
    buf.resize(HEADER_LEN, 0);
    buf
}

/// Fills the header of a buffer made by [`buffer_with_capacity`].
#[cfg(test)]
pub(crate) fn seal_buffer(key: &[u8], mut buf: Vec<u8>) -> Vec<u8> {
    let crc = checksum(key, &buf[HEADER_LEN..]);
    buf[0] = FORMAT_V1;
    buf[1..HEADER_LEN].copy_from_slice(&crc.to_be_bytes());
    buf
}

/// Checks a record and returns its payload.
pub(crate) fn unseal<'a>(key: &[u8], record: &'a [u8]) -> Result<&'a [u8], Corruption> {
    if record.len() < HEADER_LEN {
        return Err(Corruption::TooShort {
            len: record.len(),
            header: HEADER_LEN,
        });
    }
    if record[0] != FORMAT_V1 {
        return Err(Corruption::UnknownFormat(record[0]));
    }
    let stored = u32::from_be_bytes([record[1], record[2], record[3], record[4]]);
    let payload = &record[HEADER_LEN..];
    let computed = checksum(key, payload);
    if stored != computed {
        return Err(Corruption::ChecksumMismatch { stored, computed });
    }
    Ok(payload)
}

/// Serialises `value` (JSON: self-describing, so application types holding
/// `serde_json::Value` round-trip) and seals it under `key`.
pub(crate) fn encode<T: Serialize + ?Sized>(
    key: &[u8],
    value: &T,
    what: &'static str,
) -> Result<Vec<u8>, StorageError> {
    let mut buf = Vec::with_capacity(HEADER_LEN + 256);
    encode_into(&mut buf, key, value, what)?;
    Ok(buf)
}

/// [`encode`], appending the record to `buf` (a buffer kept between records, as the log's
/// frames are). On an error `buf` is left as it was.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    key: &[u8],
    value: &T,
    what: &'static str,
) -> Result<(), StorageError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_LEN]);
    if let Err(source) = serde_json::to_writer(&mut *buf, value) {
        buf.truncate(start);
        return Err(StorageError::Encode { what, source });
    }
    let crc = checksum(key, &buf[start + HEADER_LEN..]);
    buf[start] = FORMAT_V1;
    buf[start + 1..start + HEADER_LEN].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Checks and deserialises a record written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], record: &[u8]) -> Result<T, Corruption> {
    let payload = unseal(key, record)?;
    serde_json::from_slice(payload).map_err(|e| Corruption::Undecodable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_single_bit_flip_is_detected() {
        let rec = encode(b"k", &("hello", 42u64), "test").unwrap();
        let back: (String, u64) = decode(b"k", &rec).unwrap();
        assert_eq!(back, ("hello".to_string(), 42));
        for byte in 0..rec.len() {
            for bit in 0..8 {
                let mut bad = rec.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode::<(String, u64)>(b"k", &bad).is_err(),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_record_appended_to_a_buffer_is_the_record_encoded_alone() {
        let mut buf = b"before".to_vec();
        encode_into(&mut buf, b"k", &("hello", 42u64), "test").unwrap();
        assert_eq!(&buf[..6], b"before");
        assert_eq!(
            buf[6..],
            encode(b"k", &("hello", 42u64), "test").unwrap()[..]
        );
        let back: (String, u64) = decode(b"k", &buf[6..]).unwrap();
        assert_eq!(back, ("hello".to_string(), 42));
    }

    #[test]
    fn wrong_key_and_short_records_are_rejected() {
        let rec = encode(b"a", &1u8, "test").unwrap();
        assert!(matches!(
            decode::<u8>(b"b", &rec),
            Err(Corruption::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            decode::<u8>(b"a", &rec[..3]),
            Err(Corruption::TooShort { len: 3, .. })
        ));
    }
}
