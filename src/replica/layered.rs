//! Reads through a store with a base file under it ([`super::base`]). The store
//! holds every write since the base was written; a key it lacks may still be in the base,
//! unless the `shadow` table says it was deleted since. A point read looks in that
//! order; a range read merges the store's records and the base's in key order, the
//! store's winning a tie and shadowed base records left out. With no base, both are the
//! store's own reads.

use std::sync::Arc;

use redb::{ReadOnlyTable, ReadableTable};

use crate::error::Result;
use crate::replica::base::{BaseCursor, BaseFile};
use crate::replica::storage::storage;

/// The store's records table, read-only.
type Records = ReadOnlyTable<&'static [u8], &'static [u8]>;
/// The keys deleted from the base since it was written.
pub type Shadow = ReadOnlyTable<&'static [u8], ()>;
/// What lies under a store as of one read transaction: its base file and the keys
/// deleted from it since it was written.
pub type Under = (Arc<BaseFile>, Shadow);

/// The value stored under `key`: the store's, else the base's unless shadowed.
pub fn point<R, S>(
    records: &R,
    under: Option<(&S, &BaseFile)>,
    key: &[u8],
) -> Result<Option<Vec<u8>>>
where
    R: ReadableTable<&'static [u8], &'static [u8]>,
    S: ReadableTable<&'static [u8], ()>,
{
    if let Some(v) = records.get(key).map_err(storage)? {
        return Ok(Some(v.value().to_vec()));
    }
    match under {
        Some((shadow, base)) if shadow.get(key).map_err(storage)?.is_none() => base.get(key),
        _ => Ok(None),
    }
}

/// The base's side of a merged range.
struct BaseSide<'a> {
    cursor: BaseCursor,
    shadow: &'a Shadow,
    end: Option<Vec<u8>>,
}

/// The records with keys in `[from, to)` of a store and its base, in key order.
pub struct Merged<'a> {
    records: redb::Range<'a, &'static [u8], &'static [u8]>,
    next: Option<(Vec<u8>, Vec<u8>)>,
    under: Option<BaseSide<'a>>,
}

/// Which side gives the next record.
enum Pick {
    Done,
    Store,
    /// The store's, replacing the base's record under the same key.
    Both,
    Base,
}

impl<'a> Merged<'a> {
    /// Records from `from` (inclusive) to `to` (exclusive; `None`: to the end).
    pub fn new(
        records: &'a Records,
        under: Option<&'a Under>,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Result<Merged<'a>> {
        let range = match to {
            Some(to) => records.range(from..to),
            None => records.range(from..),
        }
        .map_err(storage)?;
        let under = match under {
            Some((base, shadow)) => Some(BaseSide {
                cursor: BaseCursor::new(base.clone(), from)?,
                shadow,
                end: to.map(<[u8]>::to_vec),
            }),
            None => None,
        };
        let mut merged = Merged {
            records: range,
            next: None,
            under,
        };
        merged.pull()?;
        Ok(merged)
    }

    fn pull(&mut self) -> Result<()> {
        self.next = match self.records.next() {
            Some(entry) => {
                let (k, v) = entry.map_err(storage)?;
                Some((k.value().to_vec(), v.value().to_vec()))
            }
            None => None,
        };
        Ok(())
    }

    fn pick(&self) -> Pick {
        let base = self.under.as_ref().and_then(|u| {
            u.cursor
                .peek()
                .map(|(k, _)| k)
                .filter(|k| u.end.as_ref().is_none_or(|end| *k < end))
        });
        match (&self.next, base) {
            (None, None) => Pick::Done,
            (Some(_), None) => Pick::Store,
            (Some((k, _)), Some(b)) if k == b => Pick::Both,
            (Some((k, _)), Some(b)) if k < b => Pick::Store,
            _ => Pick::Base,
        }
    }

    fn step(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        loop {
            let under = match self.pick() {
                Pick::Done => return Ok(None),
                Pick::Store => None,
                Pick::Both => {
                    if let Some(u) = self.under.as_mut() {
                        u.cursor.take()?;
                    }
                    None
                }
                Pick::Base => self.under.as_mut(),
            };
            let Some(u) = under else {
                let out = self.next.take();
                self.pull()?;
                return Ok(out);
            };
            let Some((k, v)) = u.cursor.take()? else {
                continue;
            };
            if u.shadow.get(k.as_slice()).map_err(storage)?.is_none() {
                return Ok(Some((k, v)));
            }
        }
    }
}

impl Iterator for Merged<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}
