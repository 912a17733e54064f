//! `move-pri`: the longest window in which writes to a partition fail or stall while
//! its primary is moved (`balance -p move_pri`).
//!
//! Writers keep writing keys of one partition (each waits for its answer, the data
//! client retrying within its timeout). After a baseline phase without moves, the
//! primary role is moved to a secondary `--moves` times, letting writes settle between
//! moves. A move's stall is the longest gap between two successful writes from the
//! last one before the proposal to the first one [`AFTER`] past the moment the meta
//! server's configuration names the new primary — a write that fails, or waits on a
//! primary that stepped down, widens it. The longest gap over the whole settle period
//! is printed beside it (`settle_gap_ms`: it also catches disk hiccups the move did
//! not cause). The baseline is the longest gap in the phase without moves, in the same
//! run, and, for a like-for-like view, the median over that phase of the longest gap
//! in windows as long as a move's. Every acknowledged write is read back at the end; a
//! missing or wrong one fails the run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ballast::client::{DataClient, MetaClient};
use ballast::data::partition_index;
use ballast::pb;

use crate::ops;

pub(crate) const TABLE: &str = "move";
pub(crate) const PARTITIONS: u32 = 8;
/// The partition whose primary moves.
pub(crate) const PIDX: u32 = 0;
/// A move's window ends this long after the configuration names the new primary.
const AFTER: Duration = Duration::from_millis(250);

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct MovePriArgs {
    /// How many times the primary moves.
    #[arg(long, default_value_t = 5)]
    moves: u32,
    /// Concurrent writers to the moved partition.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Writing without moves first, for the baseline.
    #[arg(long, default_value = "5s", value_parser = ops::parse_duration)]
    baseline: Duration,
    /// Writing after each move before the next one.
    #[arg(long, default_value = "2s", value_parser = ops::parse_duration)]
    settle: Duration,
}

/// What the writers saw.
#[derive(Default)]
pub(crate) struct Seen {
    /// When each successful write was answered.
    pub(crate) done: Mutex<Vec<Instant>>,
    /// Acknowledged keys, per writer.
    pub(crate) acked: Mutex<Vec<Vec<u64>>>,
    pub(crate) failed: AtomicU64,
}

fn key(writer: usize, i: u64) -> String {
    format!("mv_{writer}_{i}")
}

/// The first index at or after `i` whose key of `writer` falls in [`PIDX`].
fn next_key(writer: usize, mut i: u64) -> u64 {
    while partition_index(key(writer, i).as_bytes(), b"", PARTITIONS) != PIDX {
        i += 1;
    }
    i
}

pub(crate) async fn writer(
    data: Arc<DataClient>,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    w: usize,
) {
    let mut i = 0;
    let mut acked = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        i = next_key(w, i);
        let k = key(w, i);
        let value = k.clone().into_bytes();
        match data
            .set(TABLE, k.as_bytes(), &[(b"v".to_vec(), value)], 0)
            .await
        {
            Ok(_) => {
                seen.done.lock().expect("lock").push(Instant::now());
                acked.push(i);
            }
            Err(_) => {
                seen.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        i += 1;
    }
    seen.acked.lock().expect("lock")[w] = acked;
}

/// The longest gap between successful writes covering `[from, to]`: from the last one
/// at or before `from` to the first one at or after `to`.
pub(crate) fn longest_gap(done: &[Instant], from: Instant, to: Instant) -> Duration {
    longest_gap_at(done, from, to).0
}

/// [`longest_gap`], with the instant the gap starts at.
pub(crate) fn longest_gap_at(done: &[Instant], from: Instant, to: Instant) -> (Duration, Instant) {
    let start = done.partition_point(|t| *t <= from);
    let end = done.partition_point(|t| *t < to);
    let first = if start > 0 { done[start - 1] } else { from };
    let last = done.get(end).copied().unwrap_or(to);
    let mut points = vec![first];
    points.extend_from_slice(&done[start..end]);
    points.push(last);
    points
        .windows(2)
        .map(|w| (w[1].saturating_duration_since(w[0]), w[0]))
        .max_by_key(|(gap, _)| *gap)
        .unwrap_or((Duration::ZERO, from))
}

/// The median, over consecutive windows of `width` in `[from, to]`, of each window's
/// longest gap.
pub(crate) fn typical_gap(
    done: &[Instant],
    from: Instant,
    to: Instant,
    width: Duration,
) -> Duration {
    let mut gaps = Vec::new();
    let mut start = from;
    while start + width <= to {
        gaps.push(longest_gap(done, start, start + width));
        start += width;
    }
    gaps.sort();
    gaps.get(gaps.len() / 2).copied().unwrap_or_default()
}

/// Moves the primary to a secondary; returns (to, time until the configuration says so).
pub(crate) async fn move_once(
    meta: &MetaClient,
    round: usize,
) -> Result<(String, String, Duration)> {
    let (app_id, part) = ops::partition(meta, TABLE, PIDX).await?;
    if part.secondaries.is_empty() {
        bail!("partition {PIDX} has no secondary");
    }
    let to = part.secondaries[round % part.secondaries.len()].clone();
    let from = part.primary.clone();
    let proposed = Instant::now();
    meta.propose(pb::ProposeRequest {
        gpid: Some(pb::Gpid { app_id, pidx: PIDX }),
        kind: "move_pri".into(),
        from: from.clone(),
        to: to.clone(),
        force: false,
    })
    .await?;
    let deadline = proposed + Duration::from_secs(30);
    loop {
        let (_, p) = ops::partition(meta, TABLE, PIDX).await?;
        if p.primary == to {
            return Ok((from, to, proposed.elapsed()));
        }
        if Instant::now() > deadline {
            bail!("the primary did not move to {to} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads back every acknowledged key; returns how many are missing or wrong.
pub(crate) async fn verify(data: &DataClient, acked: &[Vec<u64>]) -> Result<(u64, u64)> {
    let (mut checked, mut bad) = (0, 0);
    for (w, ids) in acked.iter().enumerate() {
        for &i in ids {
            let k = key(w, i);
            let got = data.get(TABLE, k.as_bytes(), &[b"v".to_vec()]).await?;
            checked += 1;
            if got.first().map(|r| r.value.as_slice()) != Some(k.as_bytes()) {
                bad += 1;
            }
        }
    }
    Ok((checked, bad))
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the benchmark; returns whether every acknowledged write survived.
pub async fn run(args: MovePriArgs) -> Result<bool> {
    if args.moves == 0 || args.clients == 0 {
        bail!("--moves and --clients must be at least 1");
    }
    let dir = tempfile::Builder::new().prefix("move-pri").tempdir()?;
    let (cluster, meta) = ops::cluster_with_table(dir.path(), &[], 3, TABLE, PARTITIONS, 3).await?;
    let data = Arc::new(DataClient::new(meta.clone(), Duration::from_secs(10)));
    let seen = Arc::new(Seen::default());
    *seen.acked.lock().expect("lock") = vec![Vec::new(); args.clients];
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..args.clients)
        .map(|w| tokio::spawn(writer(data.clone(), seen.clone(), stop.clone(), w)))
        .collect();

    // Warm up (routes cached, connections open), then the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base_from = Instant::now();
    tokio::time::sleep(args.baseline).await;
    let base_to = Instant::now();
    let mut moves = Vec::new();
    for round in 0..args.moves as usize {
        let from_t = Instant::now();
        let (from, to, took) = move_once(&meta, round).await?;
        tokio::time::sleep(args.settle).await;
        moves.push((from, to, took, from_t, Instant::now()));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await?;
    }
    let mut done = seen.done.lock().expect("lock").clone();
    done.sort();
    let acked = seen.acked.lock().expect("lock").clone();
    let (checked, bad) = verify(&data, &acked).await?;
    drop(cluster);

    let baseline = longest_gap(&done, base_from, base_to);
    let base_writes = done
        .iter()
        .filter(|t| (base_from..base_to).contains(t))
        .count();
    println!(
        "move-pri: partition {PIDX} of {PARTITIONS}, {} writers, {} moves",
        args.clients, args.moves
    );
    println!(
        "move  from -> to                                  config_ms  stall_ms  x baseline  stall_at_ms  settle_gap_ms"
    );
    let mut stalls = Vec::new();
    for (n, (from, to, took, a, b)) in moves.iter().enumerate() {
        let (stall, at) = longest_gap_at(&done, *a, (*a + *took + AFTER).min(*b));
        let settle_gap = longest_gap(&done, *a, *b);
        stalls.push(stall);
        // Where the longest gap starts, from the proposal (negative: before it).
        let at_ms = if at >= *a { ms(at - *a) } else { -ms(*a - at) };
        println!(
            "{:>4}  {:<44} {:>9.0} {:>9.0} {:>11.1} {:>12.0} {:>14.0}",
            n + 1,
            format!("{from} -> {to}"),
            ms(*took),
            ms(stall),
            ms(stall) / ms(baseline).max(0.001),
            at_ms,
            ms(settle_gap)
        );
    }
    stalls.sort();
    let worst = *stalls.last().expect("a move");
    let width = moves
        .iter()
        .map(|(_, _, took, _, _)| *took + AFTER)
        .max()
        .unwrap_or(AFTER);
    let typical = typical_gap(&done, base_from, base_to, width);
    println!(
        "baseline: longest gap {:.0} ms over {:?} without a move ({:.0} writes/s); in {:.0} ms windows, median {:.0} ms",
        ms(baseline),
        args.baseline,
        base_writes as f64 / args.baseline.as_secs_f64(),
        ms(width),
        ms(typical)
    );
    let passed = bad == 0;
    println!(
        "move-pri {}: worst stall {:.0} ms (median {:.0} ms, {:.1}x the baseline gap), writes acknowledged {}, failed {}, read back {checked}, lost = {bad}",
        if passed { "passed" } else { "FAILED" },
        ms(worst),
        ms(stalls[stalls.len() / 2]),
        ms(worst) / ms(baseline).max(0.001),
        done.len(),
        seen.failed.load(Ordering::Relaxed),
    );
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_spans_the_window_edges() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let done = vec![at(0), at(10), at(20), at(300), at(310), at(900)];
        // The window starts inside the 20..300 gap: the whole gap counts.
        assert_eq!(
            longest_gap(&done, at(100), at(310)),
            Duration::from_millis(280)
        );
        // A stall running past the window's end counts up to the next write.
        assert_eq!(
            longest_gap(&done, at(0), at(500)),
            Duration::from_millis(590)
        );
        assert_eq!(longest_gap(&done, at(0), at(20)), Duration::from_millis(10));
        assert_eq!(longest_gap_at(&done, at(100), at(310)).1, at(20));
    }

    #[test]
    fn the_typical_gap_is_the_median_of_each_windows_longest() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let done = vec![at(0), at(10), at(20), at(300), at(310), at(900)];
        let width = Duration::from_millis(200);
        // Windows 0-200 (280), 200-400 (590), 400-600 (590).
        assert_eq!(
            typical_gap(&done, at(0), at(600), width),
            Duration::from_millis(590)
        );
        assert_eq!(typical_gap(&done, at(0), at(100), width), Duration::ZERO);
    }

    #[test]
    fn keys_fall_in_the_moved_partition() {
        let i = next_key(3, 0);
        assert_eq!(partition_index(key(3, i).as_bytes(), b"", PARTITIONS), PIDX);
        assert_eq!(next_key(3, i), i);
        let j = next_key(3, i + 1);
        assert!(j > i);
        assert_eq!(partition_index(key(3, j).as_bytes(), b"", PARTITIONS), PIDX);
    }
}
