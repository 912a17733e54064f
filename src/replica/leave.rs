//! A planned stop (SIGTERM, what systemd sends): the node first asks the meta server to
//! move its primaries to secondaries (no copy; it carries the moves out itself, so it
//! beacons at once to hear of them), then stops serving as primary whatever is left,
//! stops beaconing and tells the meta server it is gone — which takes it out of every
//! configuration now instead of after the grace period — and lingers as a secondary for
//! two beacon intervals, so the primaries learn the new configuration before its acks
//! stop. Writes pause no longer than for a primary move.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::pb;
use crate::replica::Replica;
use crate::replica::core::Input;
use crate::replica::worker::Msg;

/// What the beacon loop shares with a planned stop and the presence stream: an early
/// beacon when asked (a nudge from the meta server, a primary move to hear of), and the
/// stop of beacons once the node left.
#[derive(Debug, Default)]
pub struct BeaconControl {
    /// Wakes the beacon loop for an early beacon.
    pub kick: Notify,
    /// Set once the node told the meta server it is gone: no more beacons (a reply would
    /// unassign the replicas the primaries still count on).
    pub beacons_stopped: AtomicBool,
    /// The beacon interval the meta server last handed out, in ms.
    pub beacon_interval_ms: AtomicU64,
}

impl Replica {
    /// Leaves the cluster for a planned stop, within `timeout`; returns when the process
    /// may exit. If the meta server cannot be reached, it returns at once (a crash).
    pub async fn leave(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let meta = self.node().meta().clone();
        let request = |stage: pb::LeaveStage| pb::LeaveRequest {
            address: self.address().to_string(),
            incarnation: self.incarnation().to_string(),
            stage: stage as i32,
        };
        let interval = Duration::from_millis(
            self.beacon_control
                .beacon_interval_ms
                .load(Ordering::Relaxed)
                .max(1),
        );
        // Half the budget for the primary moves, the rest for the goodbye and linger.
        let moves_by = Instant::now() + timeout / 2;
        loop {
            match meta.leave(request(pb::LeaveStage::MovePrimaries)).await {
                Ok(reply) if reply.primaries_left == 0 => break,
                Ok(reply) if Instant::now() >= moves_by => {
                    tracing::warn!(
                        primaries = reply.primaries_left,
                        "primaries not all moved in time; stopping them"
                    );
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(
                        "cannot tell the meta server this node is stopping ({e}); stopping at once"
                    );
                    return;
                }
            }
            self.beacon_control.kick.notify_one();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for report in self.reports() {
            if report.role == pb::ReplicaRole::Primary as i32
                && let Ok(handle) = self.handle(crate::model::Gpid::new(report.app_id, report.pidx))
            {
                let _ = handle.send(Msg::Step(Input::Unassign));
            }
        }
        self.beacon_control
            .beacons_stopped
            .store(true, Ordering::SeqCst);
        if let Err(e) = meta.leave(request(pb::LeaveStage::Gone)).await {
            tracing::warn!("cannot tell the meta server this node is gone ({e})");
            return;
        }
        let linger = (interval * 2 + Duration::from_millis(100))
            .min(deadline.saturating_duration_since(Instant::now()));
        tracing::info!(
            ?linger,
            "left every configuration; lingering for the primaries to notice"
        );
        tokio::time::sleep(linger).await;
    }
}
