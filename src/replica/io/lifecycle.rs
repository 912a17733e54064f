//! A replica directory's life on its I/O thread: closed, made fresh after a loss or a bad
//! store, emptied for a learner starting over (keeping the promise), destroyed when the
//! replica is killed (a marker of the ballot stays), created empty for a new partition.

use std::path::Path;
use std::sync::Arc;

use super::Io;
use crate::error::{Error, Result};
use crate::replica::base_files::remove_other_bases;
use crate::replica::core::LogRecord;
use crate::replica::core::sessions::Sessions;
use crate::replica::node_dir::{LOST, write_atomic};
use crate::replica::plog::{PrepareLog, sync_dir};
use crate::replica::storage::{FILE, ReplicaStore};

impl Io {
    pub(super) fn close(&mut self) {
        self.shared.set_store(None);
        self.store = None;
        self.log = None;
    }

    /// Opens a fresh store and log in the directory (after a loss or a bad store).
    fn recreate(&mut self) -> Result<()> {
        self.close();
        std::fs::create_dir_all(&self.dir)?;
        for f in [FILE, LOST] {
            remove_if_present(&self.dir.join(f))?;
        }
        remove_other_bases(&self.dir, None)?;
        remove_if_present(&self.dir.join("log"))?;
        sync_dir(&self.dir)?;
        let store = Arc::new(ReplicaStore::open(&self.dir, self.cache_bytes)?);
        let (log, _) = PrepareLog::open(&self.dir)?;
        self.shared.set_store(Some(store.clone()));
        self.store = Some(store);
        self.log = Some(log);
        Ok(())
    }

    /// A learner starts over: an empty, incomplete store and an empty log that keeps the
    /// promise.
    pub(super) fn reset(&mut self) -> Result<()> {
        self.load_bytes = 0;
        self.sessions = Sessions::default();
        self.set_applied(0);
        let usable = self.store.as_ref().is_some_and(|s| s.reset().is_ok());
        match (usable, self.log.as_mut()) {
            (true, Some(log)) => log.reset(),
            _ => {
                let hard = self.shared.last_hard();
                self.recreate()?;
                match (hard, self.log.as_mut()) {
                    (Some(h), Some(log)) => log.append(&[LogRecord::Hard(h)]),
                    _ => Ok(()),
                }
            }
        }
    }

    /// The replica was killed: its data goes, a marker of the ballot stays.
    pub(super) fn destroy(&mut self, ballot: i64) -> Result<()> {
        self.close();
        std::fs::create_dir_all(&self.dir)?;
        for f in [FILE, "log"] {
            remove_if_present(&self.dir.join(f))?;
        }
        remove_other_bases(&self.dir, None)?;
        write_atomic(&self.dir.join(LOST), ballot.to_string().as_bytes())?;
        self.sessions = Sessions::default();
        self.set_applied(0);
        Ok(())
    }

    /// A brand-new partition: an empty store, complete.
    pub(super) fn create_empty(&mut self) -> Result<()> {
        if self.store.is_none() || self.log.is_none() || self.dir.join(LOST).exists() {
            self.recreate()?;
        }
        self.store
            .as_ref()
            .ok_or_else(|| Error::Internal("no store".into()))?
            .create_empty()?;
        self.sessions = Sessions::default();
        self.set_applied(0);
        Ok(())
    }
}

/// Removes a file, or a directory with everything in it; one already gone is fine.
pub fn remove_if_present(path: &Path) -> Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
