//! A replica's durable prepare log: segment files in `<replica>/log/`, each opening with
//! a header (magic, format version) and the promise in force when it was started, then
//! frames `[u32 length][u64 CRC-64 of the payload][payload]` (little-endian), the
//! payload a protobuf [`pb::LogRecord`] (an entry, or a promise).
//!
//! - **Replay** reads the segments in order with the core's rule
//!   ([`crate::replica::core::log::replay`]): the last promise wins, an entry replaces
//!   every entry at its decree and after.
//! - **Segments are preallocated** ahead of their data (64 KB at a time): an append
//!   overwrites allocated space, so its sync rarely has a file size to journal. Zeros
//!   after the last frame are a segment's end.
//! - **A torn tail** — a crash mid-append: a partial frame at the very end of the last
//!   segment, or followed only by zeros — is cut. **Corruption anywhere else** is never
//!   silently truncated: opening fails, and the replica is treated as lost (it learns
//!   again).
//! - **A failed write** is cut back to where the log ended, so no partial frame sits in
//!   front of later ones; a failed sync is returned (the replica then trusts nothing it
//!   wrote, and steps down).
//! - **Compaction** ([`compaction`]) deletes the oldest whole segments whose entries are
//!   all below a decree — the active one too once all of its are — never one after a
//!   segment it keeps (that one may hold the entry that replaced stale ones the kept
//!   segment holds). Nothing is rewritten, so a crash never leaves half a log. New
//!   segments, deletions and the directory are synced.
//! - **Slow metadata work is off the append path** ([`chores`]): the next segment is
//!   created ahead of need, compacted segments are deleted in the background.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::replica::core::log::replay;
use crate::replica::core::{Entry, HardState, LogRecord};

mod chores;
mod compaction;
mod format;
use chores::Chores;
use format::{HEADER, Tail, frame, header, holds_nothing, preallocate, read_segment};

/// The log format this binary writes and reads.
pub const FORMAT: u32 = 1;
/// A segment is closed (a new one started) once it is this big. Only closed segments
/// are deleted, so this bounds what a compacted log keeps beyond `compact_bytes`.
const SEGMENT_BYTES: u64 = 1 << 20;

/// One segment file.
#[derive(Debug, Clone)]
struct Segment {
    path: PathBuf,
    seq: u64,
    /// The highest decree of an entry in it (0: none).
    max_decree: u64,
}

/// A replica's log on disk.
#[derive(Debug)]
pub struct PrepareLog {
    dir: PathBuf,
    segments: Vec<Segment>,
    file: File,
    len: u64,
    /// The active segment's file size: preallocated, or its data where that is more.
    size: u64,
    hard: Option<HardState>,
    bytes: u64,
    /// Test hook: the next write writes only this many bytes, then fails.
    fail_write_after: Option<usize>,
    /// Segments are closed at this size.
    segment_bytes: u64,
    /// The active segment does not yet hold the promise (a spare just switched to):
    /// the next append writes it first.
    pending_hard: bool,
    /// Segment creation and deletion, in the background.
    chores: Chores,
}

/// What the log held when opened.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    /// The last promise.
    pub hard: HardState,
    /// The entries, consecutive where replay kept them, oldest first.
    pub entries: Vec<Entry>,
}

/// Syncs a directory (after creating, renaming or deleting a file in it).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl PrepareLog {
    /// Opens (creating if needed) the log in `replica_dir/log`, replaying it. A torn tail
    /// is cut; corruption elsewhere, or a segment of another format, is an error.
    pub fn open(replica_dir: &Path) -> Result<(PrepareLog, Replayed)> {
        let dir = replica_dir.join("log");
        std::fs::create_dir_all(&dir)?;
        let mut seqs: Vec<u64> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        seqs.sort_unstable();
        // A spare segment never written to (header only) holds nothing: it goes, so a
        // torn tail before it is still the log's end.
        let mut removed = false;
        while let [.., _, last] = seqs[..] {
            let path = segment_path(&dir, last);
            if !holds_nothing(&path)? {
                break;
            }
            std::fs::remove_file(&path)?;
            seqs.pop();
            removed = true;
        }
        if removed {
            sync_dir(&dir)?;
        }
        let mut segments = Vec::new();
        let mut last_holds_hard = false;
        let mut records = Vec::new();
        let mut bytes = 0;
        let (mut end, mut last_size) = (0, 0);
        for (i, seq) in seqs.iter().enumerate() {
            let path = segment_path(&dir, *seq);
            let before = records.len();
            let (tail, max_decree) = read_segment(&path, &mut records)?;
            last_holds_hard = records[before..]
                .iter()
                .any(|r| matches!(r, LogRecord::Hard(_)));
            end = match tail {
                Tail::Clean => std::fs::metadata(&path)?.len(),
                Tail::Zeros(at) => at,
                Tail::Torn(at) => at.max(HEADER),
            };
            if let Tail::Torn(at) = tail {
                if i + 1 != seqs.len() {
                    return Err(Error::Storage(format!(
                        "{}: torn at offset {at}, with later segments after it",
                        path.display()
                    )));
                }
                tracing::warn!(path = %path.display(), kept = at, "prepare log: torn tail cut off");
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(at.max(HEADER).min(std::fs::metadata(&path)?.len()))?;
                if at < HEADER {
                    file.write_all_at(&header(), 0)?;
                }
                file.sync_all()?;
            }
            last_size = std::fs::metadata(&path)?.len();
            bytes += last_size;
            segments.push(Segment {
                path,
                seq: *seq,
                max_decree,
            });
        }
        let (hard, entries) = replay(records);
        let hard_kept = (hard != HardState::default()).then(|| hard.clone());
        let mut log = match segments.last().cloned() {
            Some(last) => {
                let file = OpenOptions::new().read(true).write(true).open(&last.path)?;
                let size = preallocate(&file, end);
                PrepareLog {
                    dir,
                    segments,
                    file,
                    len: end,
                    size,
                    pending_hard: hard_kept.is_some() && !last_holds_hard,
                    hard: hard_kept,
                    bytes: bytes - last_size + size,
                    fail_write_after: None,
                    segment_bytes: SEGMENT_BYTES,
                    chores: Chores::default(),
                }
            }
            None => PrepareLog::start(dir, 1, None)?,
        };
        log.bytes = log.bytes.max(log.len);
        Ok((log, Replayed { hard, entries }))
    }

    /// A log of one new segment `seq` in `dir`, opening with `hard`.
    fn start(dir: PathBuf, seq: u64, hard: Option<HardState>) -> Result<PrepareLog> {
        let (path, file, len) = create_segment(&dir, seq, hard.as_ref())?;
        let size = preallocate(&file, len);
        Ok(PrepareLog {
            dir,
            segments: vec![Segment {
                path,
                seq,
                max_decree: 0,
            }],
            file,
            len,
            size,
            hard,
            bytes: size,
            fail_write_after: None,
            segment_bytes: SEGMENT_BYTES,
            pending_hard: false,
            chores: Chores::default(),
        })
    }

    /// Appends records and syncs them (one write, one sync). A failed write is cut back
    /// to where the log ended; any error means the records may not be durable.
    pub fn append(&mut self, records: &[LogRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if self.len >= self.segment_bytes {
            self.roll()?;
        }
        let mut buf = Vec::new();
        if self.pending_hard
            && let Some(h) = &self.hard
        {
            frame(&LogRecord::Hard(h.clone()), &mut buf);
        }
        for r in records {
            frame(r, &mut buf);
        }
        self.reserve(self.len + buf.len() as u64);
        let written = match self.fail_write_after.take() {
            Some(n) => {
                let n = n.min(buf.len());
                self.file.write_all_at(&buf[..n], self.len)?;
                Err(Error::Storage("injected: write failed (EIO)".into()))
            }
            None => self.file.write_all_at(&buf, self.len).map_err(Error::from),
        };
        if let Err(e) = written {
            // Leave no partial frame in front of later appends.
            if let Err(cut) = self.file.set_len(self.len) {
                return Err(Error::Storage(format!(
                    "{e}; and cutting the partial write back failed: {cut}"
                )));
            }
            self.bytes = self.bytes - self.size + self.len;
            self.size = self.len;
            self.reserve(self.len);
            return Err(e);
        }
        self.file.sync_data()?;
        self.pending_hard = false;
        self.len += buf.len() as u64;
        if self.len > self.size {
            self.bytes += self.len - self.size;
            self.size = self.len;
        }
        if self.len >= self.segment_bytes / 2 {
            self.chores.make_spare(&self.dir, self.next_seq());
        }
        let current = self.segments.last_mut().expect("an active segment");
        for r in records {
            match r {
                LogRecord::Entry(e) => current.max_decree = current.max_decree.max(e.decree),
                LogRecord::Hard(h) => self.hard = Some(h.clone()),
            }
        }
        Ok(())
    }

    /// Preallocates the active segment past `upto` unless its file already extends
    /// past it, and counts what that adds.
    fn reserve(&mut self, upto: u64) {
        if upto >= self.size {
            let size = preallocate(&self.file, upto);
            self.bytes = self.bytes - self.size + size;
            self.size = size;
        }
    }

    /// The sequence number of the next segment.
    fn next_seq(&self) -> u64 {
        self.segments.last().map_or(1, |s| s.seq + 1)
    }

    /// Starts a new segment: the spare if it is ready, else one created now.
    fn roll(&mut self) -> Result<()> {
        if !self.switch_to_spare(true) {
            let seq = self.next_seq();
            let (path, file, len) = create_segment(&self.dir, seq, self.hard.as_ref())?;
            self.switch_to(path, seq, file, len, false);
        }
        Ok(())
    }

    /// Makes the spare segment the active one, if it is ready (when `wait`, once one
    /// being made is); returns whether it did.
    fn switch_to_spare(&mut self, wait: bool) -> bool {
        let seq = self.next_seq();
        match self.chores.take_spare(seq, wait) {
            Some(spare) => {
                self.switch_to(spare.path, seq, spare.file, HEADER, true);
                true
            }
            None => false,
        }
    }

    /// Makes segment `seq` (`len` bytes long) the active one; `spare` when it does not
    /// hold the promise yet.
    fn switch_to(&mut self, path: PathBuf, seq: u64, file: File, len: u64, spare: bool) {
        self.segments.push(Segment {
            path,
            seq,
            max_decree: 0,
        });
        self.size = preallocate(&file, len);
        self.file = file;
        self.len = len;
        self.bytes += self.size;
        self.pending_hard = spare && self.hard.is_some();
    }

    /// The log's size on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Closes segments at `bytes` (tests use small segments).
    pub fn set_segment_bytes(&mut self, bytes: u64) {
        self.segment_bytes = bytes.max(HEADER + 1);
    }

    /// The number of segment files.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// Test hook: waits for the background chores (a spare made is kept for the next
    /// roll).
    #[cfg(test)]
    pub fn settle(&mut self) {
        self.chores.wait();
    }

    /// Test hook: the next write stops after `bytes` bytes and fails.
    pub fn fail_next_write_after(&mut self, bytes: usize) {
        self.fail_write_after = Some(bytes);
    }
}

/// The path of segment `seq` in `dir`.
fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

/// Creates segment `seq` in `dir` opening with `hard` (if any), durably with its
/// directory entry; returns its path, the open file and its length.
fn create_segment(dir: &Path, seq: u64, hard: Option<&HardState>) -> Result<(PathBuf, File, u64)> {
    let path = segment_path(dir, seq);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    let mut buf = header().to_vec();
    if let Some(h) = hard {
        frame(&LogRecord::Hard(h.clone()), &mut buf);
    }
    file.write_all_at(&buf, 0)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok((path, file, buf.len() as u64))
}

#[cfg(test)]
mod tests;
