//! The meta server's gRPC services, as thin adapters: unpack the request, call the
//! state, pack the reply. No decisions are made here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::meta::ha::MetaHolder;
use crate::meta::proposal::proposal_action;
use crate::meta::remote_commands::META_COMMANDS;
use crate::meta::wire::{
    beacon_reply_to_pb, cluster_info_to_pb, ddd_to_pb, node_to_pb, primary_request_from_pb,
    report_from_pb,
};
use crate::meta::{Meta, app_admin, departures};
use crate::model::{AppStatus, Gpid, MetaLevel};
use crate::pb;

/// The request header with which a read allows a stale answer: a follower then answers
/// from its own copy of the replicated state instead of naming the leader.
pub const STALE_OK_HEADER: &str = "ballast-stale-ok";

/// Whether `req` allows a stale answer.
fn stale_ok<T>(req: &Request<T>) -> bool {
    req.metadata().contains_key(STALE_OK_HEADER)
}

/// Serves the `Meta` and `Cli` services over the meta state this server acts on (its
/// own, or the group's while it leads: see [`MetaHolder`]).
#[derive(Clone)]
pub struct MetaService {
    holder: Arc<MetaHolder>,
}

impl MetaService {
    /// Wraps the meta server's holder.
    pub fn new(holder: Arc<MetaHolder>) -> MetaService {
        MetaService { holder }
    }

    /// The meta state to act on once leadership is confirmed (by the leader's lease: a
    /// deposed leader learns it here), or "not the leader" with the leader's address.
    /// Reads are so linearizable, and no change starts on a stale state.
    async fn leader(&self) -> Result<Arc<Meta>, Error> {
        self.holder.confirm_leader().await
    }

    /// For the reads the shell shows as authoritative: leadership confirmed by a quorum
    /// (read index), so the answer is linearizable even if clocks drift.
    async fn leader_read(&self) -> Result<Arc<Meta>, Error> {
        self.holder.confirm_leader_read().await
    }
}

#[tonic::async_trait]
impl pb::meta_server::Meta for MetaService {
    type PresenceStream = departures::PresenceStream;

    async fn presence(
        &self,
        req: Request<pb::PresenceRequest>,
    ) -> Result<Response<Self::PresenceStream>, Status> {
        let meta = self.leader().await?;
        Ok(Response::new(departures::presence(
            &meta,
            req.into_inner(),
        )?))
    }

    async fn leave(
        &self,
        req: Request<pb::LeaveRequest>,
    ) -> Result<Response<pb::LeaveReply>, Status> {
        let meta = self.leader().await?;
        Ok(Response::new(
            departures::leave(&meta, req.into_inner()).await?,
        ))
    }

    async fn decommission(
        &self,
        req: Request<pb::DecommissionRequest>,
    ) -> Result<Response<pb::DecommissionReply>, Status> {
        let meta = self.leader().await?;
        Ok(Response::new(
            departures::decommission(&meta, req.into_inner()).await?,
        ))
    }

    async fn decommission_status(
        &self,
        _req: Request<pb::DecommissionStatusRequest>,
    ) -> Result<Response<pb::DecommissionStatusReply>, Status> {
        let meta = self.leader_read().await?;
        Ok(Response::new(departures::decommission_status(&meta)))
    }

    async fn cancel_decommission(
        &self,
        req: Request<pb::CancelDecommissionRequest>,
    ) -> Result<Response<pb::CancelDecommissionReply>, Status> {
        let meta = self.leader().await?;
        Ok(Response::new(
            departures::cancel_decommission(&meta, req.into_inner()).await?,
        ))
    }

    async fn drop_node(
        &self,
        req: Request<pb::DropNodeRequest>,
    ) -> Result<Response<pb::DropNodeReply>, Status> {
        let meta = self.leader().await?;
        Ok(Response::new(
            departures::drop_node(&meta, req.into_inner()).await?,
        ))
    }

    async fn rename_app(
        &self,
        req: Request<pb::RenameAppRequest>,
    ) -> Result<Response<pb::RenameAppReply>, Status> {
        let meta = self.leader().await?;
        Ok(Response::new(
            app_admin::rename(&meta, req.into_inner()).await?,
        ))
    }

    async fn update_app_envs(
        &self,
        req: Request<pb::UpdateAppEnvsRequest>,
    ) -> Result<Response<pb::UpdateAppEnvsReply>, Status> {
        let meta = self.leader().await?;
        Ok(Response::new(
            app_admin::update_envs(&meta, req.into_inner()).await?,
        ))
    }

    async fn beacon(
        &self,
        req: Request<pb::BeaconRequest>,
    ) -> Result<Response<pb::BeaconReply>, Status> {
        // A deposed leader must not renew a lease: confirm leadership first.
        let meta = self.leader().await?;
        let req = req.into_inner();
        let replicas = req
            .replicas
            .iter()
            .map(|r| (Gpid::new(r.app_id, r.pidx), report_from_pb(r)))
            .collect();
        let mut state = meta.lock();
        let outcome = state.beacon(&req.address, &req.incarnation, replicas, Instant::now())?;
        state.set_disk_free(&req.address, req.disk_free_bytes);
        Ok(Response::new(beacon_reply_to_pb(outcome, state.config())))
    }

    async fn list_nodes(
        &self,
        req: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesReply>, Status> {
        let (meta, stale) = self.holder.read(stale_ok(&req)).await?;
        let req = req.into_inner();
        let filter = pb::NodeStatus::try_from(req.status)
            .map_err(|_| Error::InvalidInput("unknown node status".into()))?;
        let (mut nodes, fresh) = {
            let state = meta.lock();
            let mut nodes = state.list_nodes(Instant::now());
            if req.all {
                nodes.extend(state.dropped_nodes());
                nodes.sort_by(|a, b| a.address.cmp(&b.address));
            }
            (nodes, state.config().beacon_interval * 2)
        };
        nodes.dedup_by(|a, b| a.address == b.address);
        // A stale answer knows the nodes, not their liveness.
        let known = stale.is_none();
        let nodes = nodes
            .into_iter()
            .map(|n| node_to_pb(n, known, fresh))
            .filter(|n| filter == pb::NodeStatus::Unspecified || n.status == filter as i32)
            .collect();
        Ok(Response::new(pb::ListNodesReply { nodes, stale }))
    }

    async fn list_apps(
        &self,
        req: Request<pb::ListAppsRequest>,
    ) -> Result<Response<pb::ListAppsReply>, Status> {
        let (meta, stale) = self.holder.read(stale_ok(&req)).await?;
        let status = AppStatus::from_pb(req.into_inner().status);
        let state = meta.lock();
        let apps = state
            .list_apps(status)
            .into_iter()
            .map(|a| a.to_pb())
            .collect();
        Ok(Response::new(pb::ListAppsReply { apps, stale }))
    }

    async fn query_app(
        &self,
        req: Request<pb::QueryAppRequest>,
    ) -> Result<Response<pb::QueryAppReply>, Status> {
        let (meta, stale) = self.holder.read(stale_ok(&req)).await?;
        let known = stale.is_none();
        let name = req.into_inner().app_name;
        let state = meta.lock();
        let app = state.app_by_name(&name)?;
        let now = Instant::now();
        let members = || {
            let mut all: Vec<&str> = app.partitions.iter().flat_map(|p| p.members()).collect();
            all.sort();
            all.dedup();
            all.into_iter()
        };
        let alive: Vec<String> = members()
            .filter(|m| known && state.is_alive(m))
            .map(str::to_string)
            .collect();
        let serving: Vec<String> = members()
            .filter(|m| known && state.is_serving(m, now))
            .map(str::to_string)
            .collect();
        let replica_disks = state
            .replica_disks(app.record.app_id)
            .into_iter()
            .map(|(pidx, node, disk_bytes)| pb::ReplicaDisk {
                pidx,
                node,
                disk_bytes,
            })
            .collect();
        Ok(Response::new(pb::QueryAppReply {
            app: Some(app.to_pb()),
            alive_nodes: alive,
            replica_disks,
            ddd_partitions: state.ddd_pidxs(app.record.app_id),
            serving_nodes: serving,
            stale,
        }))
    }

    async fn create_app(
        &self,
        req: Request<pb::CreateAppRequest>,
    ) -> Result<Response<pb::CreateAppReply>, Status> {
        let r = req.into_inner();
        let envs: BTreeMap<String, String> = r.envs.into_iter().collect();
        let (app_id, existed) = self
            .leader()
            .await?
            .change(|s| {
                s.create_app(
                    &r.app_name,
                    r.partition_count,
                    r.replica_count,
                    r.fail_if_exist,
                    envs,
                )
            })
            .await?;
        Ok(Response::new(pb::CreateAppReply { app_id, existed }))
    }

    async fn drop_app(
        &self,
        req: Request<pb::DropAppRequest>,
    ) -> Result<Response<pb::DropAppReply>, Status> {
        let r = req.into_inner();
        let reserve = r.reserve_seconds.map(Duration::from_secs);
        let (app_id, drop_expire_ms) = self
            .leader()
            .await?
            .change(|s| s.drop_app(&r.app_name, reserve))
            .await?;
        Ok(Response::new(pb::DropAppReply {
            app_id,
            drop_expire_ms,
        }))
    }

    async fn recall_app(
        &self,
        req: Request<pb::RecallAppRequest>,
    ) -> Result<Response<pb::RecallAppReply>, Status> {
        let r = req.into_inner();
        let new_name = (!r.new_app_name.is_empty()).then_some(r.new_app_name.as_str());
        let record = self
            .leader()
            .await?
            .change(|s| s.recall_app(r.app_id, new_name))
            .await?;
        Ok(Response::new(pb::RecallAppReply {
            info: Some(record.to_pb()),
        }))
    }

    async fn control_meta(
        &self,
        req: Request<pb::ControlMetaRequest>,
    ) -> Result<Response<pb::ControlMetaReply>, Status> {
        let meta = self.leader().await?;
        let level = MetaLevel::from_pb(req.into_inner().level)?;
        let mut state = meta.lock();
        let view = match level {
            Some(level) => {
                let view = state.set_level(level);
                let held = vec![(level.to_pb() as i32).to_string()];
                self.holder
                    .setting_changed(crate::meta::ha::LEVEL_SETTING, &held);
                view
            }
            None => state.level(),
        };
        Ok(Response::new(pb::ControlMetaReply {
            old_level: view.old.to_pb() as i32,
            stored_level: view.stored.to_pb() as i32,
            effective_level: view.effective.to_pb() as i32,
            freeze_reason: view.freeze_reason.unwrap_or_default(),
        }))
    }

    async fn cluster_info(
        &self,
        req: Request<pb::ClusterInfoRequest>,
    ) -> Result<Response<pb::ClusterInfoReply>, Status> {
        let (meta, stale) = self.holder.read(stale_ok(&req)).await?;
        let meta_servers = self.holder.as_group().map(|g| g.member().addresses());
        let reply = cluster_info_to_pb(&meta, &meta.lock(), meta_servers, stale);
        Ok(Response::new(reply))
    }

    async fn propose(
        &self,
        req: Request<pb::ProposeRequest>,
    ) -> Result<Response<pb::ProposeReply>, Status> {
        let r = req.into_inner();
        let gpid = r
            .gpid
            .as_ref()
            .map(Gpid::from_pb)
            .ok_or_else(|| Error::InvalidInput("gpid is missing".into()))?;
        let action = self
            .leader()
            .await?
            .change(|state| {
                let config = state.partition(gpid)?.clone();
                let action = proposal_action(&r.kind, gpid, &r.from, &r.to, &config)?;
                state.propose(action, r.force, Instant::now())
            })
            .await?;
        Ok(Response::new(pb::ProposeReply {
            action: action.to_string(),
        }))
    }

    async fn update_partition(
        &self,
        req: Request<pb::UpdatePartitionRequest>,
    ) -> Result<Response<pb::UpdatePartitionReply>, Status> {
        let r = req.into_inner();
        let gpid = Gpid {
            app_id: r.app_id,
            pidx: r.pidx,
        };
        let change = primary_request_from_pb(r.kind, r.node)?;
        let (applied, config) = self
            .leader()
            .await?
            .change(|s| s.update_partition(gpid, r.ballot, &r.from, change, Instant::now()))
            .await?;
        Ok(Response::new(pb::UpdatePartitionReply {
            applied,
            config: Some(config.to_pb()),
        }))
    }

    async fn ddd_diagnose(
        &self,
        req: Request<pb::DddDiagnoseRequest>,
    ) -> Result<Response<pb::DddDiagnoseReply>, Status> {
        let meta = self.leader().await?;
        let r = req.into_inner();
        let now = Instant::now();
        let forced = match (&r.force_gpid, r.force_node.is_empty()) {
            (Some(g), false) => {
                let gpid = Gpid::from_pb(g);
                meta.change(|s| s.force_primary(gpid, &r.force_node, now))
                    .await?
            }
            (None, true) => String::new(),
            _ => {
                return Err(
                    Error::InvalidInput("a force needs both a gpid and a node".into()).into(),
                );
            }
        };
        let state = meta.lock();
        let partitions = state
            .ddd_partitions(now)
            .into_iter()
            .filter(|p| r.app_id == 0 || p.gpid.app_id == r.app_id)
            .filter(|p| r.pidx.is_none_or(|i| p.gpid.pidx == i))
            .map(ddd_to_pb)
            .collect();
        Ok(Response::new(pb::DddDiagnoseReply { partitions, forced }))
    }
}

#[tonic::async_trait]
impl pb::cli_server::Cli for MetaService {
    async fn call(&self, req: Request<pb::CliRequest>) -> Result<Response<pb::CliReply>, Status> {
        let meta = self.leader().await?;
        let req = req.into_inner();
        let (ok, output) = META_COMMANDS.call(&meta, &req.command, &req.args);
        if ok && !req.args.is_empty() {
            self.holder.setting_changed(&req.command, &req.args);
        }
        Ok(Response::new(pb::CliReply {
            ok,
            output: output.to_string(),
        }))
    }
}
