//! The prepare log's disk rules: replay, torn tails, corruption, failed writes,
//! compaction, reset, and spare segments made ahead of need.

use std::fs::OpenOptions;
use std::sync::Arc;

use super::format::{FRAME_HEADER, HEADER, PREALLOCATE_AHEAD};
use super::*;
use crate::pb;

fn entry(ballot: i64, decree: u64, tag: &str) -> LogRecord {
    LogRecord::Entry(Arc::new(pb::LogEntry {
        ballot,
        decree,
        mutations: vec![pb::Mutation {
            hash_key: tag.as_bytes().to_vec(),
            ..Default::default()
        }],
        requests: vec![],
    }))
}

fn hard(ballot: i64) -> LogRecord {
    LogRecord::Hard(HardState {
        ballot,
        primary: Some("p:1".into()),
    })
}

fn tags(r: &Replayed) -> Vec<(i64, u64)> {
    r.entries.iter().map(|e| (e.ballot, e.decree)).collect()
}

fn segment(dir: &Path, i: usize) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files[i].clone()
}

#[test]
fn the_promise_and_entries_survive_reopen_and_a_rewritten_entry_replaces_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert!(replayed.entries.is_empty());
    log.append(&[
        hard(1),
        entry(1, 1, "a"),
        entry(1, 2, "b"),
        entry(1, 3, "c"),
    ])
    .unwrap();
    log.append(&[hard(2), entry(2, 2, "B")]).unwrap();
    drop(log);
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(replayed.hard.ballot, 2);
    assert_eq!(tags(&replayed), [(1, 1), (2, 2)]);
    assert_eq!(replayed.entries[1].mutations[0].hash_key, b"B");
}

#[test]
fn a_torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PrepareLog::open(dir.path()).unwrap();
    log.append(&[entry(1, 1, "a"), entry(1, 2, "b")]).unwrap();
    let end = log.len;
    drop(log);
    let path = segment(dir.path(), 0);
    // The segment is preallocated: zeros after the data.
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        HEADER + PREALLOCATE_AHEAD
    );
    // A crash mid-append: the last frame's last bytes never reached the disk.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0; 3], end - 3).unwrap();
    let (mut log, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(tags(&replayed), [(1, 1)]);
    log.append(&[entry(1, 2, "b2")]).unwrap();
    let end = log.len;
    drop(log);
    // Without preallocation, a crash that extended the file with zeros (no data
    // written) is the segment's end too.
    file.set_len(end).unwrap();
    file.set_len(end + 4096).unwrap();
    let (mut log, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(tags(&replayed), [(1, 1), (1, 2)]);
    assert_eq!(replayed.entries[1].mutations[0].hash_key, b"b2");
    assert_eq!(log.len, end, "appends go on where the data ends");
    log.append(&[entry(1, 3, "c")]).unwrap();
    drop(log);
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(tags(&replayed), [(1, 1), (1, 2), (1, 3)]);
}

#[test]
fn corruption_before_the_end_is_an_error_never_a_silent_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PrepareLog::open(dir.path()).unwrap();
    log.append(&[
        entry(1, 1, "aaaa"),
        entry(1, 2, "bbbb"),
        entry(1, 3, "cccc"),
    ])
    .unwrap();
    drop(log);
    let path = segment(dir.path(), 0);
    let mut raw = std::fs::read(&path).unwrap();
    raw[HEADER as usize + FRAME_HEADER + 2] ^= 0xFF;
    std::fs::write(&path, &raw).unwrap();
    let err = PrepareLog::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("corrupt frame") && err.contains(".seg"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), raw, "nothing was changed");
}

#[test]
fn a_failed_write_leaves_no_partial_frame_in_front_of_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PrepareLog::open(dir.path()).unwrap();
    log.append(&[entry(1, 1, "a")]).unwrap();
    let cut = log.len;
    log.fail_next_write_after(7);
    assert!(log.append(&[entry(1, 2, "lost")]).is_err());
    log.append(&[entry(1, 2, "kept"), entry(1, 3, "after")])
        .unwrap();
    let path = segment(dir.path(), 0);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        cut + PREALLOCATE_AHEAD,
        "preallocated again after the cut"
    );
    assert_eq!(log.bytes(), cut + PREALLOCATE_AHEAD);
    drop(log);
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(tags(&replayed), [(1, 1), (1, 2), (1, 3)]);
    assert_eq!(replayed.entries[1].mutations[0].hash_key, b"kept");
}

#[test]
fn compaction_deletes_only_closed_segments_below_the_decree_and_keeps_the_promise() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PrepareLog::open(dir.path()).unwrap();
    log.set_segment_bytes(200);
    log.append(&[hard(3)]).unwrap();
    for d in 1..=30 {
        log.append(&[entry(3, d, "xxxxxxxxxxxxxxxx")]).unwrap();
    }
    let before = log.segments();
    assert!(before > 3, "{before} segments");
    log.compact(20).unwrap();
    assert!(log.segments() < before);
    drop(log);
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(
        replayed.hard.ballot, 3,
        "each segment opens with the promise"
    );
    let first = replayed.entries.first().unwrap().decree;
    assert!(first > 1 && first <= 20, "{first}");
    assert_eq!(replayed.entries.last().unwrap().decree, 30);
}

#[test]
fn compaction_never_deletes_an_entry_that_replaced_stale_ones_kept_in_an_older_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PrepareLog::open(dir.path()).unwrap();
    log.set_segment_bytes(200);
    let big = "s".repeat(300);
    // Ballot 1 logged decrees 1-5 (3-5 never committed); ballot 2's primary replaced
    // them from decree 3 on. Each append lands in a segment of its own.
    let first: Vec<LogRecord> = std::iter::once(hard(1))
        .chain((1..=5).map(|d| entry(1, d, &big)))
        .collect();
    log.append(&first).unwrap();
    log.append(&[hard(2), entry(2, 3, &big)]).unwrap();
    log.append(&[hard(2)]).unwrap();
    assert_eq!(log.segments(), 3);
    // The store holds decree 3: the log may drop what is below 4 — but not the entry
    // at 3 that replaced ballot 1's 4 and 5, which an older segment still holds.
    log.compact(4).unwrap();
    drop(log);
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(tags(&replayed), [(1, 1), (1, 2), (2, 3)]);
}

#[test]
fn reset_empties_the_log_but_keeps_the_promise() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PrepareLog::open(dir.path()).unwrap();
    log.append(&[hard(4), entry(4, 1, "a")]).unwrap();
    log.reset().unwrap();
    log.append(&[entry(4, 9, "z")]).unwrap();
    drop(log);
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(replayed.hard.ballot, 4);
    assert_eq!(tags(&replayed), [(4, 9)]);
}

#[test]
fn a_segment_of_another_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    drop(PrepareLog::open(dir.path()).unwrap());
    let path = segment(dir.path(), 0);
    let mut raw = std::fs::read(&path).unwrap();
    raw[8] = 7;
    std::fs::write(&path, &raw).unwrap();
    let err = PrepareLog::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("format 7") && err.contains(".seg"), "{err}");
}

fn seg_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// A log with small segments, past half of its first one, its spare made.
fn log_with_spare(dir: &Path) -> PrepareLog {
    let (mut log, _) = PrepareLog::open(dir).unwrap();
    log.set_segment_bytes(400);
    log.append(&[hard(6)]).unwrap();
    let mut d = 1;
    while seg_files(dir).len() < 2 {
        log.append(&[entry(6, d, "xxxxxxxxxxxxxxxx")]).unwrap();
        log.settle();
        d += 1;
    }
    assert_eq!(
        log.segments(),
        1,
        "the spare is not a segment of the log yet"
    );
    log
}

#[test]
fn a_roll_onto_a_spare_writes_the_promise_first_so_compaction_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_spare(dir.path());
    let spare = seg_files(dir.path())[1].clone();
    let mut d = 100;
    while log.segments() < 2 {
        log.append(&[entry(6, d, "yyyyyyyyyyyyyyyy")]).unwrap();
        d += 1;
    }
    assert_eq!(seg_files(dir.path())[1], spare, "the roll used the spare");
    // Everything before the spare goes: the promise must live on in it.
    log.compact(d - 1).unwrap();
    log.settle();
    drop(log);
    assert_eq!(
        seg_files(dir.path()).first(),
        Some(&spare),
        "compacted segments deleted"
    );
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(replayed.hard.ballot, 6, "the spare opens with the promise");
    assert_eq!(replayed.entries.last().unwrap().decree, d - 1);
}

#[test]
fn an_unused_spare_is_removed_on_open_and_a_torn_tail_before_it_is_still_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_spare(dir.path());
    let last = log.segments.last().unwrap().max_decree;
    let end = log.len;
    drop(log);
    // A crash mid-append to the active segment, its spare already made.
    let active = seg_files(dir.path())[0].clone();
    let file = OpenOptions::new().write(true).open(&active).unwrap();
    file.write_all_at(&[9, 0, 0, 0, 1, 2], end).unwrap();
    let (mut log, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(replayed.entries.last().unwrap().decree, last);
    assert_eq!(
        seg_files(dir.path()),
        std::slice::from_ref(&active),
        "the unused spare is gone"
    );
    log.append(&[entry(6, last + 1, "z")]).unwrap();
    drop(log);
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(replayed.entries.last().unwrap().decree, last + 1);
    assert_eq!(replayed.hard.ballot, 6);
}

#[test]
fn a_reset_waits_for_the_spare_and_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_spare(dir.path());
    log.reset().unwrap();
    log.append(&[entry(6, 50, "after")]).unwrap();
    assert_eq!(
        seg_files(dir.path()).len(),
        1,
        "{:?}",
        seg_files(dir.path())
    );
    drop(log);
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(tags(&replayed), [(6, 50)]);
    assert_eq!(replayed.hard.ballot, 6);
}

#[test]
fn a_segment_closed_before_its_preallocated_end_replays_past_its_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_spare(dir.path());
    let mut d = 100;
    while log.segments() < 2 {
        log.append(&[entry(6, d, "yyyyyyyyyyyyyyyy")]).unwrap();
        d += 1;
    }
    let on_disk: u64 = log
        .segments
        .iter()
        .map(|s| std::fs::metadata(&s.path).unwrap().len())
        .sum();
    assert_eq!(log.bytes(), on_disk, "the log counts what its files take");
    drop(log);
    let first = std::fs::read(&seg_files(dir.path())[0]).unwrap();
    assert!(first.len() as u64 >= PREALLOCATE_AHEAD, "preallocated");
    assert!(first[first.len() - 4096..].iter().all(|b| *b == 0));
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(replayed.entries.first().unwrap().decree, 1);
    assert_eq!(replayed.entries.last().unwrap().decree, d - 1);
}

#[test]
fn a_compaction_that_switches_to_the_spare_and_deletes_the_rest_keeps_the_promise() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_spare(dir.path());
    let last = log.segments.last().unwrap().max_decree;
    // Everything is in the store: the half-full segment is closed onto the spare and
    // goes at once, before any append writes the promise into the spare.
    log.compact(last + 1).unwrap();
    log.settle();
    drop(log);
    assert_eq!(
        seg_files(dir.path()).len(),
        1,
        "{:?}",
        seg_files(dir.path())
    );
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(
        replayed.hard.ballot, 6,
        "a crash here must not forget the promise"
    );
    assert!(replayed.entries.is_empty());
}

#[test]
fn a_segment_is_preallocated_ahead_of_its_data_a_step_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PrepareLog::open(dir.path()).unwrap();
    let path = segment(dir.path(), 0);
    let mut sizes = std::collections::BTreeSet::new();
    for d in 1..=1000 {
        log.append(&[entry(1, d, &"v".repeat(200))]).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(
            size > log.len && size <= log.len + PREALLOCATE_AHEAD,
            "{size} for {} bytes of data",
            log.len
        );
        assert_eq!(log.bytes(), size, "the log counts its file");
        sizes.insert(size);
    }
    assert!(log.len > 3 * PREALLOCATE_AHEAD && log.len < SEGMENT_BYTES);
    assert!(sizes.len() >= 4, "grown in steps: {sizes:?}");
    drop(log);
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(replayed.entries.len(), 1000);
}

#[test]
fn compacting_past_every_entry_replaces_the_active_segment_with_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PrepareLog::open(dir.path()).unwrap();
    log.append(&[hard(8)]).unwrap();
    log.append(&[entry(8, 1, "q")]).unwrap();
    let first = seg_files(dir.path());
    log.compact(2).unwrap();
    log.settle();
    assert_eq!(
        seg_files(dir.path()),
        first,
        "a few bytes of log are not worth a new file"
    );
    let big = "q".repeat(1000);
    for d in 2..=80 {
        log.append(&[entry(8, d, &big)]).unwrap();
    }
    let old = seg_files(dir.path());
    log.compact(80).unwrap();
    assert_eq!(log.segments(), 1, "entry 80 is not below 80: kept");
    log.compact(81).unwrap();
    log.settle();
    let now = seg_files(dir.path());
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, old, "a new segment took over");
    let on_disk = std::fs::metadata(&now[0]).unwrap().len();
    assert_eq!(log.bytes(), on_disk);
    assert!(on_disk <= HEADER + 256 + PREALLOCATE_AHEAD, "{on_disk}");
    drop(log);
    let (mut log, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(
        replayed.hard.ballot, 8,
        "the promise moved to the new segment"
    );
    assert!(replayed.entries.is_empty());
    log.append(&[entry(8, 81, "r")]).unwrap();
    drop(log);
    let (_, replayed) = PrepareLog::open(dir.path()).unwrap();
    assert_eq!(tags(&replayed), [(8, 81)]);
}
