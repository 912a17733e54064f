//! The beacon loop: every interval, tell the meta server this node is alive and what it
//! holds; take back the timing to use, renew the lease, and record the assignments.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::MetaClient;
use crate::model::Gpid;
use crate::pb;
use crate::replica::Replica;
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
        let sent = Instant::now();
        let request = pb::BeaconRequest {
            address: replica.address().to_string(),
            replicas: replica.reports(),
            uptime_ms: replica.started.elapsed().as_millis() as u64,
            incarnation: String::new(),
        };
        match client.beacon(request).await {
            Ok(reply) => {
                if failing {
                    tracing::info!("meta server reachable again");
                    failing = false;
                }
                interval = Duration::from_millis(reply.beacon_interval_ms.max(1));
                replica.renew_lease(sent, Duration::from_millis(reply.lease_ms));
                let garbage: Vec<Gpid> = reply.garbage.iter().map(Gpid::from_pb).collect();
                let recorded = replica
                    .record()
                    .apply_assignments(&reply.assignments, &garbage);
                match recorded {
                    Ok(_) => {
                        replica.sync_partitions(&reply.assignments, &garbage);
                    }
                    Err(e) => tracing::error!("cannot record assignments: {e}"),
                }
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
        }
    }
}
