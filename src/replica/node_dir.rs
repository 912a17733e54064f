//! A replica server's data directory: one owner at a time, an identity, a format.
//!
//! - **One owner.** `LOCK` is held (an exclusive lock) for the life of the process; a
//!   second process on the same directory is refused with one line naming the holder
//!   and changes nothing.
//! - **An identity.** `node.json` records the directory's incarnation, made when the
//!   directory is created and sent with every beacon: a wiped or replaced directory on a
//!   known address is a new, empty node to the meta server, never the old one.
//! - **A format.** `node.json` carries the format version; a directory of an older
//!   layout (before versions: `replicas.json`) or a newer one is refused by name.
//! - Each replica lives in `replicas/APP_ID.PIDX/`: its store, its log, or a `LOST`
//!   marker (deleted by `replica.kill_partition`, at a ballot).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Gpid;
use crate::replica::plog::sync_dir;

/// The data directory format this binary writes and reads.
pub const FORMAT: u32 = 1;
/// The marker of a deleted replica (its content: the ballot it was lost at).
pub const LOST: &str = "LOST";

#[derive(Debug, Serialize, Deserialize)]
struct NodeFile {
    format: u32,
    incarnation: String,
    created_ms: u64,
}

/// An opened (and locked) data directory.
#[derive(Debug)]
pub struct NodeDir {
    root: PathBuf,
    incarnation: String,
    _lock: File,
}

/// A new random identity: 128 bits from the system's random source.
pub fn new_incarnation() -> String {
    let mut bytes = [0u8; 16];
    let read = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No random device: time and process id still tell incarnations apart.
        let seed = crate::timeutil::now_ms() ^ (u64::from(std::process::id()) << 32);
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` atomically (temporary file, sync, rename, directory sync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

impl NodeDir {
    /// Opens `root` (creating it if needed) and takes its lock. Refuses, changing
    /// nothing, if another process holds it or its format is not this binary's.
    pub fn open(root: &Path) -> Result<NodeDir> {
        std::fs::create_dir_all(root)?;
        let lock_path = root.join("LOCK");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)?;
        if lock.try_lock().is_err() {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            let holder = holder.trim();
            let by = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            return Err(Error::Refused(format!(
                "data directory {} is in use by another replica server{by}",
                root.display()
            )));
        }
        lock.set_len(0)?;
        lock.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        let node_file = root.join("node.json");
        let incarnation = match std::fs::read(&node_file) {
            Ok(bytes) => {
                let node: NodeFile = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Storage(format!("{}: {e}", node_file.display())))?;
                if node.format != FORMAT {
                    return Err(Error::Storage(format!(
                        "{} is in format {}; this binary reads format {FORMAT}",
                        node_file.display(),
                        node.format
                    )));
                }
                node.incarnation
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if root.join("replicas.json").exists() {
                    return Err(Error::Storage(format!(
                        "{} is in format 0 (written before formats were versioned); this binary reads format {FORMAT}: move its data to a new directory through the cluster (decommission, or learn it anew)",
                        root.display()
                    )));
                }
                let node = NodeFile {
                    format: FORMAT,
                    incarnation: new_incarnation(),
                    created_ms: crate::timeutil::now_ms(),
                };
                let bytes =
                    serde_json::to_vec_pretty(&node).map_err(|e| Error::Internal(e.to_string()))?;
                write_atomic(&node_file, &bytes)?;
                tracing::info!(dir = %root.display(), incarnation = node.incarnation, "new data directory");
                node.incarnation
            }
            Err(e) => return Err(e.into()),
        };
        std::fs::create_dir_all(root.join("replicas"))?;
        Ok(NodeDir {
            root: root.to_path_buf(),
            incarnation,
            _lock: lock,
        })
    }

    /// The directory's identity.
    pub fn incarnation(&self) -> &str {
        &self.incarnation
    }

    /// Free space on the directory's disk for an unprivileged writer, in bytes (0 if the
    /// system cannot say).
    pub fn free_bytes(&self) -> u64 {
        rustix::fs::statvfs(&self.root)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .unwrap_or(0)
    }

    /// The directory of replica `gpid`.
    pub fn replica_dir(&self, gpid: Gpid) -> PathBuf {
        self.root
            .join("replicas")
            .join(format!("{}.{}", gpid.app_id, gpid.pidx))
    }

    /// Every replica with a directory.
    pub fn held(&self) -> Result<Vec<Gpid>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.root.join("replicas"))? {
            let name = entry?.file_name();
            if let Some(gpid) = name.to_str().and_then(|n| n.parse::<Gpid>().ok()) {
                out.push(gpid);
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let first = NodeDir::open(dir.path()).unwrap();
        let node_json = std::fs::read(dir.path().join("node.json")).unwrap();
        let lock = std::fs::read(dir.path().join("LOCK")).unwrap();
        let err = NodeDir::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another replica server"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert_eq!(
            std::fs::read(dir.path().join("node.json")).unwrap(),
            node_json
        );
        assert_eq!(std::fs::read(dir.path().join("LOCK")).unwrap(), lock);
        let incarnation = first.incarnation().to_string();
        drop(first);
        let again = NodeDir::open(dir.path()).unwrap();
        assert_eq!(
            again.incarnation(),
            incarnation,
            "the identity survives restarts"
        );
    }

    #[test]
    fn a_wiped_directory_is_a_new_incarnation_and_old_layouts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = NodeDir::open(&dir.path().join("n"))
            .unwrap()
            .incarnation()
            .to_string();
        std::fs::remove_dir_all(dir.path().join("n")).unwrap();
        let b = NodeDir::open(&dir.path().join("n"))
            .unwrap()
            .incarnation()
            .to_string();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        let old = dir.path().join("old");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("replicas.json"), b"{}").unwrap();
        let err = NodeDir::open(&old).unwrap_err().to_string();
        assert!(err.contains("format 0"), "{err}");
        assert!(!old.join("node.json").exists(), "nothing written");
    }

    #[test]
    fn replicas_are_found_by_their_directories() {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeDir::open(dir.path()).unwrap();
        std::fs::create_dir_all(node.replica_dir(Gpid::new(2, 1))).unwrap();
        std::fs::create_dir_all(node.replica_dir(Gpid::new(1, 0))).unwrap();
        std::fs::create_dir_all(dir.path().join("replicas/junk")).unwrap();
        assert_eq!(node.held().unwrap(), vec![Gpid::new(1, 0), Gpid::new(2, 1)]);
    }
}
