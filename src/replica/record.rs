//! The replica server's on-disk record of the replicas it holds: which partitions, under
//! which ballot, in which role. Written atomically (temporary file, fsync, rename) so a
//! crash leaves either the old record or the new one, and read back at start so the
//! first beacon after a restart reports what the node held. A replica the meta server
//! stops assigning is not deleted but kept as inactive (it may be the last copy of its
//! partition) until the meta server lists it as garbage.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{AppStatus, Gpid, ReplicaRole};
use crate::pb;

/// One replica held by this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaEntry {
    /// The partition.
    pub gpid: Gpid,
    /// The configuration ballot last seen.
    pub ballot: i64,
    /// Primary, secondary, learner or inactive.
    pub role: ReplicaRole,
    /// The table's status (a dropped table's replicas are kept until it expires).
    pub app_status: AppStatus,
}

/// The record, in memory and on disk.
#[derive(Debug)]
pub struct ReplicaRecord {
    path: PathBuf,
    entries: BTreeMap<Gpid, ReplicaEntry>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    replicas: Vec<ReplicaEntry>,
}

impl ReplicaRecord {
    /// Loads `dir/replicas.json`, or starts empty if there is none.
    pub fn load(dir: &Path) -> Result<ReplicaRecord> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("replicas.json");
        let entries = match std::fs::read(&path) {
            Ok(bytes) => {
                let disk: OnDisk = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
                disk.replicas.into_iter().map(|e| (e.gpid, e)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(ReplicaRecord { path, entries })
    }

    /// Every replica held, by gpid.
    pub fn entries(&self) -> impl Iterator<Item = &ReplicaEntry> {
        self.entries.values()
    }

    /// The beacon's report of what this node holds.
    pub fn reports(&self) -> Vec<pb::ReplicaReport> {
        self.entries
            .values()
            .map(|e| pb::ReplicaReport {
                app_id: e.gpid.app_id,
                pidx: e.gpid.pidx,
                ballot: e.ballot,
                role: e.role.to_pb() as i32,
                disk_bytes: 0,
                data: pb::ReplicaData::Valid as i32,
                committed: 0,
                prepared: 0,
            })
            .collect()
    }

    /// Takes the meta server's assignments: assigned replicas take their role and
    /// ballot, held ones no longer assigned turn inactive, and `garbage` is deleted.
    /// Writes the record to disk if it changed; returns whether it did.
    pub fn apply_assignments(
        &mut self,
        assignments: &[pb::Assignment],
        garbage: &[Gpid],
    ) -> Result<bool> {
        let mut next: BTreeMap<Gpid, ReplicaEntry> = self
            .entries
            .iter()
            .filter(|(g, _)| !garbage.contains(g))
            .map(|(g, e)| {
                (
                    *g,
                    ReplicaEntry {
                        role: ReplicaRole::Inactive,
                        ..e.clone()
                    },
                )
            })
            .collect();
        for a in assignments {
            let gpid = Gpid {
                app_id: a.app_id,
                pidx: a.pidx,
            };
            let entry = ReplicaEntry {
                gpid,
                ballot: a.ballot,
                role: ReplicaRole::from_pb(a.role),
                app_status: AppStatus::from_pb(a.app_status).unwrap_or(AppStatus::Available),
            };
            next.insert(gpid, entry);
        }
        if next == self.entries {
            return Ok(false);
        }
        self.entries = next;
        self.save()?;
        Ok(true)
    }

    /// Closes and deletes replicas: all of table `app_id`, or one partition of it, or
    /// (with neither) every replica. Returns the gpids removed.
    pub fn kill(&mut self, app_id: Option<u32>, pidx: Option<u32>) -> Result<Vec<Gpid>> {
        let doomed: Vec<Gpid> = self
            .entries
            .keys()
            .filter(|g| app_id.is_none_or(|a| g.app_id == a) && pidx.is_none_or(|p| g.pidx == p))
            .copied()
            .collect();
        if !doomed.is_empty() {
            self.entries.retain(|g, _| !doomed.contains(g));
            self.save()?;
        }
        Ok(doomed)
    }

    fn save(&self) -> Result<()> {
        let disk = OnDisk {
            replicas: self.entries.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&disk).map_err(|e| Error::Internal(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(app_id: u32, pidx: u32, primary: bool) -> pb::Assignment {
        pb::Assignment {
            app_id,
            pidx,
            ballot: 3,
            role: if primary {
                pb::ReplicaRole::Primary
            } else {
                pb::ReplicaRole::Secondary
            } as i32,
            app_status: pb::AppStatus::Available as i32,
            ..Default::default()
        }
    }

    #[test]
    fn record_survives_reload_and_only_writes_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = ReplicaRecord::load(dir.path()).unwrap();
        assert_eq!(record.entries().count(), 0);
        let a = [assignment(1, 0, true), assignment(1, 1, false)];
        assert!(record.apply_assignments(&a, &[]).unwrap());
        assert!(
            !record.apply_assignments(&a, &[]).unwrap(),
            "no change, no write"
        );
        let reloaded = ReplicaRecord::load(dir.path()).unwrap();
        let reports = reloaded.reports();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].role, pb::ReplicaRole::Primary as i32);
        assert!(record.apply_assignments(&a[1..], &[]).unwrap());
        let reloaded = ReplicaRecord::load(dir.path()).unwrap();
        let roles: Vec<ReplicaRole> = reloaded.entries().map(|e| e.role).collect();
        assert_eq!(
            roles,
            [ReplicaRole::Inactive, ReplicaRole::Secondary],
            "unassigned turns inactive"
        );
        let gone = Gpid { app_id: 1, pidx: 0 };
        assert!(record.apply_assignments(&a[1..], &[gone]).unwrap());
        assert_eq!(
            ReplicaRecord::load(dir.path()).unwrap().entries().count(),
            1,
            "garbage is deleted"
        );
        assert_eq!(
            record.kill(Some(1), None).unwrap(),
            vec![Gpid { app_id: 1, pidx: 1 }]
        );
        assert_eq!(
            ReplicaRecord::load(dir.path()).unwrap().entries().count(),
            0
        );
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_an_empty_node() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("replicas.json"), b"{not json").unwrap();
        assert!(matches!(
            ReplicaRecord::load(dir.path()),
            Err(Error::Storage(_))
        ));
    }
}
