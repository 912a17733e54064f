//! A replica's records at rest: an immutable file of records in key order (`data.base`,
//! then `data.base.2`, … as folds replace it; [`super::base_files`]) under its store.
//! A quiet spell folds what the store holds into the next such file
//! ([`super::io::rewrite`]); a learner writes one straight from the primary's records
//! in key order, or copies the primary's byte for byte, at the disk's sequential rate,
//! instead of building redb's B-tree record by record (which bounds a load at ~240 MB/s
//! of CPU on this machine while the disk takes 1.5 GB/s). Reads look in the store first
//! and then here ([`super::layered`]).
//!
//! Layout: blocks of records (`u32` key length, `u32` value length, key, value), each
//! about [`BLOCK_BYTES`]; then an index with each block's first key, offset, length
//! and CRC-32; then a fixed footer (index offset and length, record count, the index's
//! CRC-32, the format, a magic number). The file is complete and synced before the
//! store refers to it, and never changes after.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::replica::base_files::Writeback;

/// The first generation's base file in a replica's directory, once sealed.
pub const BASE: &str = "data.base";
/// The base file while a learner is still writing it.
pub const BASE_TMP: &str = "data.base.tmp";
/// Blocks are cut once they hold this many bytes (a record is never split). A point
/// read reads and checks one block, so blocks are small; the index holds one key per
/// block in memory (about 3 MB for a 256 MB file of 1 KB records).
const BLOCK_BYTES: usize = 8 << 10;
/// The writer hands the kernel this much at a time.
const WRITE_BUFFER: usize = 1 << 20;
const MAGIC: u64 = u64::from_le_bytes(*b"BLSTBASE");
const VERSION: u32 = 1;
/// Index offset, index length, records, index CRC, version, magic.
const FOOTER: usize = 8 + 8 + 8 + 4 + 4 + 8;

fn corrupt(path: &Path, what: &str) -> Error {
    Error::Storage(format!("{} is corrupt: {what}", path.display()))
}

/// Where one block is and what it starts with.
#[derive(Debug, Clone)]
pub(super) struct BlockRef {
    first: Vec<u8>,
    pub(super) offset: u64,
    pub(super) len: u32,
    crc: u32,
}

/// Writes a base file from records given in strictly increasing key order.
pub struct BaseWriter {
    out: BufWriter<File>,
    block: Vec<u8>,
    first: Vec<u8>,
    last: Option<Vec<u8>>,
    index: Vec<BlockRef>,
    offset: u64,
    writeback: Writeback,
    records: u64,
}

impl BaseWriter {
    /// Starts a new file at `path` (replacing any there).
    pub fn create(path: &Path) -> Result<BaseWriter> {
        let file = File::create(path)?;
        Ok(BaseWriter {
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            block: Vec::with_capacity(BLOCK_BYTES + 4096),
            first: Vec::new(),
            last: None,
            index: Vec::new(),
            offset: 0,
            writeback: Writeback::default(),
            records: 0,
        })
    }

    /// Appends one record; its key must be greater than the one before.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.last.as_deref().is_some_and(|last| key <= last) {
            return Err(Error::Storage(
                "a snapshot's records arrived out of key order".into(),
            ));
        }
        let (Ok(klen), Ok(vlen)) = (u32::try_from(key.len()), u32::try_from(value.len())) else {
            return Err(Error::Storage(
                "a record is too large for a base file".into(),
            ));
        };
        if self.block.is_empty() {
            self.first.clear();
            self.first.extend_from_slice(key);
        }
        self.block.extend_from_slice(&klen.to_le_bytes());
        self.block.extend_from_slice(&vlen.to_le_bytes());
        self.block.extend_from_slice(key);
        self.block.extend_from_slice(value);
        let last = self.last.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(key);
        self.records += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.cut()?;
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.out.write_all(&self.block)?;
        self.index.push(BlockRef {
            first: std::mem::take(&mut self.first),
            offset: self.offset,
            len: self.block.len() as u32,
            crc: crc32fast::hash(&self.block),
        });
        self.offset += self.block.len() as u64;
        self.block.clear();
        self.writeback.after(&mut self.out, self.offset)
    }

    /// Makes what was written so far durable (not yet a complete file).
    pub fn sync(&mut self) -> Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        Ok(())
    }

    /// Writes the index and footer and syncs the file; returns the records written.
    pub fn finish(mut self) -> Result<u64> {
        self.cut()?;
        let mut index = Vec::new();
        for b in &self.index {
            index.extend_from_slice(&(b.first.len() as u32).to_le_bytes());
            index.extend_from_slice(&b.offset.to_le_bytes());
            index.extend_from_slice(&b.len.to_le_bytes());
            index.extend_from_slice(&b.crc.to_le_bytes());
            index.extend_from_slice(&b.first);
        }
        let mut footer = Vec::with_capacity(FOOTER);
        footer.extend_from_slice(&self.offset.to_le_bytes());
        footer.extend_from_slice(&(index.len() as u64).to_le_bytes());
        footer.extend_from_slice(&self.records.to_le_bytes());
        footer.extend_from_slice(&crc32fast::hash(&index).to_le_bytes());
        footer.extend_from_slice(&VERSION.to_le_bytes());
        footer.extend_from_slice(&MAGIC.to_le_bytes());
        self.out.write_all(&index)?;
        self.out.write_all(&footer)?;
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(self.records)
    }
}

/// A sealed base file, open for reads from any thread.
#[derive(Debug)]
pub struct BaseFile {
    pub(super) file: File,
    path: std::path::PathBuf,
    pub(super) index: Vec<BlockRef>,
    /// Where the blocks end and the index starts.
    pub(super) index_at: u64,
    records: u64,
    bytes: u64,
}

/// A record found in a block: key, value, and where the next record starts.
type Raw<'b> = (&'b [u8], &'b [u8], usize);

/// Little-endian integers from a byte slice the caller has sized.
fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}
fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

impl BaseFile {
    /// Opens the base file at `path`, checking its footer and index.
    pub fn open(path: &Path) -> Result<BaseFile> {
        let file = File::open(path)?;
        let bytes = file.metadata()?.len();
        let bad = |what: &str| corrupt(path, what);
        if bytes < FOOTER as u64 {
            return Err(bad("shorter than its footer"));
        }
        let mut footer = [0u8; FOOTER];
        file.read_exact_at(&mut footer, bytes - FOOTER as u64)?;
        if le_u64(&footer[32..]) != MAGIC {
            return Err(bad("no base-file footer"));
        }
        let version = le_u32(&footer[28..]);
        if version != VERSION {
            return Err(Error::Storage(format!(
                "{} is base format {version}; this binary reads {VERSION}",
                path.display()
            )));
        }
        let (at, len, records) = (le_u64(&footer), le_u64(&footer[8..]), le_u64(&footer[16..]));
        if at.checked_add(len) != Some(bytes - FOOTER as u64) {
            return Err(bad("index out of place"));
        }
        let mut raw = vec![0u8; len as usize];
        file.read_exact_at(&mut raw, at)?;
        if crc32fast::hash(&raw) != le_u32(&footer[24..]) {
            return Err(bad("index checksum"));
        }
        let mut index = Vec::new();
        let mut rest = raw.as_slice();
        while !rest.is_empty() {
            if rest.len() < 20 {
                return Err(bad("truncated index entry"));
            }
            let klen = le_u32(rest) as usize;
            let (offset, blen, crc) =
                (le_u64(&rest[4..]), le_u32(&rest[12..]), le_u32(&rest[16..]));
            let first = rest
                .get(20..20 + klen)
                .ok_or_else(|| bad("truncated index key"))?;
            if offset
                .checked_add(u64::from(blen))
                .is_none_or(|end| end > at)
            {
                return Err(bad("a block beyond the data"));
            }
            index.push(BlockRef {
                first: first.to_vec(),
                offset,
                len: blen,
                crc,
            });
            rest = &rest[20 + klen..];
        }
        Ok(BaseFile {
            file,
            path: path.to_path_buf(),
            index,
            index_at: at,
            records,
            bytes,
        })
    }

    /// How many records the file holds.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The file's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Block `i`'s bytes, checked against its CRC.
    fn block(&self, i: usize) -> Result<Vec<u8>> {
        let b = &self.index[i];
        let mut buf = vec![0u8; b.len as usize];
        self.file.read_exact_at(&mut buf, b.offset)?;
        self.check(i, &buf)?;
        Ok(buf)
    }

    /// Checks `bytes` as block `i` against its CRC.
    pub(super) fn check(&self, i: usize, bytes: &[u8]) -> Result<()> {
        let b = &self.index[i];
        if crc32fast::hash(bytes) != b.crc {
            return Err(corrupt(
                &self.path,
                &format!("block at {} (checksum)", b.offset),
            ));
        }
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The block that would hold `key`: the last one starting at or before it.
    fn block_for(&self, key: &[u8]) -> Option<usize> {
        self.index
            .partition_point(|b| b.first.as_slice() <= key)
            .checked_sub(1)
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(i) = self.block_for(key) else {
            return Ok(None);
        };
        let block = self.block(i)?;
        let mut at = 0;
        while let Some((k, v, next)) = self.record(&block, at)? {
            match k.cmp(key) {
                std::cmp::Ordering::Equal => return Ok(Some(v.to_vec())),
                std::cmp::Ordering::Greater => return Ok(None),
                std::cmp::Ordering::Less => at = next,
            }
        }
        Ok(None)
    }

    /// The record at `at` in `block` and where the next starts; `None` at its end.
    fn record<'b>(&self, block: &'b [u8], at: usize) -> Result<Option<Raw<'b>>> {
        if at >= block.len() {
            return Ok(None);
        }
        let bad = || corrupt(&self.path, "a record runs past its block");
        let head = block.get(at..at + 8).ok_or_else(bad)?;
        let (klen, vlen) = (le_u32(head) as usize, le_u32(&head[4..]) as usize);
        let key_at = at + 8;
        let value_at = key_at + klen;
        let end = value_at + vlen;
        let (key, value) = (
            block.get(key_at..value_at).ok_or_else(bad)?,
            block.get(value_at..end).ok_or_else(bad)?,
        );
        Ok(Some((key, value, end)))
    }
}

/// Reads a base file's records in key order from a starting key.
pub struct BaseCursor {
    base: Arc<BaseFile>,
    next_block: usize,
    block: Vec<u8>,
    at: usize,
    current: Option<(Vec<u8>, Vec<u8>)>,
}

impl BaseCursor {
    /// A cursor on the first record of `base` whose key is at least `from`.
    pub fn new(base: Arc<BaseFile>, from: &[u8]) -> Result<BaseCursor> {
        let next_block = base.block_for(from).unwrap_or(0);
        let mut cursor = BaseCursor {
            base,
            next_block,
            block: Vec::new(),
            at: 0,
            current: None,
        };
        cursor.advance()?;
        while cursor
            .current
            .as_ref()
            .is_some_and(|(k, _)| k.as_slice() < from)
        {
            cursor.advance()?;
        }
        Ok(cursor)
    }

    /// The record the cursor is on (`None` past the last).
    pub fn peek(&self) -> Option<&(Vec<u8>, Vec<u8>)> {
        self.current.as_ref()
    }

    /// Takes the record the cursor is on and moves to the next.
    pub fn take(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let out = self.current.take();
        if out.is_some() {
            self.advance()?;
        }
        Ok(out)
    }

    fn advance(&mut self) -> Result<()> {
        loop {
            if let Some((k, v, next)) = self.base.record(&self.block, self.at)? {
                self.current = Some((k.to_vec(), v.to_vec()));
                self.at = next;
                return Ok(());
            }
            if self.next_block >= self.base.index.len() {
                self.current = None;
                return Ok(());
            }
            self.block = self.base.block(self.next_block)?;
            self.next_block += 1;
            self.at = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> Vec<u8> {
        format!("k{i:06}").into_bytes()
    }

    fn write(dir: &Path, n: u32, value: usize) -> Arc<BaseFile> {
        let path = dir.join(BASE);
        let mut w = BaseWriter::create(&path).unwrap();
        for i in 0..n {
            w.add(&key(i * 2), &vec![(i % 251) as u8; value]).unwrap();
        }
        assert_eq!(w.finish().unwrap(), u64::from(n));
        Arc::new(BaseFile::open(&path).unwrap())
    }

    #[test]
    fn records_read_back_by_key_and_in_order_from_any_start() {
        let dir = tempfile::tempdir().unwrap();
        // 3,000 records of 100 bytes: ten blocks.
        let base = write(dir.path(), 3000, 100);
        assert_eq!(base.records(), 3000);
        assert!(base.index.len() > 5, "{} blocks", base.index.len());
        for i in [0, 1, 327, 2999] {
            assert_eq!(
                base.get(&key(i * 2)).unwrap(),
                Some(vec![(i % 251) as u8; 100])
            );
            assert_eq!(base.get(&key(i * 2 + 1)).unwrap(), None, "between records");
        }
        assert_eq!(base.get(b"a").unwrap(), None, "before the first");
        assert_eq!(base.get(b"z").unwrap(), None, "after the last");
        let mut all = BaseCursor::new(base.clone(), b"").unwrap();
        let mut n = 0;
        while let Some((k, _)) = all.take().unwrap() {
            assert_eq!(k, key(n * 2));
            n += 1;
        }
        assert_eq!(n, 3000);
        let from = BaseCursor::new(base.clone(), &key(1001)).unwrap();
        assert_eq!(
            from.peek().unwrap().0,
            key(1002),
            "the first key at or after the start"
        );
        assert!(BaseCursor::new(base, b"z").unwrap().peek().is_none());
    }

    #[test]
    fn an_empty_file_and_records_larger_than_a_block_work() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(dir.path(), 0, 1);
        assert_eq!(empty.get(b"k").unwrap(), None);
        assert!(BaseCursor::new(empty, b"").unwrap().peek().is_none());
        let big = write(dir.path(), 4, BLOCK_BYTES * 2);
        assert_eq!(
            big.get(&key(6)).unwrap().map(|v| v.len()),
            Some(BLOCK_BYTES * 2)
        );
    }

    #[test]
    fn keys_out_of_order_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BaseWriter::create(&dir.path().join(BASE)).unwrap();
        w.add(b"b", b"1").unwrap();
        assert!(w.add(b"b", b"2").is_err(), "a repeated key");
        assert!(w.add(b"a", b"2").is_err(), "a smaller key");
    }

    #[test]
    fn a_damaged_or_truncated_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let base = write(dir.path(), 3000, 100);
        let path = dir.path().join(BASE);
        let mut bytes = std::fs::read(&path).unwrap();
        // A flipped byte in a block: found when the block is read.
        bytes[100] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let damaged = BaseFile::open(&path).unwrap();
        let err = damaged.get(&key(2)).unwrap_err().to_string();
        assert!(err.contains("checksum") && err.contains(BASE), "{err}");
        drop(base);
        // Cut short: no footer.
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = BaseFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
        // A damaged index.
        bytes[100] ^= 0xff;
        let at = bytes.len() - FOOTER - 3;
        bytes[at] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = BaseFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("index checksum"), "{err}");
    }
}
