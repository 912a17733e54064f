//! Durable meta state behind the [`MetaStore`] trait: tables, partition configurations,
//! the table-id counter and the set of known nodes. A change is written (and synced)
//! before it is acknowledged, so a meta server killed with -9 comes back with every
//! table and placement. The default store is redb in `--data-dir`; [`MemStore`] serves
//! tests. A replicated store (a Raft group) can later sit behind the same trait.
//!
//! The meta level and the runtime settings are deliberately not stored: as in Pegasus,
//! a restart resets them, which the scale-in procedure relies on.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::meta::app::{App, AppRecord};
use crate::meta::lifecycle::NodeLife;
use crate::model::PartitionConfig;

/// One change to durable state; a batch of them is applied atomically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StoreOp {
    /// Insert or replace a table's record.
    PutApp(AppRecord),
    /// Insert or replace one partition's configuration.
    PutPartition(u32, PartitionConfig),
    /// Remove a table and all its partitions.
    DeleteApp(u32),
    /// Set the next table id to hand out.
    PutNextAppId(u32),
    /// Remember a node and the identity (incarnation) of its data directory.
    PutNode(String, String),
    /// Forget a node.
    DeleteNode(String),
    /// Set a node's lifecycle record (decommission, drop).
    PutLife(String, NodeLife),
    /// Remove a node's lifecycle record: it is NORMAL.
    DeleteLife(String),
}

/// Everything the store holds, as loaded at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredState {
    /// Tables by id, with their partitions.
    pub apps: BTreeMap<u32, App>,
    /// The next table id to hand out.
    pub next_app_id: u32,
    /// Nodes the cluster has seen, with their data directories' incarnations (empty if
    /// unknown: stored before incarnations were).
    pub nodes: BTreeMap<String, String>,
    /// Lifecycle records of nodes that are not NORMAL.
    pub lives: BTreeMap<String, NodeLife>,
}

impl StoredState {
    /// Applies a batch of changes in memory, as a store applies them on disk (the meta
    /// state keeps its image of what is durable this way).
    pub fn apply(&mut self, ops: &[StoreOp]) -> Result<()> {
        for op in ops {
            match op {
                StoreOp::PutApp(record) => {
                    self.apps
                        .entry(record.app_id)
                        .or_insert_with(|| App {
                            record: record.clone(),
                            partitions: Vec::new(),
                        })
                        .record = record.clone();
                }
                StoreOp::PutPartition(app_id, config) => {
                    let app = self.apps.get_mut(app_id).ok_or_else(|| {
                        Error::Storage(format!("partition of unknown app {app_id}"))
                    })?;
                    let idx = config.pidx as usize;
                    if idx < app.partitions.len() {
                        app.partitions[idx] = config.clone();
                    } else {
                        app.partitions.push(config.clone());
                    }
                }
                StoreOp::DeleteApp(app_id) => {
                    self.apps.remove(app_id);
                }
                StoreOp::PutNextAppId(id) => self.next_app_id = *id,
                StoreOp::PutNode(addr, incarnation) => {
                    self.nodes.insert(addr.clone(), incarnation.clone());
                }
                StoreOp::DeleteNode(addr) => {
                    self.nodes.remove(addr);
                }
                StoreOp::PutLife(addr, life) => {
                    self.lives.insert(addr.clone(), life.clone());
                }
                StoreOp::DeleteLife(addr) => {
                    self.lives.remove(addr);
                }
            }
        }
        Ok(())
    }
}

impl StoredState {
    /// The changes that build this state from an empty store.
    pub fn to_ops(&self) -> Vec<StoreOp> {
        let mut ops = vec![StoreOp::PutNextAppId(self.next_app_id)];
        for app in self.apps.values() {
            ops.push(StoreOp::PutApp(app.record.clone()));
            for p in &app.partitions {
                ops.push(StoreOp::PutPartition(app.record.app_id, p.clone()));
            }
        }
        for (addr, incarnation) in &self.nodes {
            ops.push(StoreOp::PutNode(addr.clone(), incarnation.clone()));
        }
        for (addr, life) in &self.lives {
            ops.push(StoreOp::PutLife(addr.clone(), life.clone()));
        }
        ops
    }
}

/// Durable storage for the meta server's state.
pub trait MetaStore: Send {
    /// Reads everything.
    fn load(&self) -> Result<StoredState>;
    /// Applies a batch of changes atomically and durably.
    fn apply(&mut self, ops: &[StoreOp]) -> Result<()>;
}

const APPS: TableDefinition<u32, &[u8]> = TableDefinition::new("apps");
const PARTITIONS: TableDefinition<(u32, u32), &[u8]> = TableDefinition::new("partitions");
const NODES: TableDefinition<&str, ()> = TableDefinition::new("nodes");
const INCARNATIONS: TableDefinition<&str, &str> = TableDefinition::new("incarnations");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const LIVES: TableDefinition<&str, &[u8]> = TableDefinition::new("lives");
const TAG: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_applied");
const TAG_KEY: &str = "applied";
const NEXT_APP_ID: &str = "next_app_id";
const FORMAT_KEY: &str = "format";
/// The format of `meta.redb` this binary writes. Format 0 (no format key) had no
/// incarnations table, format 1 no lifecycle table; both are read and upgraded in place.
/// An older binary refuses format 2, whose dropped nodes it would take back.
pub const FORMAT: u64 = 2;

/// The default store: one redb file in the meta server's data directory.
pub struct RedbStore {
    db: Database,
}

fn storage<E: std::fmt::Display>(err: E) -> Error {
    Error::Storage(err.to_string())
}

impl RedbStore {
    /// Opens (creating if needed) `dir/meta.redb`. Refuses, by name, a file written in a
    /// newer format than this binary knows.
    pub fn open(dir: &Path) -> Result<RedbStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("meta.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::Storage(format!(
                "{} is in use by another meta server",
                path.display()
            )),
            e => storage(e),
        })?;
        RedbStore::with_db(db, &path.display().to_string())
    }

    /// A store in memory (tests: lost when dropped, as a wiped disk would be).
    pub fn in_memory() -> Result<RedbStore> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(storage)?;
        RedbStore::with_db(db, "the in-memory store")
    }

    fn with_db(db: Database, path: &str) -> Result<RedbStore> {
        let tx = db.begin_write().map_err(storage)?;
        {
            tx.open_table(APPS).map_err(storage)?;
            tx.open_table(PARTITIONS).map_err(storage)?;
            tx.open_table(NODES).map_err(storage)?;
            tx.open_table(INCARNATIONS).map_err(storage)?;
            tx.open_table(LIVES).map_err(storage)?;
            let mut counters = tx.open_table(COUNTERS).map_err(storage)?;
            let format = counters
                .get(FORMAT_KEY)
                .map_err(storage)?
                .map(|v| v.value());
            match format {
                Some(f) if f > FORMAT => {
                    return Err(Error::Storage(format!(
                        "{path} is in format {f}, written by a newer Ballast; this binary reads formats up to {FORMAT}"
                    )));
                }
                Some(FORMAT) => {}
                _ => {
                    counters.insert(FORMAT_KEY, FORMAT).map_err(storage)?;
                }
            }
        }
        tx.commit().map_err(storage)?;
        Ok(RedbStore { db })
    }

    /// Applies `ops` and, if given, sets the tag (the Raft state machine's last applied log
    /// id and membership) in the same durable transaction.
    pub fn apply_tagged(&mut self, ops: &[StoreOp], tag: Option<&[u8]>) -> Result<()> {
        let tx = self.db.begin_write().map_err(storage)?;
        write_ops(&tx, ops)?;
        if let Some(tag) = tag {
            let mut table = tx.open_table(TAG).map_err(storage)?;
            table.insert(TAG_KEY, tag).map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    /// The tag last written with [`RedbStore::apply_tagged`] or [`RedbStore::replace`].
    pub fn tag(&self) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = match tx.open_table(TAG) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        Ok(table
            .get(TAG_KEY)
            .map_err(storage)?
            .map(|v| v.value().to_vec()))
    }

    /// Replaces everything with `state` and sets the tag, in one durable transaction (a
    /// Raft snapshot being installed).
    pub fn replace(&mut self, state: &StoredState, tag: &[u8]) -> Result<()> {
        let tx = self.db.begin_write().map_err(storage)?;
        tx.open_table(APPS)
            .map_err(storage)?
            .retain(|_, _| false)
            .map_err(storage)?;
        tx.open_table(PARTITIONS)
            .map_err(storage)?
            .retain(|_, _| false)
            .map_err(storage)?;
        tx.open_table(NODES)
            .map_err(storage)?
            .retain(|_, _| false)
            .map_err(storage)?;
        tx.open_table(INCARNATIONS)
            .map_err(storage)?
            .retain(|_, _| false)
            .map_err(storage)?;
        tx.open_table(LIVES)
            .map_err(storage)?
            .retain(|_, _| false)
            .map_err(storage)?;
        write_ops(&tx, &state.to_ops())?;
        tx.open_table(TAG)
            .map_err(storage)?
            .insert(TAG_KEY, tag)
            .map_err(storage)?;
        tx.commit().map_err(storage)
    }
}

impl MetaStore for RedbStore {
    fn load(&self) -> Result<StoredState> {
        let tx = self.db.begin_read().map_err(storage)?;
        let mut state = StoredState {
            next_app_id: 1,
            ..StoredState::default()
        };
        let apps = tx.open_table(APPS).map_err(storage)?;
        for entry in apps.iter().map_err(storage)? {
            let (id, bytes) = entry.map_err(storage)?;
            let record: AppRecord = serde_json::from_slice(bytes.value()).map_err(storage)?;
            state.apps.insert(
                id.value(),
                App {
                    record,
                    partitions: Vec::new(),
                },
            );
        }
        let partitions = tx.open_table(PARTITIONS).map_err(storage)?;
        for entry in partitions.iter().map_err(storage)? {
            let (key, bytes) = entry.map_err(storage)?;
            let (app_id, _) = key.value();
            let config: PartitionConfig = serde_json::from_slice(bytes.value()).map_err(storage)?;
            match state.apps.get_mut(&app_id) {
                Some(app) => app.partitions.push(config),
                None => return Err(Error::Storage(format!("partition of unknown app {app_id}"))),
            }
        }
        for app in state.apps.values() {
            let expected = app.record.partition_count as usize;
            let in_order = app
                .partitions
                .iter()
                .enumerate()
                .all(|(i, p)| p.pidx as usize == i);
            if app.partitions.len() != expected || !in_order {
                return Err(Error::Storage(format!(
                    "app {} has {} stored partitions, expected {expected}",
                    app.record.app_id,
                    app.partitions.len()
                )));
            }
        }
        let nodes = tx.open_table(NODES).map_err(storage)?;
        let incarnations = tx.open_table(INCARNATIONS).map_err(storage)?;
        for entry in nodes.iter().map_err(storage)? {
            let addr = entry.map_err(storage)?.0.value().to_string();
            let incarnation = incarnations
                .get(addr.as_str())
                .map_err(storage)?
                .map(|v| v.value().to_string())
                .unwrap_or_default();
            state.nodes.insert(addr, incarnation);
        }
        let lives = tx.open_table(LIVES).map_err(storage)?;
        for entry in lives.iter().map_err(storage)? {
            let (addr, bytes) = entry.map_err(storage)?;
            let life: NodeLife = serde_json::from_slice(bytes.value()).map_err(storage)?;
            state.lives.insert(addr.value().to_string(), life);
        }
        let counters = tx.open_table(COUNTERS).map_err(storage)?;
        if let Some(v) = counters.get(NEXT_APP_ID).map_err(storage)? {
            state.next_app_id = v.value() as u32;
        }
        Ok(state)
    }

    fn apply(&mut self, ops: &[StoreOp]) -> Result<()> {
        self.apply_tagged(ops, None)
    }
}

/// Writes `ops` in transaction `tx`.
fn write_ops(tx: &redb::WriteTransaction, ops: &[StoreOp]) -> Result<()> {
    {
        let mut apps = tx.open_table(APPS).map_err(storage)?;
        let mut partitions = tx.open_table(PARTITIONS).map_err(storage)?;
        let mut nodes = tx.open_table(NODES).map_err(storage)?;
        let mut incarnations = tx.open_table(INCARNATIONS).map_err(storage)?;
        let mut counters = tx.open_table(COUNTERS).map_err(storage)?;
        let mut lives = tx.open_table(LIVES).map_err(storage)?;
        for op in ops {
            match op {
                StoreOp::PutApp(record) => {
                    let bytes = serde_json::to_vec(record).map_err(storage)?;
                    apps.insert(record.app_id, bytes.as_slice())
                        .map_err(storage)?;
                }
                StoreOp::PutPartition(app_id, config) => {
                    let bytes = serde_json::to_vec(config).map_err(storage)?;
                    partitions
                        .insert((*app_id, config.pidx), bytes.as_slice())
                        .map_err(storage)?;
                }
                StoreOp::DeleteApp(app_id) => {
                    apps.remove(*app_id).map_err(storage)?;
                    partitions
                        .retain_in((*app_id, 0)..=(*app_id, u32::MAX), |_, _| false)
                        .map_err(storage)?;
                }
                StoreOp::PutNextAppId(id) => {
                    counters
                        .insert(NEXT_APP_ID, u64::from(*id))
                        .map_err(storage)?;
                }
                StoreOp::PutNode(addr, incarnation) => {
                    nodes.insert(addr.as_str(), ()).map_err(storage)?;
                    incarnations
                        .insert(addr.as_str(), incarnation.as_str())
                        .map_err(storage)?;
                }
                StoreOp::DeleteNode(addr) => {
                    nodes.remove(addr.as_str()).map_err(storage)?;
                    incarnations.remove(addr.as_str()).map_err(storage)?;
                }
                StoreOp::PutLife(addr, life) => {
                    let bytes = serde_json::to_vec(life).map_err(storage)?;
                    lives
                        .insert(addr.as_str(), bytes.as_slice())
                        .map_err(storage)?;
                }
                StoreOp::DeleteLife(addr) => {
                    lives.remove(addr.as_str()).map_err(storage)?;
                }
            }
        }
    }
    Ok(())
}

/// An in-memory store for tests (and for a meta server started without a data dir).
#[derive(Debug, Default)]
pub struct MemStore {
    state: StoredState,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore {
            state: StoredState {
                next_app_id: 1,
                ..StoredState::default()
            },
        }
    }

    /// A store holding `state` (a read-only copy of a replicated state, say).
    pub fn from_state(state: StoredState) -> MemStore {
        MemStore { state }
    }
}

impl MetaStore for MemStore {
    fn load(&self) -> Result<StoredState> {
        Ok(self.state.clone())
    }

    fn apply(&mut self, ops: &[StoreOp]) -> Result<()> {
        self.state.apply(ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AppStatus;

    fn sample_ops() -> Vec<StoreOp> {
        let record = AppRecord {
            app_id: 1,
            app_name: "temp".into(),
            status: AppStatus::Available,
            partition_count: 2,
            max_replica_count: 3,
            create_time_ms: 5,
            drop_time_ms: 0,
            drop_expire_ms: 0,
            envs: BTreeMap::new(),
        };
        let part = |pidx| PartitionConfig {
            pidx,
            ballot: 1,
            primary: Some("a:1".into()),
            secondaries: vec!["b:1".into(), "c:1".into()],
            last_drops: vec![],
            fresh: true,
        };
        vec![
            StoreOp::PutNextAppId(2),
            StoreOp::PutApp(record),
            StoreOp::PutPartition(1, part(0)),
            StoreOp::PutPartition(1, part(1)),
            StoreOp::PutNode("a:1".into(), "i1".into()),
            StoreOp::PutLife(
                "b:1".into(),
                NodeLife {
                    state: crate::meta::lifecycle::NodeLifecycle::Decommissioning,
                    started_ms: 7,
                    replicas_total: 2,
                    bytes_total: 9,
                    incarnation: "i2".into(),
                },
            ),
        ]
    }

    #[test]
    fn redb_store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        {
            let mut store = RedbStore::open(&path).unwrap();
            store.apply(&sample_ops()).unwrap();
        }
        let reopened = RedbStore::open(&path).unwrap().load().unwrap();
        assert_eq!(reopened.apps[&1].record.app_name, "temp");
        assert_eq!(
            reopened.nodes["a:1"], "i1",
            "the node's incarnation is kept"
        );
        assert_eq!(
            reopened.lives["b:1"].replicas_total, 2,
            "lifecycles are kept"
        );
        let mut store = RedbStore::open(&path).unwrap();
        store.apply(&[StoreOp::DeleteApp(1)]).unwrap();
        assert!(
            RedbStore::open(&path).is_err(),
            "the file is locked while open"
        );
        drop(store);
        assert!(
            RedbStore::open(&path)
                .unwrap()
                .load()
                .unwrap()
                .apps
                .is_empty()
        );
    }

    #[test]
    fn a_store_of_a_newer_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        drop(RedbStore::open(dir.path()).unwrap());
        {
            let db = Database::create(dir.path().join("meta.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(COUNTERS)
                .unwrap()
                .insert(FORMAT_KEY, FORMAT + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let err = RedbStore::open(dir.path()).err().unwrap().to_string();
        let expected = format!("meta.redb is in format {}", FORMAT + 1);
        assert!(err.contains(&expected), "{err}");
    }

    #[test]
    fn mem_store_applies_and_deletes() {
        let mut store = MemStore::new();
        store.apply(&sample_ops()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.next_app_id, 2);
        assert_eq!(
            loaded.apps[&1].partitions[1].secondaries,
            vec!["b:1", "c:1"]
        );
        store
            .apply(&[StoreOp::DeleteApp(1), StoreOp::DeleteNode("a:1".into())])
            .unwrap();
        let loaded = store.load().unwrap();
        assert!(loaded.apps.is_empty() && loaded.nodes.is_empty());
        assert_eq!(loaded.next_app_id, 2, "the id counter survives deletes");
    }
}
