//! The beacon loop: every interval, tell the meta server this node is alive, which
//! directory it is (its incarnation) and what each of its replicas holds; take back the
//! timing to use, renew the lease, and hand each replica its assignment (opening those
//! it does not have: they learn, or start empty if the meta server says so).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::client::MetaClient;
use crate::pb;
use crate::replica::Replica;
use crate::replica::core::Input;
use crate::replica::wire::{Sync, sync_plan};
use crate::replica::worker::Msg;
use crate::server::{ShutdownSignal, stopped};

/// Runs until shutdown.
pub async fn run(
    replica: Arc<Replica>,
    client: MetaClient,
    initial: Duration,
    signal: ShutdownSignal,
) {
    let stop = stopped(signal);
    tokio::pin!(stop);
    let mut interval = initial;
    let mut failing = false;
    loop {
        if replica
            .beacon_control()
            .beacons_stopped
            .load(Ordering::SeqCst)
        {
            // The node left on purpose: a reply would unassign what primaries still
            // count on while it lingers.
            (&mut stop).await;
            return;
        }
        let sent = Instant::now();
        let request = pb::BeaconRequest {
            address: replica.address().to_string(),
            replicas: replica.reports(),
            uptime_ms: replica.uptime().as_millis() as u64,
            incarnation: replica.incarnation().to_string(),
            disk_free_bytes: replica.disk_free(),
        };
        let answer = tokio::select! {
            _ = &mut stop => return,
            answer = client.beacon(request) => answer,
        };
        match answer {
            Ok(reply) => {
                if failing {
                    tracing::info!("meta server reachable again");
                    failing = false;
                }
                interval = Duration::from_millis(reply.beacon_interval_ms.max(1));
                replica
                    .beacon_control()
                    .beacon_interval_ms
                    .store(reply.beacon_interval_ms, Ordering::Relaxed);
                replica
                    .node()
                    .renew_lease(sent, Duration::from_millis(reply.lease_ms));
                apply(&replica, &reply).await;
            }
            Err(e) if !failing => {
                tracing::warn!("beacon failed: {e}");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep_until((sent + interval).into()) => {}
            _ = replica.beacon_control().kick.notified() => {}
        }
    }
}

/// Takes a beacon reply: assignments to the replicas (opened first if needed), the
/// rest made inactive, garbage deleted.
async fn apply(replica: &Arc<Replica>, reply: &pb::BeaconReply) {
    for step in sync_plan(replica.held_gpids(), reply) {
        match step {
            Sync::Assign(gpid, a) => match replica.open(gpid).await {
                Ok(handle) => {
                    let _ = handle.send(Msg::Step(Input::Assign(a)));
                }
                Err(e) => tracing::error!(%gpid, "cannot open the replica: {e}"),
            },
            Sync::Unassign(gpid) => {
                if let Ok(handle) = replica.handle(gpid) {
                    let _ = handle.send(Msg::Step(Input::Unassign));
                }
            }
            Sync::Delete(gpid) => replica.delete(gpid),
        }
    }
}
