//! Thin gRPC adapters for nodes coming and going on purpose: the presence stream, a
//! stopping replica server's leave, decommission (checks, plan, status, cancel) and
//! drop. The decisions are [`crate::meta::state`]'s.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use crate::error::{Error, Result};
use crate::meta::Meta;
use crate::meta::state::{DecommissionOutcome, LeaveStage};
use crate::model::{Gpid, validate_address};
use crate::pb;

/// The presence stream's type: it yields only nudges to beacon now.
pub type PresenceStream =
    Pin<Box<dyn Stream<Item = std::result::Result<pb::PresenceEvent, Status>> + Send>>;

/// Opens a node's presence stream; its end, whenever it comes, makes the node LOST.
pub fn presence(meta: &Arc<Meta>, req: pb::PresenceRequest) -> Result<PresenceStream> {
    validate_address(&req.address)?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let session = meta.lock().presence_opened(&req.address, tx.clone());
    let retired = meta.retired();
    let meta = meta.clone();
    tokio::spawn(async move {
        tx.closed().await;
        meta.lock().presence_closed(&req.address, session);
    });
    let events = ReceiverStream::new(rx).map(|()| Ok(pb::PresenceEvent { beacon_now: true }));
    // A meta server that stops leading ends its streams, so replica servers open them
    // again on the new leader (which then sees their processes end, and nudges them).
    Ok(Box::pin(futures_util::StreamExt::take_until(
        events, retired,
    )))
}

/// A stopping replica server's request; a node that is gone is cured at once.
pub async fn leave(meta: &Meta, req: pb::LeaveRequest) -> Result<pb::LeaveReply> {
    let stage = match pb::LeaveStage::try_from(req.stage) {
        Ok(pb::LeaveStage::MovePrimaries) => LeaveStage::MovePrimaries,
        Ok(pb::LeaveStage::Gone) => LeaveStage::Gone,
        _ => return Err(Error::InvalidInput("unknown leave stage".into())),
    };
    let primaries_left = meta
        .change(|state| {
            let now = Instant::now();
            let left = state.leave(&req.address, &req.incarnation, stage, now)?;
            // Whatever the stop needs (a primary move, a cure) starts now, not at the
            // next round.
            state.round(now)?;
            Ok(left)
        })
        .await?;
    Ok(pb::LeaveReply { primaries_left })
}

/// Checks and plans a decommission, and starts it unless it is a dry run. A failed check
/// is an unsafe refusal whose message lists every check.
pub async fn decommission(
    meta: &Meta,
    req: pb::DecommissionRequest,
) -> Result<pb::DecommissionReply> {
    for node in &req.nodes {
        validate_address(node)?;
    }
    let outcome = meta
        .change(|state| {
            let now = Instant::now();
            let outcome = state.decommission(&req.nodes, req.dry_run, now)?;
            if outcome.started {
                state.round(now)?;
            }
            Ok(outcome)
        })
        .await?;
    let failed: Vec<String> = outcome
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if !failed.is_empty() && !req.dry_run {
        return Err(Error::Unsafe(format!(
            "decommission refused; nothing changed. Failed checks: {}",
            failed.join("; ")
        )));
    }
    Ok(outcome_to_pb(outcome))
}

fn outcome_to_pb(o: DecommissionOutcome) -> pb::DecommissionReply {
    pb::DecommissionReply {
        checks: o
            .checks
            .into_iter()
            .map(|c| pb::DecommissionCheck {
                name: c.name.to_string(),
                ok: c.ok,
                detail: c.detail,
            })
            .collect(),
        plan: o
            .plan
            .into_iter()
            .map(|p| pb::NodePlan {
                node: p.node,
                replicas: p.replicas,
                primaries: p.primaries,
                bytes: p.bytes,
                targets: p
                    .targets
                    .into_iter()
                    .map(|(node, (replicas, bytes))| pb::PlanTarget {
                        node,
                        replicas,
                        bytes,
                    })
                    .collect(),
            })
            .collect(),
        started: o.started,
    }
}

/// Every departing node's progress.
pub fn decommission_status(meta: &Meta) -> pb::DecommissionStatusReply {
    let views = meta.lock().drain_status(Instant::now());
    pb::DecommissionStatusReply {
        nodes: views
            .into_iter()
            .map(|v| pb::NodeDrain {
                node: v.node,
                state: v.life.state.to_pb() as i32,
                alive: v.alive,
                replicas_left: v.replicas_left,
                bytes_left: v.bytes_left,
                replicas_total: v.life.replicas_total,
                bytes_total: v.life.bytes_total,
                started_ms: v.life.started_ms,
                idle_ms: v.idle_ms,
                primaries_left: v.primaries_left,
                blockers: v
                    .blockers
                    .into_iter()
                    .map(|(gpid, reason)| pb::DrainBlocker {
                        gpid: Some(gpid.to_pb()),
                        reason,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Cancels decommissions.
pub async fn cancel_decommission(
    meta: &Meta,
    req: pb::CancelDecommissionRequest,
) -> Result<pb::CancelDecommissionReply> {
    let cancelled = meta
        .change(|state| state.cancel_decommission(&req.nodes))
        .await?;
    Ok(pb::CancelDecommissionReply { cancelled })
}

/// Drops a node.
pub async fn drop_node(meta: &Meta, req: pb::DropNodeRequest) -> Result<pb::DropNodeReply> {
    validate_address(&req.node)?;
    let lost = meta
        .change(|state| {
            let now = Instant::now();
            let lost = state.drop_node(&req.node, req.force, now)?;
            state.round(now)?;
            Ok(lost)
        })
        .await?;
    Ok(pb::DropNodeReply {
        lost: lost.into_iter().map(Gpid::to_pb).collect(),
    })
}
