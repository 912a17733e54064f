//! The meta server: owner of membership and partition placement.
//!
//! - [`state`] holds everything (nodes, tables, level, settings) behind one lock;
//! - [`store`] makes tables and placements durable before a change is acknowledged or
//!   shown, written by [`writer`]'s thread and never under the state's lock;
//! - [`placement`] and [`levels`] are pure decision logic;
//! - [`service`] and [`remote_commands`] are thin adapters for gRPC and `remote_command`;
//! - [`start`] wires them up with the failure detector's ticker.

pub mod app;
pub mod app_admin;
pub mod balancer;
pub mod config;
pub mod departures;
pub mod drain;
pub mod faulty_store;
pub mod guardian;
pub mod ha;
pub mod levels;
pub mod lifecycle;
pub mod placement;
pub mod primary_chain;
pub mod proposal;
pub mod raft;
pub mod remote_commands;
pub mod service;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod wire;
pub mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::Result;
use crate::pb;
use crate::server::{ServerHandle, ShutdownSignal, stopped};
use crate::timeutil::{format_ms, now_ms};
use config::MetaConfig;
use state::MetaState;
use store::{MetaStore, RedbStore};
use writer::Progress;

/// The meta server's shared core: the state behind its lock, the store writer's
/// progress, and process facts.
pub struct Meta {
    state: Arc<Mutex<MetaState>>,
    progress: watch::Sender<Progress>,
    retired: watch::Sender<bool>,
    address: String,
    started: Instant,
    started_ms: u64,
}

impl Meta {
    /// Opens the state over `store`, which a writer thread owns from then on; `address`
    /// is what this server answers as.
    pub fn new(config: MetaConfig, store: Box<dyn MetaStore>, address: String) -> Result<Meta> {
        let started = Instant::now();
        let mut state = MetaState::open(config, store, started)?;
        let (store, queue) = state
            .detach_store()
            .expect("a freshly opened state owns its store");
        let state = Arc::new(Mutex::new(state));
        let (progress, _) = watch::channel(Progress::default());
        writer::spawn(Arc::downgrade(&state), store, queue, progress.clone())?;
        Ok(Meta {
            state,
            progress,
            retired: watch::channel(false).0,
            address,
            started,
            started_ms: now_ms(),
        })
    }

    /// Locks the state. Holders do no I/O: durable writes are queued for the writer.
    pub fn lock(&self) -> MutexGuard<'_, MetaState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `change` on the state and answers once what it queued is durable.
    pub async fn change<T>(&self, change: impl FnOnce(&mut MetaState) -> Result<T>) -> Result<T> {
        let (value, seq) = {
            let mut state = self.lock();
            let value = change(&mut state)?;
            (value, state.submitted())
        };
        self.durable(seq).await?;
        Ok(value)
    }

    /// Waits until every store batch up to `seq` (see [`MetaState::submitted`]) is
    /// durable, or fails with the store's error if one was refused (the change is then
    /// undone).
    pub async fn durable(&self, seq: u64) -> Result<()> {
        if seq == 0 {
            return Ok(());
        }
        let mut rx = self.progress.subscribe();
        let progress = rx
            .wait_for(|p| p.outcome(seq).is_some())
            .await
            .map_err(|_| crate::error::Error::Storage("the meta store writer stopped".into()))?;
        progress.outcome(seq).unwrap_or(Ok(()))
    }

    /// Marks this meta state as no longer acted on (its server stopped leading): its
    /// presence streams end.
    pub fn retire(&self) {
        self.retired.send_replace(true);
    }

    /// Resolves once [`Meta::retire`] was called.
    pub fn retired(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.retired.subscribe();
        async move {
            let _ = rx.wait_for(|r| *r).await;
        }
    }

    /// The address this server answers as.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// How long the server has run.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The `server-info` reply.
    pub fn server_info(&self) -> Value {
        json!({
            "error": "ok",
            "role": "meta-server",
            "version": env!("CARGO_PKG_VERSION"),
            "address": self.address,
            "start_time": format_ms(self.started_ms),
            "uptime_seconds": self.uptime().as_secs(),
        })
    }

    /// The failure detector's periodic work: declare silent nodes UNALIVE (and take them
    /// out of every configuration, then cure at once rather than at the next round),
    /// purge expired tables.
    pub fn tick(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        match state.check_nodes(now) {
            Ok(dead) if !dead.is_empty() => {
                if let Err(e) = state.round(now) {
                    tracing::error!("curing after a death failed: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!("handling dead nodes failed: {e}"),
        }
        if let Err(e) = state.purge_expired(now_ms()) {
            tracing::error!("purging expired tables failed: {e}");
        }
    }

    /// One round of cure and balancing.
    pub fn schedule(&self) {
        if let Err(e) = self.lock().round(Instant::now()) {
            tracing::error!("scheduling round failed: {e}");
        }
    }
}

/// Starts a meta server on `listener` with its durable state in `data_dir`, alone (no
/// group). A data directory that belongs to a group member is refused: writing it directly
/// would fork it from the group.
pub async fn start(
    config: MetaConfig,
    data_dir: &Path,
    listener: TcpListener,
) -> Result<(ServerHandle, Arc<Meta>)> {
    if data_dir.join("raft-log.redb").exists() {
        return Err(crate::error::Error::InvalidInput(format!(
            "{} belongs to a member of a meta server group: start it with --id (and --single \
             or --join as before)",
            data_dir.display()
        )));
    }
    let store = RedbStore::open(data_dir)?;
    start_with_store(config, Box::new(store), listener).await
}

/// Starts a meta server over any store (tests use [`store::MemStore`]).
pub async fn start_with_store(
    config: MetaConfig,
    store: Box<dyn MetaStore>,
    listener: TcpListener,
) -> Result<(ServerHandle, Arc<Meta>)> {
    let address = listener.local_addr()?.to_string();
    let check_interval = config.check_interval();
    let lb_interval = config.lb_interval;
    let meta = Arc::new(Meta::new(config, store, address)?);
    let service = service::MetaService::new(ha::MetaHolder::single(meta.clone()));
    let router = crate::server::builder()
        .add_service(pb::meta_server::MetaServer::new(service.clone()))
        .add_service(pb::cli_server::CliServer::new(service))
        .add_service(raft::grpc::AloneService::server(meta.address().to_string()));
    let ticker_meta = meta.clone();
    let handle = ServerHandle::start(router, listener, move |signal| {
        vec![tokio::spawn(ticker(
            ticker_meta,
            check_interval,
            lb_interval,
            signal,
        ))]
    })?;
    tracing::info!(address = meta.address(), "meta server serving");
    Ok((handle, meta))
}

/// How a meta server takes part in a group of meta servers (`--id` and its flags).
#[derive(Debug, Clone)]
pub struct GroupOptions {
    /// This member's id (never reused).
    pub id: u64,
    /// Start a new group of this member alone (once; a restart just reopens it).
    pub single: bool,
    /// Join the group through these members (any of them; a follower forwards).
    pub join: Vec<String>,
    /// Join as an observer: a learner that never votes.
    pub observer: bool,
    /// Raft's timings.
    pub timings: raft::Timings,
}

/// Starts member `opts.id` of a meta server group on `listener`, with its log and state in
/// `data_dir`, then initializes the group (`--single`) or joins it (`--join`). A member the
/// committed membership already holds skips both, so a restart with the same flags is
/// harmless. Until it leads, it answers "not the leader" with the leader's address.
pub async fn start_member(
    config: MetaConfig,
    opts: GroupOptions,
    data_dir: &Path,
    listener: TcpListener,
) -> Result<(ServerHandle, Arc<ha::MetaHolder>)> {
    let address = listener.local_addr()?.to_string();
    let node = raft::MetaNode {
        address: address.clone(),
        incarnation: raft::identity(data_dir)?,
    };
    let log = raft::log_store::LogStore::open(data_dir)?;
    let store = RedbStore::open(data_dir)?;
    let transport = Arc::new(raft::grpc::GrpcTransport::new());
    let member =
        raft::group::Member::open(opts.id, node, log, store, transport, opts.timings).await?;
    let holder = ha::MetaHolder::group(member.clone(), config, address.clone());
    let service = service::MetaService::new(holder.clone());
    let router = crate::server::builder()
        .add_service(pb::meta_server::MetaServer::new(service.clone()))
        .add_service(pb::cli_server::CliServer::new(service))
        .add_service(raft::grpc::GroupService::server(member.clone()));
    let group = holder.as_group().expect("a group holder").clone();
    let raft_member = member.clone();
    let handle = ServerHandle::start(router, listener, move |signal| {
        let stop = signal.clone();
        vec![
            tokio::spawn(ha::follow_leadership(group, signal)),
            tokio::spawn(async move {
                stopped(stop).await;
                raft_member.shutdown().await;
            }),
        ]
    })?;
    let joined = if opts.single {
        member.initialize().await.map_err(crate::error::Error::from)
    } else {
        member
            .join(&opts.join, opts.observer)
            .await
            .map_err(crate::error::Error::Refused)
    };
    if let Err(e) = joined {
        handle.shutdown().await;
        return Err(e);
    }
    tracing::info!(
        address,
        id = opts.id,
        "meta server serving as a group member"
    );
    Ok((handle, holder))
}

/// The failure detector's and the scheduler's clock, until `signal`.
pub(crate) async fn ticker(meta: Arc<Meta>, check: Duration, lb: Duration, signal: ShutdownSignal) {
    let mut check = tokio::time::interval(check);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Rounds asked for between intervals are at least this far apart (a burst of finished
    // actions makes one round).
    let gap = (lb / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut lb = tokio::time::interval(lb);
    lb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wanted = meta.lock().round_wanted();
    let mut last = tokio::time::Instant::now();
    // When a round asked for runs (never blocking the failure detector's checks).
    let mut due: Option<tokio::time::Instant> = None;
    let stop = stopped(signal);
    tokio::pin!(stop);
    loop {
        let wake = due.unwrap_or(last + gap);
        tokio::select! {
            _ = &mut stop => return,
            _ = check.tick() => meta.tick(),
            _ = lb.tick() => {
                meta.schedule();
                (last, due) = (tokio::time::Instant::now(), None);
            }
            _ = wanted.notified(), if due.is_none() => due = Some(last + gap),
            _ = tokio::time::sleep_until(wake), if due.is_some() => {
                meta.schedule();
                (last, due) = (tokio::time::Instant::now(), None);
                lb.reset();
            }
        }
    }
}
