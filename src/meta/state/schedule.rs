//! One scheduling round on the meta state, and manual proposals. A round: apply deaths
//! deferred by a low level, give up actions past their deadline, then — only above
//! freezed, and only once every ALIVE node has reported since this meta server started
//! (so a restart causes no wave of changes) — carry out manual proposals and cure; when
//! nothing is left to cure and nothing is in flight, run the balancer: at steady it only
//! counts, at lively its actions are carried out.

use std::collections::BTreeSet;
use std::time::Instant;

use super::{InFlight, MetaState};
use crate::error::{Error, Result};
use crate::meta::balancer::{BalancerOptions, OperationCount, balance};
use crate::meta::drain::drain;
use crate::meta::guardian::{CureOptions, cure};
use crate::meta::lifecycle::NodeLifecycle;
use crate::meta::snapshot::{Action, AppView, NodeView, PartitionView, Snapshot, apply_to_config};
use crate::model::{AppStatus, Gpid, MetaLevel};

/// What a round did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Actions started (or applied at once) this round.
    pub started: Vec<Action>,
    /// Whether cure and the balancer were held back (level, or reports missing).
    pub held: bool,
}

impl MetaState {
    /// Whether every ALIVE node has reported since this meta server started.
    pub fn all_reported(&self) -> bool {
        self.nodes.values().all(|n| !n.alive || n.reported)
    }

    /// Whether every partition of every AVAILABLE table has a primary and
    /// `max_replica_count` replicas, all serving (the balancer's precondition).
    fn all_healthy(&self, now: Instant) -> bool {
        self.apps
            .values()
            .filter(|a| a.record.status == AppStatus::Available)
            .all(|a| {
                self.health_counts(&a.partitions, a.record.max_replica_count, now)
                    .unhealthy
                    == 0
            })
    }

    /// The balancer's count: `None` while replica reports are being collected.
    pub fn balance_operation_count(&self) -> Option<OperationCount> {
        self.lb_counts
    }

    /// Actions in flight.
    pub fn actions_in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// The pure view cure and the balancer decide from, at `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let nodes = self
            .nodes
            .iter()
            .map(|(a, n)| {
                (
                    a.clone(),
                    NodeView {
                        alive: n.alive,
                        reported: n.reported,
                        replicas: n.replicas.clone(),
                    },
                )
            })
            .collect();
        let apps = self
            .apps
            .values()
            .filter(|a| a.record.status == AppStatus::Available)
            .map(|a| AppView {
                app_id: a.record.app_id,
                max_replica_count: a.record.max_replica_count,
                partitions: a
                    .partitions
                    .iter()
                    .map(|p| {
                        let gpid = Gpid {
                            app_id: a.record.app_id,
                            pidx: p.pidx,
                        };
                        let last_drop_ms = self
                            .last_drop_ms
                            .get(&gpid)
                            .copied()
                            .unwrap_or(self.started_ms);
                        PartitionView {
                            config: p.clone(),
                            last_drop_ms,
                        }
                    })
                    .collect(),
            })
            .collect();
        Snapshot {
            now_ms: self.unix_ms(now),
            nodes,
            apps,
            black_list: self.settings.black_list.clone(),
            assign_delay_ms: self.settings.assign_delay_ms,
            busy: self
                .inflight
                .keys()
                .chain(self.proposals.keys())
                .copied()
                .collect(),
            draining: self
                .lives
                .iter()
                // DECOMMISSIONED nodes too: done, they must not take anything back
                // (from the rest of their batch, from cure or from the balancer).
                .filter(|(_, l)| l.state != NodeLifecycle::Normal)
                .map(|(n, _)| n.clone())
                .collect(),
            leaving: self.leaving.clone(),
        }
    }

    /// One scheduling round.
    pub fn round(&mut self, now: Instant) -> Result<RoundReport> {
        let mut report = RoundReport {
            held: true,
            ..RoundReport::default()
        };
        if self.level <= MetaLevel::Blind {
            return Ok(report);
        }
        for node in std::mem::take(&mut self.pending_dead) {
            if !self.is_alive(&node) {
                self.on_node_dead(&node, now)?;
            }
        }
        for node in std::mem::take(&mut self.pending_replaced) {
            self.on_node_replaced(&node, now)?;
        }
        self.inflight.retain(|gpid, f| {
            let keep = now < f.deadline;
            if !keep {
                tracing::warn!(%gpid, action = %f.action, "action timed out; it will be re-planned");
            }
            keep
        });
        // A departing node that holds nothing is done whatever the level: nothing moves.
        self.finish_drains(now)?;
        let effective = self.level().effective;
        if effective <= MetaLevel::Freezed {
            return Ok(report);
        }
        if !self.all_reported() {
            self.lb_counts = None;
            return Ok(report);
        }
        report.held = false;
        let proposals = std::mem::take(&mut self.proposals);
        for action in proposals.into_values() {
            if self.start_action(action.clone(), now)? {
                report.started.push(action);
            }
        }
        let snap = self.snapshot(now);
        let opts = CureOptions {
            add_secondary_max_count_for_one_node: self
                .settings
                .add_secondary_max_count_for_one_node,
        };
        for action in cure(&snap, &opts) {
            if self.start_action(action.clone(), now)? {
                report.started.push(action);
            }
        }
        // Departing nodes drain once cure has done its part.
        for action in drain(&self.snapshot(now)).actions {
            if self.start_action(action.clone(), now)? {
                report.started.push(action);
            }
        }
        if report.started.is_empty() && self.inflight.is_empty() && self.all_healthy(now) {
            let plan = balance(&snap, &self.balancer_options());
            self.lb_counts = Some(OperationCount::of(&plan));
            if effective == MetaLevel::Lively {
                for action in plan {
                    if self.start_action(action.clone(), now)? {
                        report.started.push(action);
                    }
                }
            }
        }
        Ok(report)
    }

    fn balancer_options(&self) -> BalancerOptions {
        BalancerOptions {
            only_move_primary: self.settings.only_move_primary,
            only_primary_balancer: self.settings.only_primary_balancer,
            balancer_in_turn: self.settings.balancer_in_turn,
            ignored_apps: self.settings.ignored_apps.clone(),
        }
    }

    /// Starts an action: a learner-based one goes in flight (the learner is told in its
    /// next beacon reply, which it is nudged to ask for now), and so does one the
    /// primary carries out itself (likewise); any other is applied at once. Returns
    /// whether it started.
    fn start_action(&mut self, action: Action, now: Instant) -> Result<bool> {
        let gpid = action.gpid();
        let Some(config) = self
            .apps
            .get(&gpid.app_id)
            .and_then(|a| a.partitions.get(gpid.pidx as usize))
        else {
            return Ok(false);
        };
        let ballot = config.ballot;
        if !apply_to_config(&mut config.clone(), &action) || self.inflight.contains_key(&gpid) {
            tracing::info!(%action, "action no longer fits; dropped");
            return Ok(false);
        }
        tracing::info!(%action, "action started");
        if action.copies_to().is_some() || action.primary_executes() {
            // The node that acts (the learner, or the primary) hears of it now.
            let actor = action
                .copies_to()
                .map(str::to_string)
                .or_else(|| config.primary.clone());
            let deadline = now + self.config.action_timeout;
            self.inflight.insert(
                gpid,
                InFlight {
                    action,
                    ballot,
                    deadline,
                },
            );
            if let Some(actor) = actor {
                self.nudge(&actor);
            }
            return Ok(true);
        }
        self.change_config(gpid, ballot, |c| apply_to_config(c, &action))
    }

    /// Checks a manual proposal against the partition's configuration and the cluster,
    /// then queues it (or, with `force`, starts it now).
    pub fn propose(&mut self, action: Action, force: bool, now: Instant) -> Result<Action> {
        let view = self.level();
        if view.effective < MetaLevel::Steady {
            return Err(Error::Refused(format!(
                "proposal refused: current meta level is {} (needs steady or lively)",
                view.effective.fl_name()
            )));
        }
        let gpid = action.gpid();
        let app = self
            .apps
            .get(&gpid.app_id)
            .filter(|a| a.record.status == AppStatus::Available)
            .ok_or_else(|| Error::NotFound(format!("table {} does not exist", gpid.app_id)))?;
        let config = app
            .partitions
            .get(gpid.pidx as usize)
            .ok_or_else(|| Error::NotFound(format!("partition {gpid} does not exist")))?;
        let named: BTreeSet<&str> = [&action].iter().flat_map(|a| nodes_of(a)).collect();
        for node in named {
            if !self.is_alive(node) {
                return Err(Error::Refused(format!("node {node} is not ALIVE")));
            }
        }
        if let Some(to) = action
            .copies_to()
            .filter(|to| self.settings.black_list.contains(*to))
        {
            return Err(Error::Refused(format!(
                "node {to} is on the assign_secondary_black_list"
            )));
        }
        if !apply_to_config(&mut config.clone(), &action) {
            return Err(Error::Refused(format!(
                "{action} does not fit partition {gpid}: primary {}, secondaries [{}]",
                config.primary.as_deref().unwrap_or("-"),
                config.secondaries.join(",")
            )));
        }
        if self.inflight.contains_key(&gpid) || self.proposals.contains_key(&gpid) {
            return Err(Error::Refused(format!(
                "partition {gpid} already has an action in flight"
            )));
        }
        if force {
            self.start_action(action.clone(), now)?;
        } else {
            self.proposals.insert(gpid, action.clone());
            self.want_round();
        }
        Ok(action)
    }
}

/// The nodes an action names.
fn nodes_of(action: &Action) -> Vec<&str> {
    match action {
        Action::AssignPrimary { node, .. }
        | Action::UpgradeToPrimary { node, .. }
        | Action::AddSecondary { node, .. }
        | Action::RemoveSecondary { node, .. }
        | Action::DowngradeToSecondary { node, .. } => vec![node],
        Action::MovePrimary { from, to, .. }
        | Action::CopySecondary { from, to, .. }
        | Action::CopyPrimary { from, to, .. } => vec![from, to],
    }
}
