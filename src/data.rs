//! Pegasus's data model: a record is (`hash_key`, `sort_key`) → value, with an optional
//! TTL. Records of one hash key live in one partition, chosen by a stable, documented
//! hash — CRC-64/XZ of the hash key (of the sort key when the hash key is empty) modulo
//! the partition count — never Rust's `DefaultHasher`, which may change between builds.
//!
//! Keys are stored as Pegasus stores them: a 2-byte big-endian hash-key length, the hash
//! key, then the sort key, so all records of a hash key are one contiguous, sorted range.
//! Values carry a 4-byte big-endian expiry (Unix seconds; 0 = never) before the bytes.

use crate::error::{Error, Result};

/// The longest hash key (its length must fit the 2-byte prefix).
pub const MAX_HASH_KEY_LEN: usize = u16::MAX as usize;

/// CRC-64/XZ: ECMA-182 polynomial, reflected, initial value and final XOR all ones.
/// Its check value (of `"123456789"`) is `0x995DC9BBDF1939FA`.
pub fn crc64(bytes: &[u8]) -> u64 {
    const POLY: u64 = 0xC96C_5795_D787_0F42; // 0x42F0E1EBA9EA3693 reflected
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u64; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut crc = i as u64;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
            *slot = crc;
        }
        table
    });
    let mut crc = u64::MAX;
    for b in bytes {
        crc = table[((crc ^ u64::from(*b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// The partition a record belongs to.
pub fn partition_index(hash_key: &[u8], sort_key: &[u8], partition_count: u32) -> u32 {
    let basis = if hash_key.is_empty() {
        sort_key
    } else {
        hash_key
    };
    (crc64(basis) % u64::from(partition_count.max(1))) as u32
}

/// Encodes a record key: length-prefixed hash key, then sort key.
pub fn encode_key(hash_key: &[u8], sort_key: &[u8]) -> Result<Vec<u8>> {
    if hash_key.len() > MAX_HASH_KEY_LEN {
        return Err(Error::InvalidInput(format!(
            "hash_key is {} bytes; at most {MAX_HASH_KEY_LEN}",
            hash_key.len()
        )));
    }
    let mut key = Vec::with_capacity(2 + hash_key.len() + sort_key.len());
    key.extend_from_slice(&(hash_key.len() as u16).to_be_bytes());
    key.extend_from_slice(hash_key);
    key.extend_from_slice(sort_key);
    Ok(key)
}

/// Splits an encoded key into (hash key, sort key).
pub fn decode_key(key: &[u8]) -> Result<(&[u8], &[u8])> {
    let bad = || Error::Storage("corrupt record key".into());
    let len = u16::from_be_bytes(
        key.get(..2)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    let hash_key = key.get(2..2 + len).ok_or_else(bad)?;
    Ok((hash_key, &key[2 + len..]))
}

/// The key range holding every record of `hash_key`: `[start, end)`, where `end` is
/// `None` when no key sorts after the prefix (it is all 0xff bytes).
pub fn hash_key_range(hash_key: &[u8]) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    let start = encode_key(hash_key, b"")?;
    // The smallest key after every key that starts with `start`: drop trailing 0xff
    // bytes and increment the last byte left.
    let mut end = start.clone();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Ok((start, Some(end)));
        }
    }
    Ok((start, None))
}

/// Encodes a value with its expiry (Unix seconds; 0 = never).
pub fn encode_value(expire_ts: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + value.len());
    out.extend_from_slice(&expire_ts.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Splits a stored value into (expiry, bytes).
pub fn decode_value(stored: &[u8]) -> Result<(u32, &[u8])> {
    let head: [u8; 4] = stored
        .get(..4)
        .ok_or_else(|| Error::Storage("corrupt record value".into()))?
        .try_into()
        .map_err(|_| Error::Storage("corrupt record value".into()))?;
    Ok((u32::from_be_bytes(head), &stored[4..]))
}

/// The expiry of a record written at `now_ms` (Unix ms) with a TTL of `ttl` seconds (0 =
/// never): rounded up to the next whole second, so it is readable for at least `ttl`
/// seconds (it expires once the whole-second clock reaches the expiry).
pub fn expire_ts_for(ttl: u32, now_ms: u64) -> u32 {
    if ttl == 0 {
        0
    } else {
        now_ms.div_ceil(1000) as u32 + ttl
    }
}

/// Whether a record with expiry `expire_ts` has expired at `now_secs`.
pub fn expired(expire_ts: u32, now_secs: u64) -> bool {
    expire_ts != 0 && u64::from(expire_ts) <= now_secs
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_record_with_ttl_n_is_readable_for_at_least_n_seconds() {
        for written in [10_000u64, 10_001, 10_500, 10_999] {
            for ttl in [1u32, 2, 60] {
                let ts = expire_ts_for(ttl, written);
                let last_readable_ms = written + u64::from(ttl) * 1000 - 1;
                assert!(
                    !expired(ts, last_readable_ms / 1000),
                    "ttl {ttl} written at {written}"
                );
                assert!(expired(ts, (written + u64::from(ttl) * 1000 + 1000) / 1000));
            }
        }
        assert_eq!(expire_ts_for(0, 10_500), 0, "0 never expires");
    }

    use super::*;

    #[test]
    fn crc64_is_the_standard_xz_crc() {
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b""), 0);
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(
            partition_index(b"user_1", b"x", 8),
            partition_index(b"user_1", b"y", 8)
        );
        assert_eq!(partition_index(b"", b"sk", 8), (crc64(b"sk") % 8) as u32);
        let mut hits = [0u32; 8];
        for i in 0..8000 {
            hits[partition_index(format!("key{i}").as_bytes(), b"", 8) as usize] += 1;
        }
        assert!(hits.iter().all(|h| (800..1200).contains(h)), "{hits:?}");
    }

    #[test]
    fn keys_round_trip_and_group_by_hash_key() {
        let k = encode_key(b"hk", b"sk").unwrap();
        assert_eq!(decode_key(&k).unwrap(), (&b"hk"[..], &b"sk"[..]));
        let (start, end) = hash_key_range(b"hk").unwrap();
        let end = end.unwrap();
        assert!(start.as_slice() <= k.as_slice() && k.as_slice() < end.as_slice());
        let long = encode_key(b"hk", &[0xff; 200]).unwrap();
        assert!(
            long.as_slice() < end.as_slice(),
            "long 0xff sort keys stay inside"
        );
        let other = encode_key(b"hl", b"").unwrap();
        assert!(
            other.as_slice() >= end.as_slice(),
            "another hash key is outside the range"
        );
        let longer = encode_key(b"hkx", b"").unwrap();
        assert!(!(start.as_slice() <= longer.as_slice() && longer.as_slice() < end.as_slice()));
        assert!(encode_key(&vec![0; MAX_HASH_KEY_LEN + 1], b"").is_err());
        assert!(decode_key(&[0]).is_err());
    }

    #[test]
    fn values_carry_their_expiry() {
        let v = encode_value(100, b"\x00bin");
        assert_eq!(decode_value(&v).unwrap(), (100, &b"\x00bin"[..]));
        assert!(expired(100, 100) && !expired(100, 99) && !expired(0, u64::MAX));
    }
}
