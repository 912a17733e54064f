//! Request counters a replica server keeps per table and kind of request — a count and
//! a latency histogram each, cumulative since the process started — and the arithmetic
//! `server_stat` and `app_stat` do on two samples of them: rates over the interval and
//! the 99th-percentile latency of the requests in it.
//!
//! The histogram has four buckets per power of two of microseconds (a bucket's upper
//! bound is at most 19% above any latency in it); a percentile is reported as its
//! bucket's upper bound, so it never understates.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The kinds of request counted, by the names Pegasus's columns use.
pub const OPS: [&str; 9] = [
    "get",
    "multi_get",
    "put",
    "multi_put",
    "remove",
    "multi_remove",
    "incr",
    "check_and_set",
    "scan",
];

/// Buckets: 4 exact ones below 4 µs, then 4 per power of two up to 2^42 µs.
const BUCKETS: usize = 4 + 41 * 4;

fn bucket(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros() as usize;
    let sub = ((us >> (exp - 2)) & 3) as usize;
    (4 + (exp - 2) * 4 + sub).min(BUCKETS - 1)
}

/// The smallest latency (µs) of bucket `i`.
fn bucket_floor(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let exp = (i - 4) / 4 + 2;
    let sub = ((i - 4) % 4) as u64;
    (4 + sub) << (exp - 2)
}

/// One kind of request's count and latencies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Requests answered.
    pub count: u64,
    /// Sparse histogram: (bucket, requests in it), by bucket.
    pub buckets: Vec<(u16, u64)>,
}

impl Counter {
    fn record(&mut self, latency: Duration) {
        self.count += 1;
        let b = bucket(latency.as_micros().min(u128::from(u64::MAX)) as u64) as u16;
        match self.buckets.binary_search_by_key(&b, |(i, _)| *i) {
            Ok(at) => self.buckets[at].1 += 1,
            Err(at) => self.buckets.insert(at, (b, 1)),
        }
    }

    /// What was counted after `earlier` (an older sample of the same counter).
    pub fn since(&self, earlier: &Counter) -> Counter {
        let before: BTreeMap<u16, u64> = earlier.buckets.iter().copied().collect();
        let buckets = self
            .buckets
            .iter()
            .map(|(i, n)| (*i, n.saturating_sub(before.get(i).copied().unwrap_or(0))))
            .filter(|(_, n)| *n > 0)
            .collect();
        Counter {
            count: self.count.saturating_sub(earlier.count),
            buckets,
        }
    }

    /// Adds `other`'s requests to these.
    pub fn merge(&mut self, other: &Counter) {
        let mut all: BTreeMap<u16, u64> = self.buckets.iter().copied().collect();
        for (i, n) in &other.buckets {
            *all.entry(*i).or_default() += n;
        }
        self.count += other.count;
        self.buckets = all.into_iter().collect();
    }

    /// The latency at or under which 99% of the requests were answered (the upper
    /// bound of its bucket); `None` without requests.
    pub fn p99(&self) -> Option<Duration> {
        let total: u64 = self.buckets.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return None;
        }
        let rank = total.saturating_mul(99).div_ceil(100);
        let mut seen = 0;
        for (i, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(bucket_floor(usize::from(*i) + 1)));
            }
        }
        None
    }
}

/// Every counter of one process: table id → request kind → counter.
pub type Counters = BTreeMap<u32, BTreeMap<String, Counter>>;

/// A replica server's counters, updated as requests are answered.
#[derive(Debug, Default)]
pub struct Stats {
    counters: Mutex<Counters>,
}

impl Stats {
    /// Counts one request of kind `op` on table `app_id`, answered after `latency`.
    pub fn record(&self, app_id: u32, op: &'static str, latency: Duration) {
        let mut c = self.counters.lock().expect("stats lock");
        c.entry(app_id)
            .or_default()
            .entry(op.to_string())
            .or_default()
            .record(latency);
    }

    /// A copy of every counter.
    pub fn sample(&self) -> Counters {
        self.counters.lock().expect("stats lock").clone()
    }
}

/// What two samples `interval` apart say about one table (or one node): requests per
/// second and the p99 latency, by request kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// Requests per second, by kind (every kind of [`OPS`]).
    pub qps: BTreeMap<&'static str, f64>,
    /// p99 latency, by kind (kinds without requests are absent).
    pub p99: BTreeMap<&'static str, Duration>,
}

/// The rates of the requests counted in `delta` (merged counters of an interval).
pub fn rates(delta: &BTreeMap<String, Counter>, interval: Duration) -> Rates {
    let secs = interval.as_secs_f64().max(1e-3);
    let mut out = Rates::default();
    for op in OPS {
        let c = delta.get(op).cloned().unwrap_or_default();
        out.qps.insert(op, c.count as f64 / secs);
        if let Some(p) = c.p99() {
            out.p99.insert(op, p);
        }
    }
    out
}

/// The counters of `later` minus those of `earlier`, merged over the tables `keep`
/// selects.
pub fn delta(
    earlier: &Counters,
    later: &Counters,
    keep: impl Fn(u32) -> bool,
) -> BTreeMap<String, Counter> {
    let mut out: BTreeMap<String, Counter> = BTreeMap::new();
    for (app, ops) in later.iter().filter(|(a, _)| keep(**a)) {
        for (op, c) in ops {
            let before = earlier
                .get(app)
                .and_then(|o| o.get(op))
                .cloned()
                .unwrap_or_default();
            out.entry(op.clone()).or_default().merge(&c.since(&before));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_latency_and_bound_it_within_a_fifth() {
        for us in [0u64, 1, 3, 4, 5, 7, 8, 100, 999, 1_000, 12_345, 1 << 30] {
            let b = bucket(us);
            assert!(bucket_floor(b) <= us, "{us} floor");
            assert!(bucket_floor(b + 1) > us, "{us} ceiling");
            if us >= 4 {
                assert!(bucket_floor(b + 1) as f64 <= us as f64 * 1.25 + 1.0, "{us}");
            }
        }
    }

    #[test]
    fn p99_and_rates_come_from_the_interval_only() {
        let stats = Stats::default();
        for _ in 0..1000 {
            stats.record(1, "get", Duration::from_millis(100));
        }
        let first = stats.sample();
        for i in 0..100 {
            let ms = if i == 0 { 50 } else { 1 };
            stats.record(1, "get", Duration::from_millis(ms));
            stats.record(2, "put", Duration::from_millis(2));
        }
        let later = stats.sample();
        let d = delta(&first, &later, |a| a == 1);
        assert_eq!(d["get"].count, 100);
        assert!(!d.contains_key("put"), "table 2 left out");
        let r = rates(&d, Duration::from_secs(2));
        assert_eq!(r.qps["get"], 50.0);
        assert_eq!(r.qps["put"], 0.0);
        let p99 = r.p99["get"];
        assert!(
            p99 >= Duration::from_millis(1) && p99 < Duration::from_micros(1300),
            "{p99:?}"
        );
        let all = delta(&first, &later, |_| true);
        assert_eq!(
            all["put"].p99().map(|p| p >= Duration::from_millis(2)),
            Some(true)
        );
        assert_eq!(Counter::default().p99(), None);
    }
}
