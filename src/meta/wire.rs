//! The meta server's messages to and from their protobuf form: configuration change
//! requests, beacon reports and replies, assignments, the nodes `nodes` lists,
//! `cluster_info`'s reply and `ddd_diagnose`'s partitions.

use crate::error::Error;
use crate::meta::Meta;
use crate::meta::config::MetaConfig;
use crate::meta::snapshot::Action;
use crate::meta::state::{
    BeaconOutcome, DddPartition, MetaState, NodeAssignment, NodeSummary, PrimaryRequest,
};
use crate::model::{AppStatus, Gpid, ReplicaData, ReplicaReport};
use crate::pb;

/// A primary's configuration change request.
pub fn primary_request_from_pb(kind: i32, node: String) -> Result<PrimaryRequest, Error> {
    Ok(match pb::UpdateKind::try_from(kind) {
        Ok(pb::UpdateKind::Remove) => PrimaryRequest::Remove(node),
        Ok(pb::UpdateKind::UpgradeLearner) => PrimaryRequest::UpgradeLearner(node),
        Ok(pb::UpdateKind::Renew) => PrimaryRequest::Renew,
        Ok(pb::UpdateKind::MovePrimary) => PrimaryRequest::MovePrimary(node),
        Ok(pb::UpdateKind::Downgrade) => PrimaryRequest::Downgrade,
        _ => return Err(Error::InvalidInput("unknown update kind".into())),
    })
}

/// A beacon's replica report.
pub fn report_from_pb(r: &pb::ReplicaReport) -> ReplicaReport {
    ReplicaReport {
        data: ReplicaData::from_pb(r.data),
        ballot: r.ballot,
        committed: r.committed,
        prepared: r.prepared,
        disk_bytes: r.disk_bytes,
    }
}

/// A beacon's outcome as its reply carries it, with the timings the node is to keep.
pub fn beacon_reply_to_pb(outcome: BeaconOutcome, config: &MetaConfig) -> pb::BeaconReply {
    pb::BeaconReply {
        beacon_interval_ms: config.beacon_interval.as_millis() as u64,
        lease_ms: config.lease.as_millis() as u64,
        assignments: outcome
            .assignments
            .into_iter()
            .map(assignment_to_pb)
            .collect(),
        garbage: outcome.garbage.into_iter().map(Gpid::to_pb).collect(),
    }
}

/// An assignment as a beacon reply carries it.
pub fn assignment_to_pb(a: NodeAssignment) -> pb::Assignment {
    let proposal = a.proposal.and_then(|action| match action {
        Action::MovePrimary { to, .. } => Some(pb::Proposal {
            kind: pb::proposal::Kind::MovePrimary as i32,
            to,
        }),
        Action::DowngradeToSecondary { .. } => Some(pb::Proposal {
            kind: pb::proposal::Kind::Downgrade as i32,
            to: String::new(),
        }),
        _ => None,
    });
    pb::Assignment {
        app_id: a.gpid.app_id,
        pidx: a.gpid.pidx,
        ballot: a.ballot,
        role: a.role.to_pb() as i32,
        app_status: a.app_status.to_pb() as i32,
        primary: a.primary.unwrap_or_default(),
        secondaries: a.secondaries,
        max_replica_count: a.max_replica_count,
        create_empty: a.create_empty,
        proposal,
    }
}

/// A lost partition as `ddd_diagnose` shows it.
pub fn ddd_to_pb(p: DddPartition) -> pb::DddPartition {
    pb::DddPartition {
        gpid: Some(p.gpid.to_pb()),
        app_name: p.app_name,
        ballot: p.ballot,
        members: p
            .members
            .into_iter()
            .map(|m| pb::DddMember {
                node: m.node,
                alive: m.alive,
                reported: m.reported,
                data: m.report.map_or(0, |r| r.data.to_pb() as i32),
                ballot: m.report.map_or(0, |r| r.ballot),
                committed: m.report.map_or(0, |r| r.committed),
                prepared: m.report.map_or(0, |r| r.prepared),
            })
            .collect(),
        decision: p.decision,
    }
}

/// A node as `nodes` shows it. Without `known` (a stale answer, from a member that is not
/// the leader) its liveness is unknown; it beacons when its last beacon is within `fresh`.
pub fn node_to_pb(n: NodeSummary, known: bool, fresh: std::time::Duration) -> pb::NodeInfo {
    pb::NodeInfo {
        status: match (known, n.alive) {
            (false, _) => pb::NodeStatus::Unknown,
            (true, true) => pb::NodeStatus::Alive,
            (true, false) => pb::NodeStatus::Unalive,
        } as i32,
        primary_count: n.primary_count,
        secondary_count: n.secondary_count,
        last_beacon_ago_ms: if known {
            n.last_beacon_ago.as_millis() as u64
        } else {
            0
        },
        reported: known && n.reported,
        beaconing: known && n.alive && n.last_beacon_ago <= fresh,
        disk_bytes: n.disk_bytes,
        serving: known && n.serving,
        state: n.state.to_pb() as i32,
        disk_free_bytes: n.disk_free,
        address: n.address,
    }
}

/// `cluster_info`'s reply from `meta`'s state (`members`: the group's addresses, for a
/// group). A `stale` answer leaves out what only the leader knows.
pub fn cluster_info_to_pb(
    meta: &Meta,
    state: &MetaState,
    members: Option<Vec<String>>,
    stale: Option<pb::StaleRead>,
) -> pb::ClusterInfoReply {
    let now = std::time::Instant::now();
    let view = state.level();
    let (alive, dead) = state.node_counts();
    let mut meta_servers = members.unwrap_or_else(|| state.config().meta_servers.clone());
    if meta_servers.is_empty() {
        meta_servers.push(meta.address().to_string());
    }
    let reply = pb::ClusterInfoReply {
        meta_servers,
        primary_meta_server: meta.address().to_string(),
        stored_level: view.stored.to_pb() as i32,
        effective_level: view.effective.to_pb() as i32,
        freeze_reason: view.freeze_reason.unwrap_or_default(),
        total_node_count: alive + dead,
        alive_node_count: alive,
        app_count: state.list_apps(Some(AppStatus::Available)).len() as u32,
        uptime_ms: meta.uptime().as_millis() as u64,
        balance_operation_count: Some(match state.balance_operation_count() {
            Some(c) => pb::BalanceOperationCount {
                move_pri: c.move_pri as i32,
                copy_pri: c.copy_pri as i32,
                copy_sec: c.copy_sec as i32,
                total: c.total() as i32,
            },
            None => pb::BalanceOperationCount {
                move_pri: -1,
                copy_pri: -1,
                copy_sec: -1,
                total: -1,
            },
        }),
        actions_in_flight: state.actions_in_flight() as u32,
        serving_node_count: state.serving_count(now),
        unhealthy_partition_count: state.unhealthy_count(now),
        failover_ms: (state.config().grace + state.config().check_interval()).as_millis() as u64,
        stale: None,
    };
    match stale {
        None => reply,
        // What the leader alone knows is not given.
        Some(stale) => pb::ClusterInfoReply {
            primary_meta_server: stale.leader.clone(),
            alive_node_count: 0,
            uptime_ms: 0,
            balance_operation_count: None,
            actions_in_flight: 0,
            serving_node_count: 0,
            unhealthy_partition_count: 0,
            stale: Some(stale),
            ..reply
        },
    }
}
