//! Pegasus's atomic writes, `incr` and `check_and_set`, as pure functions of the records
//! they read. Every replica evaluates them when it applies the entry that carries them,
//! at the time the primary stamped on the write, so every replica computes the same
//! records and the same outcome; the outcome is kept in the writer's session (so a
//! retried write is answered with it, not applied twice).

use crate::data::{expire_ts_for, expired};
use crate::pb;
use crate::pb::atomic::Op;
use crate::pb::atomic_result::Outcome;

/// A record as stored: (expiry in Unix seconds, value).
pub type Stored = (u32, Vec<u8>);

/// A record an atomic write sets: (sort key, expiry, value).
pub type Put = (Vec<u8>, u32, Vec<u8>);

/// Pegasus's check types (`cas_check_type`), by their shell names, in number order.
pub const CHECK_TYPES: [&str; 18] = [
    "anything",
    "not_exist",
    "not_exist_or_empty",
    "exist",
    "not_empty",
    "match_anywhere",
    "match_prefix",
    "match_postfix",
    "bytes_less",
    "bytes_less_or_equal",
    "bytes_equal",
    "bytes_greater_or_equal",
    "bytes_greater",
    "int_less",
    "int_less_or_equal",
    "int_equal",
    "int_greater_or_equal",
    "int_greater",
];

/// The number of a check type's shell name.
pub fn check_type(name: &str) -> Option<u32> {
    CHECK_TYPES
        .iter()
        .position(|n| *n == name)
        .map(|i| i as u32)
}

/// Whether a check type compares integers (its operand must be one).
pub fn is_int_check(check_type: u32) -> bool {
    (13..=17).contains(&check_type)
}

/// Parses an integer value as Pegasus does: decimal ASCII, optionally signed; empty is 0.
pub fn parse_int(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() {
        return Some(0);
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn failed(message: impl Into<String>) -> (Option<Put>, pb::AtomicResult) {
    let result = pb::AtomicResult {
        outcome: Some(Outcome::Error(message.into())),
    };
    (None, result)
}

/// Evaluates `atomic` on the record at `sort_key` (for `incr`; `check_and_set` names its
/// own keys). `read` gives a record as stored (expired ones included: they are judged
/// here, at the stamped time). Returns the record to set, if any, and the outcome.
pub fn evaluate(
    atomic: &pb::Atomic,
    sort_key: &[u8],
    mut read: impl FnMut(&[u8]) -> Option<Stored>,
) -> (Option<Put>, pb::AtomicResult) {
    let now_secs = atomic.now_ms / 1000;
    let live = |r: Option<Stored>| r.filter(|(ts, _)| !expired(*ts, now_secs));
    match &atomic.op {
        None => failed("the atomic write names no operation"),
        Some(Op::Incr(delta)) => {
            let (expire_ts, old) = match live(read(sort_key)) {
                Some((ts, value)) => match parse_int(&value) {
                    Some(v) => (ts, v),
                    None => return failed("the value is not an integer"),
                },
                None => (0, 0),
            };
            let Some(new) = old.checked_add(*delta) else {
                return failed(format!("{old} + {delta} overflows a 64-bit integer"));
            };
            let put = (sort_key.to_vec(), expire_ts, new.to_string().into_bytes());
            let result = pb::AtomicResult {
                outcome: Some(Outcome::IncrValue(new)),
            };
            (Some(put), result)
        }
        Some(Op::CheckAndSet(cas)) => {
            let found = live(read(&cas.check_sort_key)).map(|(_, v)| v);
            let passed = match check(cas.check_type, found.as_deref(), &cas.check_operand) {
                Ok(p) => p,
                Err(e) => return failed(e),
            };
            let mut out = pb::CheckAndSetResult {
                set_succeed: passed,
                ..Default::default()
            };
            if cas.return_check_value {
                out.check_value_returned = true;
                out.check_value_exist = found.is_some();
                out.check_value = found.unwrap_or_default();
            }
            let put = passed.then(|| {
                let ts = expire_ts_for(cas.set_ttl_seconds, atomic.now_ms);
                (cas.set_sort_key.clone(), ts, cas.set_value.clone())
            });
            let result = pb::AtomicResult {
                outcome: Some(Outcome::CheckAndSet(out)),
            };
            (put, result)
        }
    }
}

/// Pegasus's check: whether `value` (`None`: no live record) passes `check_type` with
/// `operand`. An integer comparison with a value or operand that is not an integer is
/// an error.
pub fn check(check_type: u32, value: Option<&[u8]>, operand: &[u8]) -> Result<bool, String> {
    let name = CHECK_TYPES
        .get(check_type as usize)
        .ok_or_else(|| format!("unknown check type {check_type}"))?;
    if check_type == 0 {
        return Ok(true);
    }
    let Some(v) = value else {
        return Ok(matches!(*name, "not_exist" | "not_exist_or_empty"));
    };
    Ok(match *name {
        "not_exist" => false,
        "not_exist_or_empty" => v.is_empty(),
        "exist" => true,
        "not_empty" => !v.is_empty(),
        "match_anywhere" => operand.is_empty() || v.windows(operand.len()).any(|w| w == operand),
        "match_prefix" => v.starts_with(operand),
        "match_postfix" => v.ends_with(operand),
        "bytes_less" => v < operand,
        "bytes_less_or_equal" => v <= operand,
        "bytes_equal" => v == operand,
        "bytes_greater_or_equal" => v >= operand,
        "bytes_greater" => v > operand,
        _ => {
            let a = parse_int(v).ok_or("the checked value is not an integer")?;
            let b = parse_int(operand).ok_or("the check operand is not an integer")?;
            match *name {
                "int_less" => a < b,
                "int_less_or_equal" => a <= b,
                "int_equal" => a == b,
                "int_greater_or_equal" => a >= b,
                _ => a > b,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn incr(delta: i64, now_ms: u64) -> pb::Atomic {
        pb::Atomic {
            op: Some(Op::Incr(delta)),
            now_ms,
            request: None,
        }
    }

    fn outcome(r: pb::AtomicResult) -> Outcome {
        r.outcome.expect("an outcome")
    }

    #[test]
    fn incr_counts_from_zero_keeps_the_expiry_and_refuses_non_integers() {
        let (put, r) = evaluate(&incr(5, 10_000), b"c", |_| None);
        assert_eq!(put, Some((b"c".to_vec(), 0, b"5".to_vec())));
        assert_eq!(outcome(r), Outcome::IncrValue(5));
        let (put, r) = evaluate(&incr(-7, 10_000), b"c", |_| Some((99, b"5".to_vec())));
        assert_eq!(
            put,
            Some((b"c".to_vec(), 99, b"-2".to_vec())),
            "expiry kept"
        );
        assert_eq!(outcome(r), Outcome::IncrValue(-2));
        let (put, r) = evaluate(&incr(1, 100_000), b"c", |_| Some((99, b"41".to_vec())));
        assert_eq!(
            put,
            Some((b"c".to_vec(), 0, b"1".to_vec())),
            "expired: from 0"
        );
        assert_eq!(outcome(r), Outcome::IncrValue(1));
        let (put, r) = evaluate(&incr(1, 0), b"c", |_| Some((0, b"abc".to_vec())));
        assert_eq!(put, None);
        assert!(matches!(outcome(r), Outcome::Error(e) if e.contains("not an integer")));
        let max = i64::MAX.to_string().into_bytes();
        let (put, r) = evaluate(&incr(1, 0), b"c", |_| Some((0, max.clone())));
        assert_eq!(put, None);
        assert!(matches!(outcome(r), Outcome::Error(e) if e.contains("overflows")));
    }

    #[test]
    fn check_types_follow_pegasus() {
        type Case<'a> = (&'a str, Option<&'a [u8]>, &'a [u8], bool);
        let cases: [Case; 14] = [
            ("anything", None, b"", true),
            ("not_exist", None, b"", true),
            ("not_exist", Some(b""), b"", false),
            ("not_exist_or_empty", Some(b""), b"", true),
            ("exist", Some(b""), b"", true),
            ("not_empty", Some(b""), b"", false),
            ("match_anywhere", Some(b"abcd"), b"bc", true),
            ("match_prefix", Some(b"abcd"), b"bc", false),
            ("match_postfix", Some(b"abcd"), b"cd", true),
            ("bytes_less", Some(b"abc"), b"abd", true),
            ("bytes_greater_or_equal", Some(b"abc"), b"abc", true),
            ("int_less", Some(b"9"), b"10", true),
            ("int_equal", Some(b"-3"), b"-3", true),
            ("int_greater", None, b"1", false),
        ];
        for (name, value, operand, want) in cases {
            let t = check_type(name).expect(name);
            assert_eq!(
                check(t, value, operand),
                Ok(want),
                "{name} {value:?} {operand:?}"
            );
        }
        assert!(check(13, Some(b"x"), b"1").is_err());
        assert!(check(13, Some(b"1"), b"y").is_err());
        assert!(check(18, None, b"").is_err());
        assert_eq!(CHECK_TYPES.len(), 18);
    }

    #[test]
    fn check_and_set_sets_another_key_and_returns_the_checked_value() {
        let mut records: HashMap<Vec<u8>, Stored> = HashMap::new();
        records.insert(b"lock".to_vec(), (0, b"free".to_vec()));
        let cas = pb::CheckAndSet {
            check_sort_key: b"lock".to_vec(),
            check_type: check_type("bytes_equal").unwrap(),
            check_operand: b"free".to_vec(),
            set_sort_key: b"owner".to_vec(),
            set_value: b"me".to_vec(),
            set_ttl_seconds: 10,
            return_check_value: true,
        };
        let atomic = pb::Atomic {
            op: Some(Op::CheckAndSet(cas)),
            now_ms: 1_500,
            request: None,
        };
        let (put, r) = evaluate(&atomic, b"", |k| records.get(k).cloned());
        assert_eq!(put, Some((b"owner".to_vec(), 12, b"me".to_vec())));
        let Outcome::CheckAndSet(out) = outcome(r) else {
            panic!("check_and_set outcome")
        };
        assert!(out.set_succeed && out.check_value_returned && out.check_value_exist);
        assert_eq!(out.check_value, b"free");
        records.insert(b"lock".to_vec(), (0, b"taken".to_vec()));
        let (put, r) = evaluate(&atomic, b"", |k| records.get(k).cloned());
        assert_eq!(put, None, "check failed: nothing set");
        assert!(matches!(outcome(r), Outcome::CheckAndSet(o) if !o.set_succeed));
    }
}
