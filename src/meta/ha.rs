//! Which meta state a meta server acts on. Alone (no `--id`), it is its own. In a group, only
//! the leader has one: when this member becomes leader it rebuilds the meta state from the
//! replicated state (every known node gets a fresh grace period, as after a restart, so
//! nothing is declared dead before it could beacon) and starts the failure detector, cure
//! and the balancer; when it stops leading, all of that is dropped at once and every request
//! is answered "not the leader" with the leader's address. Its durable changes go through
//! [`RaftStore`]: acknowledged only once a majority committed them.
//!
//! A read that allows a stale answer is served by a follower from its own copy of the
//! replicated state (tables, partitions, nodes as of its last applied entry), marked as
//! such: a follower does not track liveness, so it never calls a node ALIVE.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::meta::config::MetaConfig;
use crate::meta::raft::group::{Member, WriteError};
use crate::meta::store::{MemStore, MetaStore, StoreOp, StoredState};
use crate::meta::{Meta, ticker};
use crate::pb;
use crate::server::{ShutdownSignal, stopped};

/// The meta store of a group's leader: writes commit through Raft.
pub struct RaftStore {
    member: Arc<Member>,
    runtime: tokio::runtime::Handle,
}

impl MetaStore for RaftStore {
    fn load(&self) -> Result<StoredState> {
        let view = self.member.view();
        let view = view.read().unwrap_or_else(|p| p.into_inner());
        Ok(view.state.clone())
    }

    /// Called on the store writer's own thread (never on the runtime).
    fn apply(&mut self, ops: &[StoreOp]) -> Result<()> {
        match self.runtime.block_on(self.member.write(ops.to_vec())) {
            Ok(()) => Ok(()),
            Err(WriteError::NotLeader(_)) => Err(Error::Storage(
                "this meta server stopped leading before the change committed".into(),
            )),
            Err(WriteError::Failed(why)) => Err(Error::Storage(why)),
        }
    }
}

struct Leading {
    meta: Arc<Meta>,
    _stop: watch::Sender<bool>,
}

/// A read-only meta state built from the replicated state as applied up to `applied`.
struct StaleView {
    applied: u64,
    settings: Vec<(String, Vec<String>)>,
    meta: Arc<Meta>,
}

/// A group member's meta server side.
pub struct Group {
    member: Arc<Member>,
    config: MetaConfig,
    address: String,
    leading: RwLock<Option<Leading>>,
    stale: std::sync::Mutex<Option<StaleView>>,
}

impl Group {
    /// The member.
    pub fn member(&self) -> &Arc<Member> {
        &self.member
    }

    fn current(&self) -> Option<Arc<Meta>> {
        let leading = self.leading.read().unwrap_or_else(|p| p.into_inner());
        leading.as_ref().map(|l| l.meta.clone())
    }

    /// Builds the leader's meta state once the group confirms this member leads and it
    /// has applied everything committed.
    async fn take_over(&self) -> Result<()> {
        self.member
            .ensure_leader()
            .await
            .map_err(|e| Error::Unavailable(format!("{e:?}")))?;
        let store = RaftStore {
            member: self.member.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        let meta = Arc::new(Meta::new(
            self.config.clone(),
            Box::new(store),
            self.address.clone(),
        )?);
        replay_settings(&meta, &self.member.held_settings());
        let (stop, signal) = watch::channel(false);
        tokio::spawn(ticker(
            meta.clone(),
            self.config.check_interval(),
            self.config.lb_interval,
            signal,
        ));
        tracing::info!(id = self.member.id(), "leading the meta servers");
        *self.leading.write().unwrap_or_else(|p| p.into_inner()) =
            Some(Leading { meta, _stop: stop });
        Ok(())
    }

    /// A meta state for a stale read: this member's copy of the replicated state, rebuilt
    /// only when it applied something new. Nothing runs on it (no failure detector, no
    /// cure) and nothing is written through it.
    fn stale_read(&self) -> Result<(Arc<Meta>, pb::StaleRead)> {
        let settings = self.member.held_settings();
        let view = self.member.view();
        let view = view.read().unwrap_or_else(|p| p.into_inner());
        let applied = view.applied.map_or(0, |l| l.index);
        let mut cached = self.stale.lock().unwrap_or_else(|p| p.into_inner());
        let meta = match cached.as_ref() {
            Some(c) if c.applied == applied && c.settings == settings => c.meta.clone(),
            _ => {
                let store = MemStore::from_state(view.state.clone());
                drop(view);
                let meta = Arc::new(Meta::new(
                    self.config.clone(),
                    Box::new(store),
                    self.address.clone(),
                )?);
                replay_settings(&meta, &settings);
                *cached = Some(StaleView {
                    applied,
                    settings,
                    meta: meta.clone(),
                });
                meta
            }
        };
        let leader = self
            .member
            .leader()
            .map(|(_, addr)| addr)
            .filter(|addr| *addr != self.address)
            .unwrap_or_default();
        Ok((
            meta,
            pb::StaleRead {
                member_id: self.member.id(),
                applied_index: applied,
                leader,
            },
        ))
    }

    fn step_down(&self) {
        let was = self
            .leading
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(leading) = was {
            leading.meta.retire();
            tracing::info!(id = self.member.id(), "no longer leading the meta servers");
        }
    }
}

/// The key a level change is held under (beside the remote commands).
pub const LEVEL_SETTING: &str = "meta.level";

/// Applies the runtime settings a member holds to a new leader's meta state, in order.
fn replay_settings(meta: &Meta, settings: &[(String, Vec<String>)]) {
    for (command, args) in settings {
        if command == LEVEL_SETTING {
            let level = args
                .first()
                .and_then(|a| a.parse::<i32>().ok())
                .and_then(|pb| crate::model::MetaLevel::from_pb(pb).ok().flatten());
            if let Some(level) = level {
                meta.lock().set_level(level);
            }
            continue;
        }
        let (ok, output) = crate::meta::remote_commands::META_COMMANDS.call(meta, command, args);
        if !ok {
            tracing::warn!(command, "a held runtime setting did not apply: {output}");
        }
    }
}

/// Follows this member's leadership until shutdown: takes over on becoming leader, steps
/// down on losing it.
pub async fn follow_leadership(group: Arc<Group>, signal: ShutdownSignal) {
    let stop = stopped(signal);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = &mut stop => {
                group.step_down();
                return;
            }
            _ = tick.tick() => {}
        }
        let leads = group.member.is_leader();
        let has = group.current().is_some();
        if leads && !has {
            if let Err(e) = group.take_over().await {
                tracing::warn!("cannot take over as leader yet: {e}");
            }
        } else if !leads && has {
            group.step_down();
        }
    }
}

/// What a meta server acts on: its own state, or the group's while it leads.
pub enum MetaHolder {
    /// A meta server alone.
    Single(Arc<Meta>),
    /// A member of a group.
    Group(Arc<Group>),
}

impl MetaHolder {
    /// A meta server alone.
    pub fn single(meta: Arc<Meta>) -> Arc<MetaHolder> {
        Arc::new(MetaHolder::Single(meta))
    }

    /// A member of a group that serves at `address` with `config`.
    pub fn group(member: Arc<Member>, config: MetaConfig, address: String) -> Arc<MetaHolder> {
        Arc::new(MetaHolder::Group(Arc::new(Group {
            member,
            config,
            address,
            leading: RwLock::new(None),
            stale: std::sync::Mutex::new(None),
        })))
    }

    /// The group, for a member.
    pub fn as_group(&self) -> Option<&Arc<Group>> {
        match self {
            MetaHolder::Group(g) => Some(g),
            MetaHolder::Single(_) => None,
        }
    }

    /// The meta state to act on, or "not the leader" with the leader's address.
    pub fn meta(&self) -> Result<Arc<Meta>> {
        match self {
            MetaHolder::Single(meta) => Ok(meta.clone()),
            MetaHolder::Group(g) => g.current().ok_or_else(|| Error::NotLeader {
                leader: g
                    .member
                    .leader()
                    .map(|(_, addr)| addr)
                    .filter(|addr| *addr != g.address),
            }),
        }
    }

    /// Confirms leadership with a quorum (read index) before a read shown as authoritative.
    pub async fn confirm_leader_read(&self) -> Result<Arc<Meta>> {
        self.confirm(true).await
    }

    /// Like [`MetaHolder::confirm_leader_read`], but when this member is a follower and
    /// `stale_ok`, the meta state of its own copy of the replicated state, with what
    /// marks the answer stale.
    pub async fn read(&self, stale_ok: bool) -> Result<(Arc<Meta>, Option<pb::StaleRead>)> {
        match (self.confirm_leader_read().await, self) {
            (Err(Error::NotLeader { .. }), MetaHolder::Group(g)) if stale_ok => {
                let (meta, stale) = g.stale_read()?;
                Ok((meta, Some(stale)))
            }
            (confirmed, _) => confirmed.map(|meta| (meta, None)),
        }
    }

    /// A runtime setting changed on this (leading) meta server: in a group, every member
    /// holds it, so the next leader keeps it.
    pub fn setting_changed(&self, command: &str, args: &[String]) {
        if let MetaHolder::Group(g) = self {
            g.member.forward_setting(command.to_string(), args.to_vec());
        }
    }

    /// Confirms, before a lease is renewed or a configuration handed out, that this meta
    /// server still leads (a deposed leader learns it here and answers "not the leader").
    pub async fn confirm_leader(&self) -> Result<Arc<Meta>> {
        self.confirm(false).await
    }

    /// The meta state to act on once leadership is confirmed: with a quorum (read index)
    /// if `quorum`, else by the leader lease.
    async fn confirm(&self, quorum: bool) -> Result<Arc<Meta>> {
        let meta = self.meta()?;
        if let MetaHolder::Group(g) = self {
            let confirmed = if quorum {
                g.member.ensure_leader().await
            } else {
                g.member.ensure_lease().await
            };
            confirmed.map_err(|_| Error::NotLeader {
                leader: g.member.leader().map(|(_, addr)| addr),
            })?;
        }
        Ok(meta)
    }
}
