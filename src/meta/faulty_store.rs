//! A meta store for fault tests: in memory, shared by every clone (so it survives a
//! simulated meta server's restarts), whose writes can be made to fail or to stall.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::error::{Error, Result};
use crate::meta::store::{MemStore, MetaStore, StoreOp, StoredState};

/// An in-memory store with switches: writes fail while failing, block while stalled.
#[derive(Clone, Default)]
pub struct FaultyStore {
    inner: Arc<Mutex<MemStore>>,
    failing: Arc<AtomicBool>,
    stalled: Arc<(Mutex<bool>, Condvar)>,
    writes: Arc<AtomicU64>,
    attempts: Arc<AtomicU64>,
}

impl FaultyStore {
    /// An empty store whose writes succeed.
    pub fn new() -> FaultyStore {
        FaultyStore {
            inner: Arc::new(Mutex::new(MemStore::new())),
            ..FaultyStore::default()
        }
    }

    /// Makes writes fail (`true`) or succeed again.
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::Relaxed);
    }

    /// Makes writes block until stalling is turned off again.
    pub fn stall(&self, on: bool) {
        let (lock, cv) = &*self.stalled;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = on;
        cv.notify_all();
    }

    /// How many writes were begun (stalled ones included).
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// How many writes succeeded.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

impl MetaStore for FaultyStore {
    fn load(&self) -> Result<StoredState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).load()
    }

    fn apply(&mut self, ops: &[StoreOp]) -> Result<()> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let (lock, cv) = &*self.stalled;
        let mut stalled = lock.lock().unwrap_or_else(|p| p.into_inner());
        while *stalled {
            stalled = cv.wait(stalled).unwrap_or_else(|p| p.into_inner());
        }
        drop(stalled);
        if self.failing.load(Ordering::Relaxed) {
            return Err(Error::Storage(
                "injected: the meta store write failed".into(),
            ));
        }
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(ops)?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
