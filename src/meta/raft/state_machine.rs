//! The replicated meta state: the tables of `meta.redb` (the very ones a single meta server
//! writes, so a single server's data directory is a valid state machine as it stands), plus a
//! tag — the last applied log id, the membership and the retired member ids — written in the
//! same transaction as each applied batch. A snapshot is the whole state as JSON; it is
//! always built from the current state, which is durable, so none is kept apart.
//!
//! The state is also held in memory ([`View`]) for the member's own readers: the leader's
//! meta state is rebuilt from it when it takes over, and a follower answers stale reads
//! from it.

use std::collections::BTreeSet;
use std::io;
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};

use super::{Applied, Command, LogId, StoredMembership, TypeConfig, io_err};
use crate::meta::store::{RedbStore, StoreOp, StoredState};

/// A snapshot's metadata.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot with its data.
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, Vec<u8>>;

/// What the state machine holds, as its readers see it.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// The meta state.
    pub state: StoredState,
    /// The last applied log id.
    pub applied: Option<LogId>,
    /// The membership as of the last applied membership entry (committed).
    pub membership: StoredMembership,
    /// Member ids that were removed or replaced: never used again.
    pub retired: BTreeSet<u64>,
    /// The store held a single meta server's state that is not in the log yet.
    pub migration_pending: bool,
}

/// The tag stored beside the state.
#[derive(Serialize, Deserialize)]
struct Tag {
    applied: Option<LogId>,
    membership: StoredMembership,
    retired: BTreeSet<u64>,
    #[serde(default)]
    migration_pending: bool,
}

impl Tag {
    fn of(view: &View) -> Tag {
        Tag {
            applied: view.applied,
            membership: view.membership.clone(),
            retired: view.retired.clone(),
            migration_pending: view.migration_pending,
        }
    }
}

/// A snapshot's data.
#[derive(Serialize, Deserialize)]
struct Body {
    state: StoredState,
    retired: BTreeSet<u64>,
}

/// The state machine of one member.
pub struct StateMachine {
    store: Arc<Mutex<RedbStore>>,
    view: Arc<RwLock<View>>,
    applied_tx: watch::Sender<Option<LogId>>,
}

impl StateMachine {
    /// Opens the state machine over `store`, reading its tag (none: a store never applied
    /// to, such as a single meta server's before migration).
    pub fn open(store: RedbStore) -> io::Result<StateMachine> {
        let state = crate::meta::store::MetaStore::load(&store).map_err(io_err)?;
        let tag: Option<Tag> = match store.tag().map_err(io_err)? {
            Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(io_err)?),
            None => None,
        };
        let mut store = store;
        let view = match tag {
            Some(tag) => View {
                state,
                applied: tag.applied,
                membership: tag.membership,
                retired: tag.retired,
                migration_pending: tag.migration_pending,
            },
            None => {
                // Never a state machine: a single server's state (or nothing) to migrate.
                let migration_pending =
                    !(state.apps.is_empty() && state.nodes.is_empty() && state.lives.is_empty());
                let view = View {
                    state,
                    migration_pending,
                    ..View::default()
                };
                let tag = serde_json::to_vec(&Tag::of(&view)).map_err(io_err)?;
                store.apply_tagged(&[], Some(&tag)).map_err(io_err)?;
                view
            }
        };
        let (applied_tx, _) = watch::channel(view.applied);
        Ok(StateMachine {
            store: Arc::new(Mutex::new(store)),
            view: Arc::new(RwLock::new(view)),
            applied_tx,
        })
    }

    /// The shared view of the state (read it; only the state machine writes it).
    pub fn view(&self) -> Arc<RwLock<View>> {
        self.view.clone()
    }

    /// Watches the last applied log id.
    pub fn applied(&self) -> watch::Receiver<Option<LogId>> {
        self.applied_tx.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot_of(view: &View) -> io::Result<Snapshot> {
        let body = Body {
            state: view.state.clone(),
            retired: view.retired.clone(),
        };
        let data = serde_json::to_vec(&body).map_err(io_err)?;
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: view.applied,
                last_membership: view.membership.clone(),
            },
            snapshot: data,
        })
    }

    /// Writes `ops` and `tag` durably, off the async runtime.
    async fn write(&self, ops: Vec<StoreOp>, tag: &Tag) -> io::Result<()> {
        let bytes = serde_json::to_vec(tag).map_err(io_err)?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
            store.apply_tagged(&ops, Some(&bytes)).map_err(io_err)
        })
        .await
        .map_err(io_err)?
    }
}

/// Builds snapshots from the view.
pub struct SnapshotBuilder {
    view: Arc<RwLock<View>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner()).clone();
        StateMachine::snapshot_of(&view)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let view = self.read();
        Ok((view.applied, view.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        // The state is changed in place once the batch is durable (no copy of it per batch).
        let mut tag = Tag::of(&self.read());
        let mut ops = Vec::new();
        let mut responders = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Command::Ops(batch)) => ops.extend(batch.iter().cloned()),
                EntryPayload::Normal(Command::Migrate(batch)) => {
                    ops.extend(batch.iter().cloned());
                    tag.migration_pending = false;
                }
                EntryPayload::Normal(Command::RetireId(id)) => {
                    tag.retired.insert(*id);
                }
                EntryPayload::Membership(m) => {
                    tag.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            tag.applied = Some(entry.log_id);
            responders.extend(responder);
        }
        let applied = tag.applied;
        self.write(ops.clone(), &tag).await?;
        {
            let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
            view.state.apply(&ops).map_err(io_err)?;
            view.applied = tag.applied;
            view.membership = tag.membership;
            view.retired = tag.retired;
            view.migration_pending = tag.migration_pending;
        }
        self.applied_tx.send_replace(applied);
        for responder in responders {
            responder.send(Applied);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            view: self.view.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let body: Body = serde_json::from_slice(&snapshot).map_err(io_err)?;
        let next = View {
            state: body.state,
            applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            retired: body.retired,
            migration_pending: false,
        };
        let tag = serde_json::to_vec(&Tag::of(&next)).map_err(io_err)?;
        let store = self.store.clone();
        let state = next.state.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
            store.replace(&state, &tag).map_err(io_err)
        })
        .await
        .map_err(io_err)??;
        let applied = next.applied;
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = next;
        self.applied_tx.send_replace(applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let view = self.read().clone();
        if view.applied.is_none() {
            return Ok(None);
        }
        StateMachine::snapshot_of(&view).map(Some)
    }
}
