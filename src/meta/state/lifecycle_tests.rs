//! Unit tests of nodes leaving on purpose: decommission (drain order, finish at steady,
//! durability, a death midway, refusals), drop_node and its rails, and a planned stop.

use super::tests::{INC, beacon_assigned, fast_state, join, upgrade_learners};
use super::*;
use crate::error::Error;
use crate::meta::lifecycle::NodeLifecycle;
use crate::meta::store::{MemStore, RedbStore};

/// Runs rounds (every node beaconing what it holds, primaries carrying out what is in
/// flight) until `done` or 50 rounds; returns the rounds it took.
fn drive(
    state: &mut MetaState,
    nodes: &[String],
    now: Instant,
    done: impl Fn(&MetaState) -> bool,
) -> usize {
    for round in 0..50 {
        if done(state) {
            return round;
        }
        beacon_assigned(state, nodes, now);
        state.round(now).unwrap();
        upgrade_learners(state);
    }
    panic!("not done after 50 rounds");
}

fn members_anywhere(state: &MetaState, node: &str) -> bool {
    state.is_member(node)
}

#[test]
fn a_decommission_moves_primaries_first_and_ends_decommissioned_at_steady() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 8, 3, false, BTreeMap::new()).unwrap();
    assert_eq!(state.level().stored, MetaLevel::Steady);
    let leaving = addrs[3].clone();
    let (_, primaries, _) = state.holdings(&leaving);
    assert!(primaries > 0, "the node holds primaries to move");
    let outcome = state
        .decommission(std::slice::from_ref(&leaving), false, now)
        .unwrap();
    assert!(outcome.started, "{:?}", outcome.checks);
    assert_eq!(state.life(&leaving), NodeLifecycle::Decommissioning);
    beacon_assigned(&mut state, &addrs, now);
    state.round(now).unwrap();
    // The first round moves its primaries away, without a copy.
    let moves: Vec<&Action> = state.inflight.values().map(|f| &f.action).collect();
    assert!(
        moves
            .iter()
            .all(|a| matches!(a, Action::MovePrimary { from, .. } if *from == leaving)),
        "{moves:?}"
    );
    assert_eq!(moves.len(), primaries as usize);
    drive(&mut state, &addrs, now, |s| {
        s.life(&leaving) == NodeLifecycle::Decommissioned
    });
    assert!(!members_anywhere(&state, &leaving));
    let app = state.app_by_name("t").unwrap();
    assert!(app.partitions.iter().all(|p| p.members().count() == 3));
    assert_eq!(
        state.node_counts(),
        (3, 0),
        "a decommissioned node does not count"
    );
    // It never receives a replica again.
    state.create_app("u", 4, 3, false, BTreeMap::new()).unwrap();
    assert!(!members_anywhere(&state, &leaving));
}

#[test]
fn a_decommission_survives_a_meta_restart_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let (addrs, leaving) = {
        let store = RedbStore::open(dir.path()).unwrap();
        let mut state = MetaState::open(MetaConfig::fast(), Box::new(store), now).unwrap();
        let addrs = join(&mut state, 4, now);
        state.create_app("t", 4, 3, false, BTreeMap::new()).unwrap();
        let leaving = addrs[0].clone();
        assert!(
            state
                .decommission(std::slice::from_ref(&leaving), false, now)
                .unwrap()
                .started
        );
        (addrs, leaving)
    };
    let store = RedbStore::open(dir.path()).unwrap();
    let mut state = MetaState::open(MetaConfig::fast(), Box::new(store), now).unwrap();
    assert_eq!(state.life(&leaving), NodeLifecycle::Decommissioning);
    let status = state.drain_status(now);
    assert_eq!(status[0].life.replicas_total, state.holdings(&leaving).0);
    drive(&mut state, &addrs, now, |s| {
        s.life(&leaving) == NodeLifecycle::Decommissioned
    });
    assert!(!members_anywhere(&state, &leaving));
}

#[test]
fn a_decommissioning_node_that_dies_has_its_replicas_rebuilt_at_once() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 8, 3, false, BTreeMap::new()).unwrap();
    assert_eq!(
        state.settings().assign_delay_ms,
        600_000,
        "a long assign delay"
    );
    let leaving = addrs[3].clone();
    assert!(
        state
            .decommission(std::slice::from_ref(&leaving), false, now)
            .unwrap()
            .started
    );
    let later = now + state.config().grace + Duration::from_millis(1);
    let others = &addrs[..3];
    beacon_assigned(&mut state, others, later);
    state.check_nodes(later).unwrap();
    assert!(!members_anywhere(&state, &leaving));
    // One round promotes where it was primary, the next adds the missing secondaries.
    state.round(later).unwrap();
    state.round(later).unwrap();
    let short: Vec<Gpid> = state
        .app_by_name("t")
        .unwrap()
        .partitions
        .iter()
        .filter(|p| p.members().count() < 3)
        .map(|p| Gpid::new(1, p.pidx))
        .collect();
    assert!(!short.is_empty());
    assert!(
        short.iter().all(|g| state.inflight.contains_key(g)),
        "every partition it left gets a new secondary now, not after the assign delay"
    );
    assert_eq!(
        state.life(&leaving),
        NodeLifecycle::Dropped,
        "holding nothing and dead, it is retired"
    );
}

#[test]
fn failed_checks_refuse_and_change_nothing() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 3, now);
    state.create_app("t", 4, 3, false, BTreeMap::new()).unwrap();
    let outcome = state.decommission(&addrs[..1], false, now).unwrap();
    assert!(!outcome.started);
    let failed: Vec<&str> = outcome
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name)
        .collect();
    assert_eq!(failed, ["enough_nodes", "live_ratio"]);
    assert_eq!(state.life(&addrs[0]), NodeLifecycle::Normal);
    let unknown = state
        .decommission(&["10.0.0.1:1".to_string()], true, now)
        .unwrap();
    assert!(!unknown.checks[0].ok, "nodes_exist");
}

#[test]
fn a_dropped_nodes_old_directory_is_refused_and_a_wiped_one_joins_as_new() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 4, 3, false, BTreeMap::new()).unwrap();
    let victim = addrs[3].clone();
    let refused = state.drop_node(&victim, false, now).unwrap_err();
    assert!(matches!(refused, Error::Unsafe(_)), "ALIVE: {refused}");
    let later = now + state.config().grace + Duration::from_millis(1);
    beacon_assigned(&mut state, &addrs[..3], later);
    state.check_nodes(later).unwrap();
    assert!(state.drop_node(&victim, false, later).unwrap().is_empty());
    assert!(state.list_nodes(later).iter().all(|n| n.address != victim));
    assert_eq!(state.dropped_nodes()[0].address, victim);
    assert_eq!(state.node_counts(), (3, 0), "a dropped node does not count");
    let again = state
        .beacon(&victim, INC, BTreeMap::new(), later)
        .unwrap_err();
    assert!(again.to_string().contains("dropped"), "{again}");
    state
        .beacon(&victim, "inc-wiped", BTreeMap::new(), later)
        .unwrap();
    assert_eq!(state.life(&victim), NodeLifecycle::Normal);
    assert!(state.is_alive(&victim));
}

#[test]
fn dropping_a_partitions_last_replica_needs_force_and_says_what_is_lost() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 3, now);
    state.create_app("t", 3, 1, false, BTreeMap::new()).unwrap();
    let victim = state.app_by_name("t").unwrap().partitions[0]
        .primary
        .clone()
        .unwrap();
    let others: Vec<String> = addrs.iter().filter(|a| **a != victim).cloned().collect();
    let later = now + state.config().grace + Duration::from_millis(1);
    beacon_assigned(&mut state, &others, later);
    state.check_nodes(later).unwrap();
    let lost = state.last_replicas_on(&victim);
    assert!(!lost.is_empty());
    let err = state.drop_node(&victim, false, later).unwrap_err();
    assert!(
        matches!(err, Error::Unsafe(_)) && err.to_string().contains("last replica"),
        "{err}"
    );
    assert_eq!(state.drop_node(&victim, true, later).unwrap(), lost);
    assert_eq!(state.life(&victim), NodeLifecycle::Dropped);
}

#[test]
fn a_stopping_node_hands_its_primaries_over_then_leaves_at_once() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 8, 3, false, BTreeMap::new()).unwrap();
    let node = addrs[0].clone();
    let left = state
        .leave(&node, INC, LeaveStage::MovePrimaries, now)
        .unwrap();
    assert!(left > 0);
    beacon_assigned(&mut state, &addrs, now);
    state.round(now).unwrap();
    upgrade_learners(&mut state);
    assert_eq!(state.holdings(&node).1, 0, "no primary left on it");
    assert!(
        state.holdings(&node).0 > 0,
        "its secondaries stay until it goes"
    );
    let stale = state.leave(&node, "another-dir", LeaveStage::Gone, now);
    assert!(stale.is_err(), "another incarnation cannot speak for it");
    state.leave(&node, INC, LeaveStage::Gone, now).unwrap();
    assert!(!state.is_alive(&node), "gone before the grace period");
    assert!(!members_anywhere(&state, &node));
}

#[test]
fn a_queued_decommission_is_not_shown_before_it_is_durable() {
    let now = Instant::now();
    let mut state = MetaState::open(MetaConfig::fast(), Box::new(MemStore::new()), now).unwrap();
    let addrs = join(&mut state, 4, now);
    let (_store, _rx) = state.detach_store().unwrap();
    assert!(state.decommission(&addrs[..1], false, now).unwrap().started);
    assert!(state.drain_status(now).is_empty(), "not durable yet");
}

#[test]
fn a_stalled_decommission_names_what_blocks_it() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 4, 3, false, BTreeMap::new()).unwrap();
    assert!(state.decommission(&addrs[..1], false, now).unwrap().started);
    // Another node dies: what the draining node shares with the two left has nowhere to go.
    let later = now + state.config().grace + Duration::from_millis(1);
    let living = vec![addrs[0].clone(), addrs[2].clone(), addrs[3].clone()];
    beacon_assigned(&mut state, &living, later);
    state.check_nodes(later).unwrap();
    for _ in 0..5 {
        beacon_assigned(&mut state, &living, later);
        state.round(later).unwrap();
        upgrade_learners(&mut state);
    }
    let view = &state.drain_status(later)[0];
    assert!(view.replicas_left > 0);
    assert!(
        view.blockers.is_empty(),
        "not idle long enough to be a stall yet"
    );
    let stalled = later + Duration::from_secs(30);
    beacon_assigned(&mut state, &living, stalled);
    let view = &state.drain_status(stalled)[0];
    assert!(view.idle_ms >= 30_000, "{view:?}");
    assert!(
        view.blockers
            .iter()
            .any(|(_, why)| why.contains("no eligible target")),
        "{:?}",
        view.blockers
    );
}

#[test]
fn a_node_decommissioned_first_takes_nothing_from_the_rest_of_its_batch() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 5, now);
    state.create_app("t", 8, 3, false, BTreeMap::new()).unwrap();
    // One of them is done first while the other still drains (found by CI: the first one
    // then received a copy from the second).
    let (a, b) = (addrs[3].clone(), addrs[4].clone());
    assert!(
        state
            .decommission(&[a.clone(), b.clone()], false, now)
            .unwrap()
            .started
    );
    for _ in 0..50 {
        if state.life(&b) == NodeLifecycle::Decommissioned
            && state.life(&a) == NodeLifecycle::Decommissioned
        {
            break;
        }
        beacon_assigned(&mut state, &addrs, now);
        state.round(now).unwrap();
        upgrade_learners(&mut state);
        for node in [&a, &b] {
            if state.life(node) == NodeLifecycle::Decommissioned {
                assert_eq!(
                    state.holdings(node).0,
                    0,
                    "{node} took a replica after it was done"
                );
            }
        }
    }
    assert_eq!(state.life(&b), NodeLifecycle::Decommissioned);
}
