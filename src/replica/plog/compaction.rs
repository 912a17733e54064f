//! Shrinking a replica's prepare log: compaction deletes the oldest whole segments
//! whose entries the store holds durably (and no peer needs), and a reset empties it
//! for a learner starting over. Either keeps the promise on disk: a segment about to go
//! may hold its only copy, so the active segment is given it first.

use super::format::PREALLOCATE_AHEAD;
use super::*;

impl PrepareLog {
    /// Forgets the oldest closed segments whose entries are all below `decree` (up to
    /// the first that is not) and deletes them in the background. The active segment is
    /// closed first once it is half full, if its successor is ready, so it can go at the
    /// next compaction — or at once, onto a new segment, when every entry in it is below
    /// `decree` and it holds at least [`PREALLOCATE_AHEAD`] of them (a quiet replica
    /// keeps little log its store holds, and one that writes now and then does not make
    /// a file each time).
    pub fn compact(&mut self, decree: u64) -> Result<()> {
        let active = self.segments.last().expect("an active segment").max_decree;
        if active > 0 && active < decree && self.len >= PREALLOCATE_AHEAD {
            self.roll()?;
        } else if self.len >= self.segment_bytes / 2 && !self.switch_to_spare(false) {
            self.chores.make_spare(&self.dir, self.next_seq());
        }
        // A spare switched to does not hold the promise yet, and the segments about to
        // go may hold its only copy.
        self.write_pending_promise()?;
        // Only the oldest segments go, up to the first one kept: an entry replaces every
        // entry at its decree and after, so a later segment whose entries are all below
        // `decree` may hold the one that replaced stale entries an older kept segment
        // still holds above it — deleting it would bring them back at replay.
        let active = self.segments.len() - 1;
        let below = self.segments[..active]
            .iter()
            .take_while(|s| s.max_decree < decree)
            .count();
        let mut gone = Vec::new();
        for s in self.segments.drain(..below) {
            let len = std::fs::metadata(&s.path).map_or(0, |m| m.len());
            self.bytes = self.bytes.saturating_sub(len);
            gone.push(s.path);
        }
        self.chores.delete(&self.dir, gone);
        Ok(())
    }

    /// Empties the log, keeping the promise (a learner starting over).
    pub fn reset(&mut self) -> Result<()> {
        let mut seq = self.next_seq();
        if let Some(spare) = self.chores.finish() {
            std::fs::remove_file(&spare.path)?;
            seq = seq.max(spare.seq + 1);
        }
        for s in std::mem::take(&mut self.segments) {
            std::fs::remove_file(&s.path)?;
        }
        let (path, file, len) = create_segment(&self.dir, seq, self.hard.as_ref())?;
        self.bytes = 0;
        self.switch_to(path, seq, file, len, false);
        Ok(())
    }

    /// Writes the promise into the active segment now if it does not hold it yet.
    fn write_pending_promise(&mut self) -> Result<()> {
        let Some(hard) = self.hard.clone().filter(|_| self.pending_hard) else {
            return Ok(());
        };
        self.pending_hard = false;
        let written = self.append(&[LogRecord::Hard(hard)]);
        if written.is_err() {
            self.pending_hard = true;
        }
        written
    }
}
