//! Conversions between the replica core's messages and the gRPC contract, and the one
//! rule for taking a beacon reply (which replicas to assign, to leave, to delete). The
//! replica server and the simulation both go through here, so the simulation exercises
//! the same conversions the wire does.

use std::sync::Arc;

use crate::data::{decode_key, decode_value};
use crate::error::Error;
use crate::model::{Gpid, ReplicaData};
use crate::pb;
use crate::replica::core::{
    AssignedRole, Assignment, Chunk, ConfigRequest, ConfigView, DataState, Prepare, PrepareReply,
    Proposal, Refusal, Role, Stage, Status,
};
use crate::replica::snapshot::Pairs;

/// A beacon reply's assignment, for the core.
pub fn assignment_from_pb(a: &pb::Assignment) -> Assignment {
    let role = match pb::ReplicaRole::try_from(a.role) {
        Ok(pb::ReplicaRole::Primary) => AssignedRole::Primary,
        Ok(pb::ReplicaRole::Learner) => AssignedRole::Learner,
        _ => AssignedRole::Secondary,
    };
    let proposal = a
        .proposal
        .as_ref()
        .and_then(|p| match pb::proposal::Kind::try_from(p.kind) {
            Ok(pb::proposal::Kind::MovePrimary) => Some(Proposal::MovePrimary(p.to.clone())),
            Ok(pb::proposal::Kind::Downgrade) => Some(Proposal::Downgrade),
            _ => None,
        });
    Assignment {
        ballot: a.ballot,
        role,
        primary: (!a.primary.is_empty()).then(|| a.primary.clone()),
        secondaries: a.secondaries.clone(),
        max_replicas: a.max_replica_count.max(1),
        proposal,
        create_empty: a.create_empty,
    }
}

/// What a node does with one of its replicas after a beacon reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Sync {
    /// Assign it (opening or creating it if the node does not have it).
    Assign(Gpid, Assignment),
    /// It is no longer assigned: inactive.
    Unassign(Gpid),
    /// Nothing needs it: delete it.
    Delete(Gpid),
}

/// The steps a beacon reply asks of a node holding `held`.
pub fn sync_plan(held: impl IntoIterator<Item = Gpid>, reply: &pb::BeaconReply) -> Vec<Sync> {
    let garbage: Vec<Gpid> = reply.garbage.iter().map(Gpid::from_pb).collect();
    let assigned: Vec<Gpid> = reply
        .assignments
        .iter()
        .map(|a| Gpid::new(a.app_id, a.pidx))
        .collect();
    let mut plan: Vec<Sync> = reply
        .assignments
        .iter()
        .map(|a| Sync::Assign(Gpid::new(a.app_id, a.pidx), assignment_from_pb(a)))
        .collect();
    for gpid in held {
        if garbage.contains(&gpid) {
            plan.push(Sync::Delete(gpid));
        } else if !assigned.contains(&gpid) {
            plan.push(Sync::Unassign(gpid));
        }
    }
    plan
}

/// What a beacon reports of one replica.
pub fn report_to_pb(
    gpid: Gpid,
    role: &Role,
    status: &Status,
    disk_bytes: u64,
) -> pb::ReplicaReport {
    let data = match status.data {
        DataState::Valid => ReplicaData::Valid,
        DataState::Learning => ReplicaData::Learning,
        DataState::Lost(_) | DataState::Broken(_) => ReplicaData::Lost,
    };
    let role = match role {
        Role::Primary(_) => pb::ReplicaRole::Primary,
        Role::Secondary(_) => pb::ReplicaRole::Secondary,
        Role::Learner(_, Stage::Ready) | Role::Learner(..) => pb::ReplicaRole::Learner,
        Role::Inactive => pb::ReplicaRole::Inactive,
    };
    pb::ReplicaReport {
        app_id: gpid.app_id,
        pidx: gpid.pidx,
        ballot: status.ballot,
        role: role as i32,
        disk_bytes,
        data: data.to_pb() as i32,
        committed: status.committed,
        prepared: status.prepared,
    }
}

/// A prepare on the wire.
pub fn prepare_to_pb(gpid: Gpid, p: &Prepare) -> pb::PrepareRequest {
    pb::PrepareRequest {
        app_id: gpid.app_id,
        pidx: gpid.pidx,
        ballot: p.ballot,
        from: p.from.clone(),
        entries: p.entries.iter().map(|e| (**e).clone()).collect(),
        committed_decree: p.committed,
        prev_decree: p.prev_decree,
        prev_ballot: p.prev_ballot,
        last_prepared: p.last_prepared,
    }
}

/// A prepare off the wire.
pub fn prepare_from_pb(r: pb::PrepareRequest) -> Prepare {
    Prepare {
        ballot: r.ballot,
        from: r.from,
        prev_decree: r.prev_decree,
        prev_ballot: r.prev_ballot,
        entries: r.entries.into_iter().map(Arc::new).collect(),
        committed: r.committed_decree,
        last_prepared: r.last_prepared,
    }
}

/// A prepare's answer on the wire.
pub fn prepare_reply_to_pb(r: &PrepareReply) -> pb::PrepareReply {
    use pb::prepare_reply::Outcome;
    let mut out = pb::PrepareReply::default();
    let outcome = match r {
        PrepareReply::Ack {
            ballot,
            prepared,
            ready,
        } => {
            out.ballot = *ballot;
            out.last_prepared = *prepared;
            out.ready = *ready;
            Outcome::Ack
        }
        PrepareReply::Refused(Refusal::StaleBallot(b)) => {
            out.ballot = *b;
            Outcome::StaleBallot
        }
        PrepareReply::Refused(Refusal::WrongPrimary) => Outcome::WrongPrimary,
        PrepareReply::Refused(Refusal::PrimaryBehind(c)) => {
            out.last_prepared = *c;
            Outcome::PrimaryBehind
        }
        PrepareReply::Refused(Refusal::Mismatch { committed }) => {
            out.last_prepared = *committed;
            Outcome::Mismatch
        }
        PrepareReply::Refused(Refusal::NotReady) => Outcome::NotReady,
        PrepareReply::Refused(Refusal::Failed(why)) => {
            out.message = why.clone();
            Outcome::Failed
        }
    };
    out.outcome = outcome as i32;
    out
}

/// A prepare's answer off the wire.
pub fn prepare_reply_from_pb(r: pb::PrepareReply) -> PrepareReply {
    use pb::prepare_reply::Outcome;
    let refused = PrepareReply::Refused;
    match Outcome::try_from(r.outcome) {
        Ok(Outcome::Ack) => PrepareReply::Ack {
            ballot: r.ballot,
            prepared: r.last_prepared,
            ready: r.ready,
        },
        Ok(Outcome::StaleBallot) => refused(Refusal::StaleBallot(r.ballot)),
        Ok(Outcome::WrongPrimary) => refused(Refusal::WrongPrimary),
        Ok(Outcome::PrimaryBehind) => refused(Refusal::PrimaryBehind(r.last_prepared)),
        Ok(Outcome::Mismatch) => refused(Refusal::Mismatch {
            committed: r.last_prepared,
        }),
        Ok(Outcome::NotReady) => refused(Refusal::NotReady),
        _ => refused(Refusal::Failed(r.message)),
    }
}

/// A configuration change request on the wire.
pub fn config_request_to_pb(
    gpid: Gpid,
    ballot: i64,
    from: &str,
    request: &ConfigRequest,
) -> pb::UpdatePartitionRequest {
    let (kind, node) = match request {
        ConfigRequest::Remove(n) => (pb::UpdateKind::Remove, n.clone()),
        ConfigRequest::UpgradeLearner(n) => (pb::UpdateKind::UpgradeLearner, n.clone()),
        ConfigRequest::Renew => (pb::UpdateKind::Renew, String::new()),
        ConfigRequest::MovePrimary(n) => (pb::UpdateKind::MovePrimary, n.clone()),
        ConfigRequest::Downgrade => (pb::UpdateKind::Downgrade, String::new()),
    };
    pb::UpdatePartitionRequest {
        app_id: gpid.app_id,
        pidx: gpid.pidx,
        ballot,
        from: from.to_string(),
        kind: kind as i32,
        node,
    }
}

/// The meta server's answer to a configuration change request.
pub fn config_answer_from_pb(r: pb::UpdatePartitionReply) -> Result<(bool, ConfigView), Error> {
    let config = r.config.ok_or_else(|| {
        Error::Internal("the meta server answered without a configuration".into())
    })?;
    Ok((
        r.applied,
        ConfigView {
            ballot: config.ballot,
            primary: (!config.primary.is_empty()).then_some(config.primary),
            secondaries: config.secondaries,
        },
    ))
}

/// A snapshot chunk as it goes on the wire.
pub fn chunk_to_pb(chunk: Chunk) -> pb::LearnChunk {
    let (keys, values, overlay, deleted) = match chunk {
        Chunk::File(base_file) => {
            return pb::LearnChunk {
                base_file,
                ..Default::default()
            };
        }
        Chunk::Records(pairs) => {
            let (keys, values) = pairs.into_iter().unzip();
            (keys, values, false, Vec::new())
        }
        Chunk::Overlay { puts, deleted } => {
            let (keys, values) = puts.into_iter().unzip();
            (keys, values, true, deleted)
        }
    };
    pb::LearnChunk {
        keys,
        values,
        overlay,
        deleted,
        ..Default::default()
    }
}

/// A snapshot chunk's records, checked to be well-formed before they are loaded as they
/// are.
fn raw_pairs(keys: Vec<Vec<u8>>, values: Vec<Vec<u8>>) -> Result<Pairs, Error> {
    if keys.len() != values.len() {
        return Err(Error::Internal(format!(
            "a snapshot chunk has {} keys and {} values",
            keys.len(),
            values.len()
        )));
    }
    for (k, v) in keys.iter().zip(&values) {
        decode_key(k)?;
        decode_value(v)?;
    }
    Ok(keys.into_iter().zip(values).collect())
}

/// A learning stream's piece as the learner's store takes it; its records and keys
/// checked.
pub fn chunk_from_pb(chunk: pb::LearnChunk) -> Result<Chunk, Error> {
    if !chunk.base_file.is_empty() {
        return Ok(Chunk::File(chunk.base_file));
    }
    let puts = raw_pairs(chunk.keys, chunk.values)?;
    if !chunk.overlay {
        return Ok(Chunk::Records(puts));
    }
    for k in &chunk.deleted {
        decode_key(k)?;
    }
    Ok(Chunk::Overlay {
        puts,
        deleted: chunk.deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_snapshot_chunk_survives_the_wire_and_a_malformed_one_is_refused() {
        let key = crate::data::encode_key(b"h", b"s").unwrap();
        let value = crate::data::encode_value(0, b"v");
        let chunks = [
            Chunk::Records(vec![(key.clone(), value.clone())]),
            Chunk::File(vec![1, 2, 3]),
            Chunk::Overlay {
                puts: vec![(key.clone(), value.clone())],
                deleted: vec![key.clone()],
            },
            Chunk::Overlay {
                puts: vec![],
                deleted: vec![key.clone()],
            },
        ];
        for chunk in chunks {
            assert_eq!(chunk_from_pb(chunk_to_pb(chunk.clone())).unwrap(), chunk);
        }
        let mut bad = chunk_to_pb(Chunk::Records(vec![(key.clone(), value)]));
        bad.values.clear();
        assert!(chunk_from_pb(bad).is_err(), "keys without values");
        let bad = chunk_to_pb(Chunk::Overlay {
            puts: vec![],
            deleted: vec![vec![0xff]],
        });
        assert!(chunk_from_pb(bad).is_err(), "a key that does not decode");
    }

    #[test]
    fn every_prepare_answer_survives_the_wire() {
        let answers = [
            PrepareReply::Ack {
                ballot: 3,
                prepared: 9,
                ready: true,
            },
            PrepareReply::Refused(Refusal::StaleBallot(4)),
            PrepareReply::Refused(Refusal::WrongPrimary),
            PrepareReply::Refused(Refusal::PrimaryBehind(7)),
            PrepareReply::Refused(Refusal::Mismatch { committed: 2 }),
            PrepareReply::Refused(Refusal::NotReady),
            PrepareReply::Refused(Refusal::Failed("EIO".into())),
        ];
        for a in answers {
            assert_eq!(prepare_reply_from_pb(prepare_reply_to_pb(&a)), a);
        }
    }

    #[test]
    fn a_beacon_reply_assigns_leaves_and_deletes() {
        let reply = pb::BeaconReply {
            assignments: vec![pb::Assignment {
                app_id: 1,
                pidx: 0,
                ballot: 2,
                role: pb::ReplicaRole::Primary as i32,
                create_empty: true,
                proposal: Some(pb::Proposal {
                    kind: pb::proposal::Kind::MovePrimary as i32,
                    to: "b:1".into(),
                }),
                ..Default::default()
            }],
            garbage: vec![Gpid::new(1, 2).to_pb()],
            ..Default::default()
        };
        let plan = sync_plan([Gpid::new(1, 0), Gpid::new(1, 1), Gpid::new(1, 2)], &reply);
        let Sync::Assign(g, a) = &plan[0] else {
            panic!("{plan:?}")
        };
        assert_eq!(*g, Gpid::new(1, 0));
        assert_eq!(a.role, AssignedRole::Primary);
        assert!(a.create_empty);
        assert_eq!(a.proposal, Some(Proposal::MovePrimary("b:1".into())));
        assert_eq!(plan[1], Sync::Unassign(Gpid::new(1, 1)));
        assert_eq!(plan[2], Sync::Delete(Gpid::new(1, 2)));
    }
}
