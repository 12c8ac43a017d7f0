//! Moving a Raft log kept by earlier versions in sled's `raft_log` tree into segment files
//! ([`crate::log_files`]), once, when such a store is first opened.
//!
//! Records are copied byte for byte (their checksums still cover index and payload), so damage
//! in the old log is found by the same open-time check afterwards. The copy is built in
//! `log.new/`, synced, and renamed to `log/`; only then is the sled tree dropped. A crash at any
//! point leaves either the old tree and no `log/` (the copy starts again) or a complete `log/`
//! (the leftover tree is dropped).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::StorageError;
use crate::layout::{self, TREE_LOG};
use crate::log_files;
use crate::sled_files::SledFiles;

pub(crate) fn migrate(
    sled: &SledFiles,
    store_dir: &Path,
    segment_bytes: u64,
) -> Result<(), StorageError> {
    let db = sled.db();
    let log_dir = store_dir.join(log_files::DIR);
    let had_tree = db.tree_names().iter().any(|n| n == TREE_LOG.as_bytes());
    if log_dir.is_dir() {
        if had_tree {
            db.drop_tree(TREE_LOG)?;
            sled.flush()?;
        }
        return Ok(());
    }
    let tmp = store_dir.join("log.new");
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir(&tmp)?;
    let mut moved = 0u64;
    if had_tree {
        let tree = db.open_tree(TREE_LOG)?;
        let mut current: Option<(fs::File, u64)> = None;
        let mut last: Option<u64> = None;
        let mut files = Vec::new();
        let mut frame = Vec::new();
        for item in tree.iter() {
            let (key, value) = item?;
            // A key that is not an index keeps its place; its checksum will not match.
            let index = layout::log_index(&key).unwrap_or_else(|| last.map_or(0, |l| l + 1));
            let full = current
                .as_ref()
                .is_some_and(|(_, end)| *end >= segment_bytes);
            if current.is_none() || full || last.is_none_or(|l| index != l + 1) {
                if let Some((file, _)) = current.take() {
                    files.push(file);
                }
                let (_, file) = log_files::create_segment(&tmp, index, segment_bytes)?;
                current = Some((file, 0));
            }
            let (file, end) = current.as_mut().expect("a segment");
            frame.clear();
            log_files::encode_frame(&mut frame, index, &value);
            file.write_all_at(&frame, *end)?;
            *end += frame.len() as u64;
            last = Some(index);
            moved += 1;
        }
        files.extend(current.map(|(f, _)| f));
        for file in &files {
            file.sync_all()?;
        }
    }
    log_files::sync_dir(&tmp)?;
    fs::rename(&tmp, &log_dir)?;
    log_files::sync_dir(store_dir)?;
    if had_tree {
        db.drop_tree(TREE_LOG)?;
        sled.flush()?;
    }
    if moved > 0 {
        tracing::info!(
            entries = moved,
            dir = %log_dir.display(),
            "moved the raft log out of sled into segment files"
        );
    }
    Ok(())
}
