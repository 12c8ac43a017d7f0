//! A high-water mark of the committed log index, kept in a small file beside sled.
//!
//! sled recovers from damage to its own files by silently keeping a consistent prefix of its
//! writes. Below the per-record checksums, that could make a member come back with fewer entries
//! than it had committed and serve an old database without a word. The committed index is
//! therefore also written to `committed.hwm` (index + CRC-32), never above the last entry this
//! member has synced (`LogFiles::synced_upto`: a leader's entry can be committed by its followers
//! before its own flush, and a mark above its synced log could, after a power cut, refuse a
//! start that lost nothing). It is not fsynced on its own: a crash can only leave it *older*
//! than the truth, never newer, so it never raises a false alarm. At open, a log (plus purged prefix)
//! that ends below the mark means sled lost committed entries: the store refuses to open
//! unless repair was asked for, in which case the loss is logged and the member catches up from
//! its peers.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub(crate) const FILE: &str = "committed.hwm";

pub(crate) struct HighWater {
    path: PathBuf,
    /// Kept open after the first write: the mark is written at every commit, and opening and
    /// closing the file each time was two system calls per write on every member.
    file: Option<File>,
}

impl HighWater {
    pub(crate) fn new(dir: &Path) -> HighWater {
        HighWater {
            path: dir.join(FILE),
            file: None,
        }
    }

    /// The recorded committed index; `None` when there is no (valid) mark.
    pub(crate) fn read(&self) -> Option<u64> {
        let bytes = fs::read(&self.path).ok()?;
        let (index, crc) = (bytes.get(..8)?, bytes.get(8..12)?);
        if crc32fast::hash(index).to_be_bytes() != crc {
            tracing::warn!(path = %self.path.display(), "ignoring a damaged committed high-water mark");
            return None;
        }
        Some(u64::from_be_bytes(index.try_into().ok()?))
    }

    pub(crate) fn write(&mut self, index: u64) -> std::io::Result<()> {
        let mut buf = [0u8; 12];
        buf[..8].copy_from_slice(&index.to_be_bytes());
        let crc = crc32fast::hash(&buf[..8]);
        buf[8..].copy_from_slice(&crc.to_be_bytes());
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&self.path)?,
            ),
        };
        file.write_all_at(&buf, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut hw = HighWater::new(dir.path());
        assert_eq!(hw.read(), None);
        hw.write(41).unwrap();
        hw.write(1234).unwrap();
        assert_eq!(hw.read(), Some(1234));
        let mut bytes = fs::read(dir.path().join(FILE)).unwrap();
        bytes[3] ^= 0xff;
        fs::write(dir.path().join(FILE), bytes).unwrap();
        assert_eq!(hw.read(), None);
    }
}
