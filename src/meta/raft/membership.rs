//! Pure decisions on changing the group: who may join and how, and what a leave would do to
//! the quorum. The group ([`super::group`]) carries the plans out.
//!
//! The rules are Databend's and the Raft pitfalls' (`reference/meta-raft.md` §6): a node id
//! is never reused (a wiped member comes back with another incarnation and is refused; a
//! removed id is retired); a member already in the committed membership does not join again;
//! the last voter never leaves; a leave never removes the quorum of the voters that are up;
//! without `--force` it never leaves an even voter count; the leader hands leadership over
//! before it leaves.

use std::collections::{BTreeMap, BTreeSet};

use super::MetaNode;

/// The group as the leader sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    /// Voter ids.
    pub voters: BTreeSet<u64>,
    /// Learner ids (observers and voters still catching up).
    pub learners: BTreeSet<u64>,
    /// Every member's address and incarnation.
    pub nodes: BTreeMap<u64, MetaNode>,
    /// Ids that left: never used again.
    pub retired: BTreeSet<u64>,
}

/// What joining takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinPlan {
    /// Already what was asked (a restart with the same flags): nothing to do.
    Nothing,
    /// Add as a learner and leave it one (an observer).
    AddLearner,
    /// Add as a learner, wait until it has caught up, then make it a voter.
    AddVoter,
    /// It is a learner already: make it a voter once caught up.
    Promote,
}

/// Decides how node `id` at `node` joins, or why it may not.
pub fn plan_join(
    members: &Members,
    id: u64,
    node: &MetaNode,
    observer: bool,
) -> Result<JoinPlan, String> {
    if members.retired.contains(&id) {
        return Err(format!(
            "meta server id {id} belonged to a member that left; an id is never reused: start \
             the new meta server with another --id"
        ));
    }
    if let Some((other, _)) = members
        .nodes
        .iter()
        .find(|(other, n)| **other != id && n.address == node.address)
    {
        return Err(format!(
            "{} is already member {other}; remove it first (meta leave {other})",
            node.address
        ));
    }
    if let Some(known) = members.nodes.get(&id) {
        if known.incarnation != node.incarnation {
            return Err(format!(
                "meta server id {id} is a member with another data directory (incarnation {}, \
                 this one {}); a wiped or replaced meta server must join with a new --id \
                 after the old one leaves (meta leave {id} --force)",
                known.incarnation, node.incarnation
            ));
        }
        if known.address != node.address {
            return Err(format!(
                "meta server id {id} is a member at {}, not {}",
                known.address, node.address
            ));
        }
    }
    let plan = match (
        members.voters.contains(&id),
        members.learners.contains(&id),
        observer,
    ) {
        (true, _, true) => {
            return Err(format!(
                "meta server {id} is a voter; an observer never votes"
            ));
        }
        (true, _, false) => JoinPlan::Nothing,
        (false, true, true) => JoinPlan::Nothing,
        (false, true, false) => JoinPlan::Promote,
        (false, false, true) => JoinPlan::AddLearner,
        (false, false, false) => JoinPlan::AddVoter,
    };
    Ok(plan)
}

/// What leaving takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeavePlan {
    /// Remove a voter; first hand leadership over if it is the leader.
    RemoveVoter {
        /// It is the leader: transfer leadership first.
        transfer_first: bool,
    },
    /// Remove a learner (an observer, or a voter that never finished joining).
    RemoveLearner,
}

/// Decides how member `id` leaves, or why it may not. `up` holds the members heard from
/// recently (the leader included); `leader` is the current leader.
pub fn plan_leave(
    members: &Members,
    leader: u64,
    up: &BTreeSet<u64>,
    id: u64,
    force: bool,
) -> Result<LeavePlan, String> {
    if members.learners.contains(&id) {
        return Ok(LeavePlan::RemoveLearner);
    }
    if !members.voters.contains(&id) {
        return Err(format!("meta server {id} is not a member"));
    }
    if members.voters.len() == 1 {
        return Err(format!(
            "meta server {id} is the last voter; the group would be gone"
        ));
    }
    let remaining: BTreeSet<u64> = members
        .voters
        .iter()
        .copied()
        .filter(|v| *v != id)
        .collect();
    let quorum = remaining.len() / 2 + 1;
    let remaining_up = remaining.intersection(up).count();
    if remaining_up < quorum {
        return Err(format!(
            "without meta server {id}, {remaining_up} of the {} remaining voters are up, fewer \
             than their quorum of {quorum}: the group could not commit; start the members that \
             are down first",
            remaining.len()
        ));
    }
    if remaining.len().is_multiple_of(2) && !force {
        return Err(format!(
            "without meta server {id}, {} voters would remain, an even count that tolerates no \
             more failures than one fewer; add a meta server first, or use --force",
            remaining.len()
        ));
    }
    Ok(LeavePlan::RemoveVoter {
        transfer_first: id == leader,
    })
}

/// How many entries a voter may be behind the leader and still take over leadership.
pub const MAX_TRANSFER_LAG: u64 = 10;

/// Decides which member takes over leadership from `leader`: `to`, or else the most
/// caught-up voter that is up. Refuses a learner (it never votes), a member that is down,
/// and one more than [`MAX_TRANSFER_LAG`] entries behind (`lags`: id to entries behind).
pub fn plan_transfer(
    members: &Members,
    leader: u64,
    up: &BTreeSet<u64>,
    lags: &BTreeMap<u64, u64>,
    to: Option<u64>,
) -> Result<u64, String> {
    let lag = |id: &u64| lags.get(id).copied().unwrap_or(u64::MAX);
    let target = match to {
        Some(to) => to,
        None => members
            .voters
            .iter()
            .copied()
            .filter(|v| *v != leader && up.contains(v))
            .min_by_key(lag)
            .ok_or("no other voter is up to lead")?,
    };
    if target == leader {
        return Ok(target);
    }
    if !members.voters.contains(&target) {
        return Err(format!(
            "meta server {target} is not a voter; only a voter can lead"
        ));
    }
    if !up.contains(&target) {
        return Err(format!("meta server {target} is down"));
    }
    let behind = lag(&target);
    if behind > MAX_TRANSFER_LAG {
        return Err(format!(
            "meta server {target} is {behind} entries behind; wait until it catches up"
        ));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u64) -> MetaNode {
        MetaNode {
            address: format!("127.0.0.1:{}", 34600 + n),
            incarnation: format!("i{n}"),
        }
    }

    fn group(voters: &[u64], learners: &[u64]) -> Members {
        Members {
            voters: voters.iter().copied().collect(),
            learners: learners.iter().copied().collect(),
            nodes: voters
                .iter()
                .chain(learners)
                .map(|n| (*n, node(*n)))
                .collect(),
            retired: BTreeSet::new(),
        }
    }

    #[test]
    fn joining_again_with_the_same_flags_does_nothing_and_a_learner_is_promoted() {
        let g = group(&[1, 2, 3], &[4]);
        assert_eq!(plan_join(&g, 2, &node(2), false), Ok(JoinPlan::Nothing));
        assert_eq!(plan_join(&g, 4, &node(4), false), Ok(JoinPlan::Promote));
        assert_eq!(plan_join(&g, 4, &node(4), true), Ok(JoinPlan::Nothing));
        assert_eq!(plan_join(&g, 5, &node(5), false), Ok(JoinPlan::AddVoter));
        assert_eq!(plan_join(&g, 5, &node(5), true), Ok(JoinPlan::AddLearner));
        assert!(
            plan_join(&g, 2, &node(2), true).is_err(),
            "a voter is no observer"
        );
    }

    #[test]
    fn a_wiped_member_a_retired_id_and_a_taken_address_are_refused() {
        let mut g = group(&[1, 2, 3], &[]);
        let wiped = MetaNode {
            incarnation: "new".into(),
            ..node(2)
        };
        let err = plan_join(&g, 2, &wiped, false).unwrap_err();
        assert!(err.contains("another data directory"), "{err}");
        g.retired.insert(7);
        let err = plan_join(&g, 7, &node(7), false).unwrap_err();
        assert!(err.contains("never reused"), "{err}");
        let err = plan_join(&g, 9, &node(3), false).unwrap_err();
        assert!(err.contains("already member 3"), "{err}");
    }

    #[test]
    fn the_last_voter_and_a_quorum_breaking_leave_are_refused() {
        let all: BTreeSet<u64> = [1, 2, 3, 4, 5].into();
        let one = group(&[1], &[]);
        assert!(
            plan_leave(&one, 1, &all, 1, true)
                .unwrap_err()
                .contains("last voter")
        );
        let three = group(&[1, 2, 3], &[]);
        // 3 is down: removing 2 leaves {1, 3} with only 1 up, below their quorum of 2.
        let up: BTreeSet<u64> = [1, 2].into();
        let err = plan_leave(&three, 1, &up, 2, true).unwrap_err();
        assert!(err.contains("fewer than their quorum"), "{err}");
        // Removing the down member itself is fine (with --force: two voters remain).
        assert_eq!(
            plan_leave(&three, 1, &up, 3, true),
            Ok(LeavePlan::RemoveVoter {
                transfer_first: false
            })
        );
        assert!(
            plan_leave(&three, 1, &up, 9, true)
                .unwrap_err()
                .contains("not a member")
        );
    }

    #[test]
    fn leadership_goes_only_to_a_caught_up_voter_that_is_up() {
        let g = group(&[1, 2, 3], &[4]);
        let all: BTreeSet<u64> = [1, 2, 3, 4].into();
        let lags: BTreeMap<u64, u64> = [(2, 0), (3, 50), (4, 0)].into();
        assert_eq!(
            plan_transfer(&g, 1, &all, &lags, None),
            Ok(2),
            "the most caught up"
        );
        let err = plan_transfer(&g, 1, &all, &lags, Some(3)).unwrap_err();
        assert!(err.contains("50 entries behind"), "{err}");
        let err = plan_transfer(&g, 1, &all, &lags, Some(4)).unwrap_err();
        assert!(err.contains("not a voter"), "{err}");
        let up: BTreeSet<u64> = [1, 3].into();
        let err = plan_transfer(&g, 1, &up, &lags, Some(2)).unwrap_err();
        assert!(err.contains("down"), "{err}");
        let err = plan_transfer(&g, 1, &up, &lags, None).unwrap_err();
        assert!(err.contains("behind"), "the only voter up lags: {err}");
        let caught_up: BTreeMap<u64, u64> = [(2, 0), (3, 2)].into();
        assert_eq!(plan_transfer(&g, 1, &up, &caught_up, None), Ok(3));
        let none: BTreeSet<u64> = [1].into();
        assert!(plan_transfer(&g, 1, &none, &lags, None).is_err());
    }

    #[test]
    fn an_even_count_needs_force_and_the_leader_transfers_first() {
        let three = group(&[1, 2, 3], &[]);
        let all: BTreeSet<u64> = [1, 2, 3].into();
        let err = plan_leave(&three, 1, &all, 3, false).unwrap_err();
        assert!(err.contains("even count"), "{err}");
        let four = group(&[1, 2, 3, 4], &[5]);
        let all: BTreeSet<u64> = [1, 2, 3, 4, 5].into();
        assert_eq!(
            plan_leave(&four, 4, &all, 4, false),
            Ok(LeavePlan::RemoveVoter {
                transfer_first: true
            })
        );
        assert_eq!(
            plan_leave(&four, 1, &all, 5, false),
            Ok(LeavePlan::RemoveLearner)
        );
    }
}
