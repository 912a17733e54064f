//! Disk faults a test can inject into a replica server it runs in-process: stall one
//! replica's I/O (its fsyncs and store commits), slow its store commits alone, or fail
//! its next log sync. Production servers carry an empty set; the I/O thread checks it
//! before each batch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::Gpid;

/// The faults injected into one replica server.
#[derive(Debug, Default)]
pub struct Faults {
    stalls: Mutex<BTreeMap<Gpid, Instant>>,
    fail_sync: Mutex<BTreeSet<Gpid>>,
    slow_applies: Mutex<BTreeMap<Gpid, Duration>>,
    /// I/O threads blocked by a stall right now, per replica.
    stalled_now: Mutex<BTreeMap<Gpid, usize>>,
}

impl Faults {
    /// `gpid`'s I/O makes no progress for `how_long`.
    pub fn stall(&self, gpid: Gpid, how_long: Duration) {
        let until = Instant::now() + how_long;
        self.stalls.lock().expect("faults").insert(gpid, until);
    }

    /// Every store commit (apply) of `gpid` takes `extra` longer; its log writes do not.
    pub fn slow_applies(&self, gpid: Gpid, extra: Duration) {
        self.slow_applies
            .lock()
            .expect("faults")
            .insert(gpid, extra);
    }

    /// Delays the calling I/O thread's apply if `gpid`'s applies are slowed.
    pub fn delay_apply(&self, gpid: Gpid) {
        let extra = self
            .slow_applies
            .lock()
            .expect("faults")
            .get(&gpid)
            .copied();
        if let Some(extra) = extra {
            std::thread::sleep(extra);
        }
    }

    /// `gpid`'s next log sync fails (as EIO would).
    pub fn fail_next_sync(&self, gpid: Gpid) {
        self.fail_sync.lock().expect("faults").insert(gpid);
    }

    /// Blocks the calling I/O thread while `gpid` is stalled.
    pub fn wait_if_stalled(&self, gpid: Gpid) {
        let mut counted = false;
        loop {
            let until = self.stalls.lock().expect("faults").get(&gpid).copied();
            match until {
                Some(t) if t > Instant::now() => {
                    if !counted {
                        *self
                            .stalled_now
                            .lock()
                            .expect("faults")
                            .entry(gpid)
                            .or_default() += 1;
                        counted = true;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => break,
            }
        }
        if counted && let Some(n) = self.stalled_now.lock().expect("faults").get_mut(&gpid) {
            *n -= 1;
        }
    }

    /// Whether an I/O thread of `gpid` is blocked by a stall right now (a test waits
    /// for this before acting on a replica whose I/O is stuck).
    pub fn is_stalling(&self, gpid: Gpid) -> bool {
        self.stalled_now
            .lock()
            .expect("faults")
            .get(&gpid)
            .is_some_and(|n| *n > 0)
    }

    /// Whether `gpid`'s sync must fail now (the fault is used up).
    pub fn take_failed_sync(&self, gpid: Gpid) -> bool {
        self.fail_sync.lock().expect("faults").remove(&gpid)
    }
}
