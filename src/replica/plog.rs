//! A replica's durable prepare log: every (ballot, decree, mutations) entry the replica
//! has prepared, appended to one file and fsynced before the prepare is acknowledged.
//!
//! Frames are `[u32 length][u64 CRC-64 of the payload][payload]` (little-endian), the
//! payload a protobuf [`pb::LogEntry`]. On open the file is replayed; a torn or corrupt
//! tail (a crash mid-append) is cut off. Appending decree `d` under ballot `b` replaces
//! any entry at `d` and drops later entries of a lower ballot: entries a newer primary
//! re-prepares overwrite those of an older one, on disk as in memory, because replay
//! applies the same rule in the same order.
//!
//! The log keeps every entry since its last compaction in memory; compaction rewrites
//! the file with the entries from a given decree on (temporary file, fsync, rename).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;

use crate::data::crc64;
use crate::error::{Error, Result};
use crate::pb;

const HEADER: usize = 12;
/// Frames longer than this are corruption, not data.
const MAX_FRAME: usize = 256 << 20;

/// The log of one replica.
pub struct PrepareLog {
    path: PathBuf,
    /// Shared with pending [`LogSync`]s, which fsync it off the partition's lock.
    file: Arc<File>,
    entries: BTreeMap<u64, pb::LogEntry>,
    bytes: u64,
}

fn frame(entry: &pb::LogEntry) -> Vec<u8> {
    let payload = entry.encode_to_vec();
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc64(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Adds `entry` to `entries` with the overwrite rule.
fn insert(entries: &mut BTreeMap<u64, pb::LogEntry>, entry: pb::LogEntry) {
    let (ballot, decree) = (entry.ballot, entry.decree);
    let stale: Vec<u64> = entries
        .range(decree + 1..)
        .filter(|(_, e)| e.ballot < ballot)
        .map(|(d, _)| *d)
        .collect();
    for d in stale {
        entries.remove(&d);
    }
    entries.insert(decree, entry);
}

/// A pending fsync of the log, to wait on (blocking) before appended entries count as
/// logged.
#[must_use = "appended entries are not durable until the sync is waited on"]
pub struct LogSync(Arc<File>);

impl LogSync {
    /// Waits until everything written to the log so far is on disk.
    pub fn wait(self) -> Result<()> {
        self.0.sync_data()?;
        Ok(())
    }
}

impl PrepareLog {
    /// Opens (creating if needed) `dir/prepare.log`, replaying it.
    pub fn open(dir: &Path) -> Result<PrepareLog> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("prepare.log");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw)?;
        let mut entries = BTreeMap::new();
        let mut at = 0;
        while raw.len() - at >= HEADER {
            let len = u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes")) as usize;
            let crc = u64::from_le_bytes(raw[at + 4..at + 12].try_into().expect("8 bytes"));
            let end = at + HEADER + len;
            if len > MAX_FRAME || end > raw.len() || crc64(&raw[at + HEADER..end]) != crc {
                break;
            }
            let entry = pb::LogEntry::decode(&raw[at + HEADER..end])
                .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
            insert(&mut entries, entry);
            at = end;
        }
        if at < raw.len() {
            tracing::warn!(path = %path.display(), kept = at, dropped = raw.len() - at, "prepare log: torn tail cut off");
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        Ok(PrepareLog {
            path,
            file: Arc::new(file),
            entries,
            bytes: at as u64,
        })
    }

    /// Appends entries durably (one write and one fsync for all of them).
    pub fn append(&mut self, entries: &[pb::LogEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.append_unsynced(entries)?.wait()
    }

    /// Appends entries (one write) without waiting for the disk: they are in the log
    /// but count as logged only once the returned [`LogSync`] has been waited on. The
    /// primary waits on it while its prepares are on the wire.
    pub fn append_unsynced(&mut self, entries: &[pb::LogEntry]) -> Result<LogSync> {
        let mut buf = Vec::new();
        for e in entries {
            buf.extend_from_slice(&frame(e));
        }
        (&*self.file).write_all(&buf)?;
        self.bytes += buf.len() as u64;
        for e in entries {
            insert(&mut self.entries, e.clone());
        }
        Ok(LogSync(self.file.clone()))
    }

    /// Whether the log already holds exactly this entry (same decree and ballot).
    pub fn has(&self, entry: &pb::LogEntry) -> bool {
        self.entries
            .get(&entry.decree)
            .is_some_and(|e| e.ballot == entry.ballot)
    }

    /// The highest decree logged (0 if none).
    pub fn last_decree(&self) -> u64 {
        self.entries.keys().next_back().copied().unwrap_or(0)
    }

    /// The entry at `decree`.
    pub fn get(&self, decree: u64) -> Option<&pb::LogEntry> {
        self.entries.get(&decree)
    }

    /// Entries from `from` on, oldest first.
    pub fn since(&self, from: u64) -> Vec<pb::LogEntry> {
        self.entries.range(from..).map(|(_, e)| e.clone()).collect()
    }

    /// Whether every decree in `from..=to` is logged.
    pub fn contiguous(&self, from: u64, to: u64) -> bool {
        from > to || self.entries.range(from..=to).count() as u64 == to - from + 1
    }

    /// The file's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Rewrites the log keeping only entries from `from` on.
    pub fn compact(&mut self, from: u64) -> Result<()> {
        let keep: BTreeMap<u64, pb::LogEntry> = self.entries.split_off(&from);
        let tmp = self.path.with_extension("log.tmp");
        let mut buf = Vec::new();
        for e in keep.values() {
            buf.extend_from_slice(&frame(e));
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = Arc::new(OpenOptions::new().append(true).open(&self.path)?);
        self.bytes = buf.len() as u64;
        self.entries = keep;
        Ok(())
    }

    /// Empties the log (a learner starting over from a snapshot).
    pub fn clear(&mut self) -> Result<()> {
        self.compact(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ballot: i64, decree: u64, tag: &str) -> pb::LogEntry {
        pb::LogEntry {
            ballot,
            decree,
            mutations: vec![pb::Mutation {
                hash_key: tag.as_bytes().to_vec(),
                ..Default::default()
            }],
            requests: vec![],
        }
    }

    fn tags(log: &PrepareLog) -> Vec<(i64, u64)> {
        log.since(0).iter().map(|e| (e.ballot, e.decree)).collect()
    }

    #[test]
    fn entries_survive_reopen_and_newer_ballots_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PrepareLog::open(dir.path()).unwrap();
        log.append(&[entry(1, 1, "a"), entry(1, 2, "b"), entry(1, 3, "c")])
            .unwrap();
        log.append(&[entry(2, 2, "B")]).unwrap();
        assert_eq!(tags(&log), [(1, 1), (2, 2)], "decree 3 of ballot 1 dropped");
        assert!(log.has(&entry(2, 2, "")) && !log.has(&entry(1, 2, "")));
        drop(log);
        let log = PrepareLog::open(dir.path()).unwrap();
        assert_eq!(tags(&log), [(1, 1), (2, 2)], "replay applies the same rule");
        assert_eq!(log.get(2).unwrap().mutations[0].hash_key, b"B");
        assert!(log.contiguous(1, 2) && !log.contiguous(1, 3));
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PrepareLog::open(dir.path()).unwrap();
        log.append(&[entry(1, 1, "a"), entry(1, 2, "b")]).unwrap();
        let full = log.bytes();
        drop(log);
        let path = dir.path().join("prepare.log");
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 3).unwrap();
        let mut log = PrepareLog::open(dir.path()).unwrap();
        assert_eq!(tags(&log), [(1, 1)]);
        log.append(&[entry(1, 2, "b2")]).unwrap();
        let log = PrepareLog::open(dir.path()).unwrap();
        assert_eq!(tags(&log), [(1, 1), (1, 2)]);
        assert_eq!(log.get(2).unwrap().mutations[0].hash_key, b"b2");
    }

    #[test]
    fn compaction_keeps_the_tail_durably() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PrepareLog::open(dir.path()).unwrap();
        let all: Vec<_> = (1..=10).map(|d| entry(1, d, "x")).collect();
        log.append(&all).unwrap();
        let before = log.bytes();
        log.compact(8).unwrap();
        assert!(log.bytes() < before);
        log.append(&[entry(1, 11, "y")]).unwrap();
        let log = PrepareLog::open(dir.path()).unwrap();
        assert_eq!(
            tags(&log),
            [(1, 8), (1, 9), (1, 10), (1, 11)],
            "compacted and appended after"
        );
    }

    #[test]
    fn an_unsynced_append_is_in_the_log_at_once_and_on_disk_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PrepareLog::open(dir.path()).unwrap();
        log.append(&[entry(1, 1, "a")]).unwrap();
        let sync = log.append_unsynced(&[entry(1, 2, "b")]).unwrap();
        assert_eq!(log.last_decree(), 2, "visible before the sync");
        // Another entry written after it: one wait covers everything written so far.
        let later = log.append_unsynced(&[entry(1, 3, "c")]).unwrap();
        later.wait().unwrap();
        sync.wait().unwrap();
        let bytes = log.bytes();
        drop(log);
        let log = PrepareLog::open(dir.path()).unwrap();
        assert_eq!(log.last_decree(), 3);
        assert_eq!(log.bytes(), bytes);
        assert!(log.contiguous(1, 3));
    }
}
