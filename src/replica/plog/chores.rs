//! The prepare log's slow filesystem work, off the append path. Creating a segment
//! (create, header, `fsync`, directory `fsync`) and deleting compacted ones (unlink,
//! directory `fsync`) each took 10–20 ms on the test machine's disk; done by the I/O
//! thread they stalled every write of the partition for that long (`ballast-bench
//! move-pri` saw 20–37 ms gaps in writes at each compaction).
//!
//! - **A spare segment** is created ahead of need, in the background, under its final
//!   name (`<seq>.seg`, header only) and made durable with its directory entry; the log
//!   switches to it at the next roll without touching the filesystem's metadata. A spare
//!   never written to holds nothing: opening the log removes it.
//! - **Deleting compacted segments** happens in the background: until it does, a crash
//!   only leaves older entries, which replay reads and the later ones replace.
//!
//! Every chore is a short-lived thread; the log waits for them all before it resets,
//! and when it is dropped, so nothing writes into a directory being emptied.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Result;

use super::{create_segment, sync_dir};

/// A segment file created ahead of need: durable, header only.
#[derive(Debug)]
pub(super) struct Spare {
    /// Its sequence number.
    pub seq: u64,
    /// Its path.
    pub path: PathBuf,
    /// Open for reading and writing.
    pub file: File,
}

/// The chores of one log.
#[derive(Debug, Default)]
pub(super) struct Chores {
    /// Creating a spare segment.
    making: Option<JoinHandle<Option<Spare>>>,
    /// Deleting compacted segments.
    deleting: Vec<JoinHandle<()>>,
    /// A spare segment ready to use.
    spare: Option<Spare>,
    /// When making a spare last failed (not tried again for [`RETRY`]).
    failed_at: Option<Instant>,
}

/// A spare that could not be made is not tried again sooner (a full disk would
/// otherwise start a thread, and log a warning, at every append).
const RETRY: Duration = Duration::from_secs(1);

/// Creates segment `seq` in `dir`, header only, durably.
fn create_spare(dir: &Path, seq: u64) -> Result<Spare> {
    let (path, file, _) = create_segment(dir, seq, None)?;
    Ok(Spare { seq, path, file })
}

impl Chores {
    /// Starts creating spare segment `seq` in `dir`, unless one is ready or being made.
    pub fn make_spare(&mut self, dir: &Path, seq: u64) {
        self.reap(false);
        if self.spare.is_some()
            || self.making.is_some()
            || self.failed_at.is_some_and(|t| t.elapsed() < RETRY)
        {
            return;
        }
        let dir = dir.to_path_buf();
        self.making = Some(std::thread::spawn(move || match create_spare(&dir, seq) {
            Ok(spare) => Some(spare),
            Err(e) => {
                // The next roll creates its segment itself, on the append path.
                tracing::warn!(dir = %dir.display(), "cannot create a spare log segment: {e}");
                None
            }
        }));
    }

    /// Starts deleting `paths` (closed segments below the compaction point).
    pub fn delete(&mut self, dir: &Path, paths: Vec<PathBuf>) {
        self.reap(false);
        if paths.is_empty() {
            return;
        }
        let dir = dir.to_path_buf();
        self.deleting.push(std::thread::spawn(move || {
            let mut deleted = false;
            for path in &paths {
                match std::fs::remove_file(path) {
                    Ok(()) => deleted = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "cannot delete a log segment: {e}")
                    }
                }
            }
            if deleted && let Err(e) = sync_dir(&dir) {
                tracing::warn!(dir = %dir.display(), "cannot sync the log directory: {e}");
            }
        }));
    }

    /// The spare segment `seq`, if it is ready; when `wait`, waits for one being made
    /// (a segment created in its place would race with it for the same file).
    pub fn take_spare(&mut self, seq: u64, wait: bool) -> Option<Spare> {
        if wait && let Some(handle) = self.making.take() {
            self.collect(handle);
        }
        self.reap(false);
        match self.spare.take() {
            Some(spare) if spare.seq == seq => Some(spare),
            other => {
                self.spare = other;
                None
            }
        }
    }

    /// Waits for every chore; returns the spare left over, if any (the caller deletes
    /// it or keeps it).
    pub fn finish(&mut self) -> Option<Spare> {
        self.reap(true);
        self.spare.take()
    }

    /// Waits for every chore, keeping a spare made for the next roll.
    #[cfg(test)]
    pub fn wait(&mut self) {
        self.reap(true);
    }

    /// Waits for the spare being made: keeps it, or notes the failure.
    fn collect(&mut self, handle: JoinHandle<Option<Spare>>) {
        match handle.join() {
            Ok(Some(spare)) => self.spare = Some(spare),
            _ => self.failed_at = Some(Instant::now()),
        }
    }

    /// Collects finished chores (all of them, waiting, when `wait`).
    fn reap(&mut self, wait: bool) {
        if let Some(handle) = self.making.take() {
            if wait || handle.is_finished() {
                self.collect(handle);
            } else {
                self.making = Some(handle);
            }
        }
        for handle in std::mem::take(&mut self.deleting) {
            if wait || handle.is_finished() {
                let _ = handle.join();
            } else {
                self.deleting.push(handle);
            }
        }
    }
}

impl Drop for Chores {
    fn drop(&mut self) {
        self.reap(true);
    }
}
