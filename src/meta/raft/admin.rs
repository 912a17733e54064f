//! The leader's side of changing the group: join (add as a learner, wait until caught up,
//! then make a voter), leave (after the checks of [`super::membership`]; the leader hands
//! leadership over first), and leadership transfer (only to a voter that is up and caught
//! up). [`Member::admin`] runs one at a time, and forwards a request that reached a
//! follower to the leader, once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::{ChangeMembers, ServerState};

use super::group::Member;
use super::membership::{JoinPlan, LeavePlan, plan_join, plan_leave, plan_transfer};
use super::network::{Request, Response, call, call_incarnation};
use super::{Command, MetaNode};

impl Member {
    /// Join, leave and transfer: carried out on the leader, forwarded there once otherwise.
    pub(super) async fn admin(&self, request: Request, forwarded: bool) -> Response {
        if let Request::Forward(inner) = request {
            return Box::pin(self.admin(*inner, true)).await;
        }
        if !self.is_leader() {
            if forwarded {
                return Response::Failed("not the leader (a forwarded request)".into());
            }
            let Some((_, address)) = self.leader() else {
                return Response::Failed("no leader is known yet; try again".into());
            };
            let forward = Request::Forward(Box::new(request));
            return call(
                self.transport.as_ref(),
                &address,
                forward,
                self.admin_timeout() * 2,
            )
            .await
            .unwrap_or_else(|e| Response::Failed(format!("forwarding to {address}: {e}")));
        }
        let _one_at_a_time = self.admin.lock().await;
        // A leader just elected has not committed in its term yet: wait until a quorum
        // confirms it (a deposed one learns it here).
        if let Err(e) = self.ensure_leader().await {
            return Response::Failed(format!("not the leader any more: {e:?}"));
        }
        match request {
            Request::Join { id, node, observer } => self.join_here(id, node, observer).await,
            Request::Leave { id, force } => self.leave_here(id, force).await,
            Request::Transfer { to } => match self.transfer_here(to).await {
                Ok(to) => Response::Done(format!("meta server {to} leads")),
                Err(r) => r,
            },
            other => Response::Failed(format!("not an admin request: {other:?}")),
        }
    }

    /// The members that answer a status request within two election timeouts (asked all
    /// at once; this member counts as up).
    async fn up(&self) -> BTreeSet<u64> {
        let timeout = Duration::from_millis(self.timings.election_min_ms * 2);
        let probes = self
            .members()
            .nodes
            .into_iter()
            .filter(|(id, _)| *id != self.id)
            .map(|(id, node)| async move {
                let answer = call_incarnation(
                    self.transport.as_ref(),
                    &node.address,
                    &node.incarnation,
                    Request::Status,
                    timeout,
                )
                .await;
                matches!(answer, Ok(Response::Status(_))).then_some(id)
            });
        let mut up: BTreeSet<u64> = futures_util::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .collect();
        up.insert(self.id);
        up
    }

    pub(super) async fn join_here(&self, id: u64, node: MetaNode, observer: bool) -> Response {
        let plan = match plan_join(&self.members(), id, &node, observer) {
            Ok(plan) => plan,
            Err(why) => return Response::Refused(why),
        };
        if plan == JoinPlan::Nothing {
            return Response::Done(format!("meta server {id} is a member already"));
        }
        // Add (or re-add) as a learner and wait until it has caught up: a voter that cannot
        // keep up would stall every commit.
        let caught_up =
            tokio::time::timeout(self.admin_timeout(), self.raft.add_learner(id, node, true)).await;
        let not_caught_up = || {
            Response::Failed(format!(
                "meta server {id} did not catch up within {:?}; it stays a learner, not a voter \
                 (join again once it is up)",
                self.admin_timeout()
            ))
        };
        match caught_up {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Response::Failed(format!("adding learner {id}: {e}")),
            Err(_) => return not_caught_up(),
        }
        if !self.await_caught_up(id).await {
            return not_caught_up();
        }
        if plan == JoinPlan::AddLearner {
            return Response::Done(format!("meta server {id} joined as an observer"));
        }
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        match self.raft.change_membership(change, false).await {
            Ok(_) => Response::Done(format!("meta server {id} joined as a voter")),
            Err(e) => Response::Failed(format!("making {id} a voter: {e}")),
        }
    }

    /// Waits until member `id` has acknowledged the leader's whole log (within the admin
    /// timeout).
    async fn await_caught_up(&self, id: u64) -> bool {
        let deadline = tokio::time::Instant::now() + self.admin_timeout();
        loop {
            let metrics = self.metrics();
            let last = metrics.last_log_index;
            let matched = metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map(|l| l.index);
            if last.is_some() && matched >= last {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(self.timings.heartbeat_ms)).await;
        }
    }

    pub(super) async fn leave_here(&self, id: u64, force: bool) -> Response {
        let plan = match plan_leave(&self.members(), self.id, &self.up().await, id, force) {
            Ok(plan) => plan,
            Err(why) => return Response::Refused(why),
        };
        let change = match plan {
            LeavePlan::RemoveLearner => ChangeMembers::RemoveNodes(BTreeSet::from([id])),
            LeavePlan::RemoveVoter {
                transfer_first: true,
            } => {
                let new_leader = match self.transfer_here(None).await {
                    Ok(to) => to,
                    Err(r) => return r,
                };
                let Some(address) = self
                    .members()
                    .nodes
                    .get(&new_leader)
                    .map(|n| n.address.clone())
                else {
                    return Response::Failed(format!("meta server {new_leader} has no address"));
                };
                let leave = Request::Forward(Box::new(Request::Leave { id, force }));
                return call(
                    self.transport.as_ref(),
                    &address,
                    leave,
                    self.admin_timeout(),
                )
                .await
                .unwrap_or_else(|e| Response::Failed(format!("{address}: {e}")));
            }
            LeavePlan::RemoveVoter { .. } => ChangeMembers::RemoveVoters(BTreeSet::from([id])),
        };
        if let Err(e) = self.raft.change_membership(change, false).await {
            return Response::Failed(format!("removing meta server {id}: {e}"));
        }
        match self.raft.client_write(Command::RetireId(id)).await {
            Ok(_) => Response::Done(format!("meta server {id} left")),
            Err(e) => Response::Failed(format!("meta server {id} left, retiring its id: {e}")),
        }
    }

    /// Hands leadership to `to` (or the most caught-up voter that is up) and waits until
    /// it leads. Refuses a learner, a member that is down and one that lags.
    pub(super) async fn transfer_here(&self, to: Option<u64>) -> Result<u64, Response> {
        let members = self.members();
        let up = self.up().await;
        let lag: BTreeMap<u64, u64> = self.status().lags.into_iter().collect();
        let target = plan_transfer(&members, self.id, &up, &lag, to).map_err(Response::Refused)?;
        if target == self.id {
            return Ok(target);
        }
        self.raft
            .trigger()
            .transfer_leader(target)
            .await
            .map_err(|e| Response::Failed(e.to_string()))?;
        self.raft
            .wait(Some(self.admin_timeout()))
            .metrics(
                |m| m.current_leader == Some(target) && m.state != ServerState::Leader,
                "leadership moves",
            )
            .await
            .map_err(|e| {
                Response::Failed(format!("meta server {target} did not take over: {e}"))
            })?;
        Ok(target)
    }
}
