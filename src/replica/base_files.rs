//! The base files in a replica's directory ([`super::base`]): named by generation — the
//! store records which one it stands on, and each fold writes the next, so the old file
//! and the new are never the same name — strays removed, and a sealed file read back as
//! it lies on disk, in runs of whole blocks each checked against its CRC, to copy to a
//! learner byte for byte.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::replica::base::{BASE, BaseFile};
use crate::replica::io::remove_if_present;

/// A fold's new base file until it takes the old one's place.
pub const BASE_FOLD: &str = "data.base.fold";

/// The name of base file generation `generation` (the first is [`BASE`]).
pub fn base_name(generation: u64) -> String {
    if generation <= 1 {
        BASE.to_string()
    } else {
        format!("{BASE}.{generation}")
    }
}

/// The path of base file generation `generation` in `dir`.
pub fn base_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(base_name(generation))
}

/// Whether `name` is a base file of any generation, or one being written.
pub fn is_base_file(name: &str) -> bool {
    name == BASE || name.starts_with(&format!("{BASE}."))
}

/// Removes every base file in `dir` — finished, half-written or folding — but
/// generation `keep`'s. Reads already on a removed file keep it open.
pub fn remove_other_bases(dir: &Path, keep: Option<u64>) -> Result<()> {
    let keep = keep.map(base_name);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_base_file(name) && keep.as_deref() != Some(name) {
            remove_if_present(&dir.join(name))?;
        }
    }
    Ok(())
}

/// A base file being written starts the disk on what it holds every this many bytes.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Starts the disk writing back a base file while it is written, every
/// [`WRITEBACK_STEP`] bytes, without waiting for it, so the sync that seals the file
/// finds little left to write and the disk works while the copy goes on. (The kernel
/// would otherwise start only at its dirty threshold — a tenth of memory, gigabytes
/// here — or after 30 s, so a learner's whole copy waited for its seal's sync.)
/// `POSIX_FADV_DONTNEED`: Linux starts writeback of the range's dirty pages and drops
/// its clean ones. Advice only: errors are left to the sealing sync.
#[derive(Debug, Default)]
pub struct Writeback {
    /// Where writeback was last started up to.
    started: u64,
}

impl Writeback {
    /// `out` now holds `written` bytes: starts their writeback if a step has passed.
    pub fn after(&mut self, out: &mut BufWriter<File>, written: u64) -> Result<()> {
        let Some(len) = NonZeroU64::new(written.saturating_sub(self.started)) else {
            return Ok(());
        };
        if len.get() >= WRITEBACK_STEP {
            out.flush()?;
            let advice = rustix::fs::Advice::DontNeed;
            let _ = rustix::fs::fadvise(out.get_ref(), self.started, Some(len), advice);
            self.started = written;
        }
        Ok(())
    }
}

/// A sealed base file read back as it lies on disk: runs of whole blocks, each checked
/// against its CRC (so a block damaged on this disk is not copied on), then the index
/// and footer, which the receiving end checks when it opens the copy.
pub struct FileCopy {
    base: Arc<BaseFile>,
    next_block: usize,
    tail_done: bool,
}

impl FileCopy {
    /// Starts at the beginning of `base`.
    pub fn new(base: Arc<BaseFile>) -> FileCopy {
        FileCopy {
            base,
            next_block: 0,
            tail_done: false,
        }
    }

    /// The next run of the file, about `max_bytes` (at least one block); `None` once
    /// the whole file was read.
    pub fn next_run(&mut self, max_bytes: usize) -> Result<Option<Vec<u8>>> {
        let base = &self.base;
        let index = &base.index;
        if self.next_block >= index.len() {
            if self.tail_done {
                return Ok(None);
            }
            self.tail_done = true;
            let mut tail = vec![0u8; (base.bytes() - base.index_at) as usize];
            base.file.read_exact_at(&mut tail, base.index_at)?;
            return Ok(Some(tail));
        }
        let start = index[self.next_block].offset;
        let mut end = start;
        let mut last = self.next_block;
        while last < index.len() && (end == start || end - start < max_bytes as u64) {
            if index[last].offset != end {
                return Err(Error::Storage(format!(
                    "{} is corrupt: a gap before the block at {}",
                    base.path().display(),
                    index[last].offset
                )));
            }
            end += u64::from(index[last].len);
            last += 1;
        }
        let mut run = vec![0u8; (end - start) as usize];
        base.file.read_exact_at(&mut run, start)?;
        for i in self.next_block..last {
            let from = (index[i].offset - start) as usize;
            base.check(i, &run[from..from + index[i].len as usize])?;
        }
        self.next_block = last;
        Ok(Some(run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::base::BaseWriter;

    fn write(path: &Path, n: u32) -> Arc<BaseFile> {
        let mut w = BaseWriter::create(path).unwrap();
        for i in 0..n {
            w.add(format!("k{i:06}").as_bytes(), &[i as u8; 300])
                .unwrap();
        }
        w.finish().unwrap();
        Arc::new(BaseFile::open(path).unwrap())
    }

    #[test]
    fn a_copy_read_in_runs_is_the_file_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BASE);
        let base = write(&path, 2000);
        let mut copy = FileCopy::new(base.clone());
        let (mut out, mut runs) = (Vec::new(), 0);
        while let Some(run) = copy.next_run(20_000).unwrap() {
            assert!(run.len() < 40_000, "a run of {} bytes", run.len());
            out.extend(run);
            runs += 1;
        }
        assert!(runs > 10, "{runs} runs");
        assert_eq!(out, std::fs::read(&path).unwrap());
        assert!(copy.next_run(20_000).unwrap().is_none());
        let copied = dir.path().join(base_name(2));
        std::fs::write(&copied, &out).unwrap();
        let again = BaseFile::open(&copied).unwrap();
        assert_eq!(again.records(), 2000);
        assert_eq!(
            again.get(b"k001234").unwrap(),
            Some(vec![1234u32 as u8; 300])
        );
    }

    #[test]
    fn a_damaged_block_is_not_copied_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BASE);
        write(&path, 2000);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[50_000] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let mut copy = FileCopy::new(Arc::new(BaseFile::open(&path).unwrap()));
        let err = loop {
            match copy.next_run(16_384) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the damaged block was copied"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(err.contains("checksum") && err.contains(BASE), "{err}");
    }

    #[test]
    fn every_base_file_but_the_kept_generation_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            BASE,
            "data.base.3",
            "data.base.tmp",
            BASE_FOLD,
            "data.redb",
            "data.based",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_other_bases(dir.path(), Some(3)).unwrap();
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["data.base.3", "data.based", "data.redb"]);
        remove_other_bases(dir.path(), None).unwrap();
        assert!(!dir.path().join("data.base.3").exists());
        remove_other_bases(&dir.path().join("gone"), None).unwrap();
    }
}
