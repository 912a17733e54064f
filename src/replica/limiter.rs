//! The copy-rate limit on snapshot streams (`nfs.max_copy_rate_megabytes_per_disk`):
//! one budget per node, shared by every snapshot it streams, so learners never take the
//! whole disk from the partitions serving. A sender that fell behind (a sleep that
//! overslept, a learner that was slow to take a chunk) may catch up by at most
//! [`BURST`] of the budget, so the rate over any spell stays within the limit plus that
//! burst — without it, every late wake-up was lost, and a stream limited to 500 MB/s ran
//! at ~300.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Pegasus's default `nfs.max_copy_rate_megabytes_per_disk`.
pub const DEFAULT_COPY_RATE_MB: u64 = 500;

/// How far behind the budget a sender may catch up from.
pub const BURST: Duration = Duration::from_millis(20);

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
        let start = (*next).max(now.checked_sub(BURST).unwrap_or(now));
        *next = start + cost;
        start.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_spaces_chunks_at_the_configured_rate() {
        let limiter = CopyLimiter::default();
        limiter.set_rate_mb(10);
        let now = Instant::now() + Duration::from_secs(1);
        assert_eq!(limiter.reserve(1_000_000, now), Duration::ZERO);
        let wait = limiter.reserve(1_000_000, now);
        let near = |d: Duration, ms: f64| (d.as_secs_f64() * 1e3 - ms).abs() < 1e-3;
        assert!(
            near(wait, 80.0),
            "1 MB at 10 MB/s after a 20 ms burst, got {wait:?}"
        );
        // The next chunk's budget starts at +180 ms. A sender 15 ms late for it loses
        // nothing: the chunk after starts at +280 as if it had been on time...
        let ms = |n: u64| now + Duration::from_millis(n);
        assert_eq!(limiter.reserve(1_000_000, ms(195)), Duration::ZERO);
        assert!(near(limiter.reserve(1_000_000, ms(195)), 85.0));
        // ...while one 60 ms late (its budget from +380) catches up by only the burst.
        assert_eq!(limiter.reserve(1_000_000, ms(440)), Duration::ZERO);
        assert!(near(limiter.reserve(1_000_000, ms(440)), 80.0));
        limiter.set_rate_mb(0);
        assert_eq!(limiter.rate_mb(), 1, "at least 1 MB/s");
    }
}
