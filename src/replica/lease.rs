//! The replica server's lease. It is counted from the *send* time of the last beacon the
//! meta server acknowledged, on a monotonic clock, so it always ends before the meta
//! server's grace period (counted from the *receive* time, and longer) can declare the
//! node dead and hand its partitions to others.

use std::time::{Duration, Instant};

/// When the lease was last renewed and for how long.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lease {
    acked_send_time: Option<Instant>,
    length: Duration,
}

impl Lease {
    /// Renews the lease: a beacon sent at `sent` was acknowledged with lease `length`.
    pub fn renew(&mut self, sent: Instant, length: Duration) {
        if self.acked_send_time.is_none_or(|t| sent > t) {
            self.acked_send_time = Some(sent);
        }
        self.length = length;
    }

    /// Whether the node may serve at `now`.
    pub fn is_valid(&self, now: Instant) -> bool {
        self.acked_send_time
            .is_some_and(|t| now.saturating_duration_since(t) < self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_runs_from_the_acknowledged_send_time() {
        let t0 = Instant::now();
        let mut lease = Lease::default();
        assert!(!lease.is_valid(t0), "no acknowledged beacon, no lease");
        lease.renew(t0, Duration::from_millis(100));
        assert!(lease.is_valid(t0 + Duration::from_millis(99)));
        assert!(!lease.is_valid(t0 + Duration::from_millis(100)));
        // A late acknowledgement of an older beacon does not extend the lease.
        lease.renew(t0 + Duration::from_millis(50), Duration::from_millis(100));
        lease.renew(t0 + Duration::from_millis(10), Duration::from_millis(100));
        assert!(lease.is_valid(t0 + Duration::from_millis(149)));
        assert!(!lease.is_valid(t0 + Duration::from_millis(150)));
    }
}
