//! The copy-rate limit on snapshot streams (`nfs.max_copy_rate_megabytes_per_disk`):
//! one budget per node, shared by every snapshot it streams, so learners never take the
//! whole disk from the partitions serving.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Pegasus's default `nfs.max_copy_rate_megabytes_per_disk`.
pub const DEFAULT_COPY_RATE_MB: u64 = 500;

/// Limits how fast this node streams snapshots (one budget for the node's one disk).
pub struct CopyLimiter {
    rate_mb: AtomicU64,
    next_free: std::sync::Mutex<Instant>,
}

impl Default for CopyLimiter {
    fn default() -> CopyLimiter {
        CopyLimiter {
            rate_mb: AtomicU64::new(DEFAULT_COPY_RATE_MB),
            next_free: std::sync::Mutex::new(Instant::now()),
        }
    }
}

impl CopyLimiter {
    /// The limit in MB/s.
    pub fn rate_mb(&self) -> u64 {
        self.rate_mb.load(Ordering::Relaxed)
    }

    /// Sets the limit in MB/s (at least 1).
    pub fn set_rate_mb(&self, mb: u64) {
        self.rate_mb.store(mb.max(1), Ordering::Relaxed);
    }

    /// Reserves `bytes` of the budget; returns how long to wait before sending them.
    pub fn reserve(&self, bytes: usize, now: Instant) -> Duration {
        let cost = Duration::from_secs_f64(bytes as f64 / (self.rate_mb() as f64 * 1e6));
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*next).max(now);
        *next = start + cost;
        start - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_spaces_chunks_at_the_configured_rate() {
        let limiter = CopyLimiter::default();
        limiter.set_rate_mb(10);
        let now = Instant::now();
        assert_eq!(limiter.reserve(1_000_000, now), Duration::ZERO);
        let wait = limiter.reserve(1_000_000, now);
        assert!(
            (wait.as_secs_f64() - 0.1).abs() < 1e-6,
            "1 MB at 10 MB/s waits 100 ms, got {wait:?}"
        );
        limiter.set_rate_mb(0);
        assert_eq!(limiter.rate_mb(), 1, "at least 1 MB/s");
    }
}
