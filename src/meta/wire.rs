//! The meta server's messages to and from their protobuf form: configuration change
//! requests, beacon reports and replies, assignments, and `ddd_diagnose`'s partitions.

use crate::error::Error;
use crate::meta::config::MetaConfig;
use crate::meta::snapshot::Action;
use crate::meta::state::{BeaconOutcome, DddPartition, NodeAssignment, PrimaryRequest};
use crate::model::{Gpid, ReplicaData, ReplicaReport};
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
