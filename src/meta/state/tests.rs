//! Unit tests of the meta state: registration and liveness, DDL and its level checks,
//! drop/recall/expiry, and durability across a reopen.

use super::*;
use crate::error::Error;
use crate::meta::faulty_store::FaultyStore;
use crate::meta::store::{MemStore, RedbStore};
use crate::model::{Gpid, ReplicaData, ReplicaReport, ReplicaRole};

/// The incarnation every test node beacons with.
pub(super) const INC: &str = "inc-1";

pub(super) fn fast_state() -> (MetaState, Instant) {
    let now = Instant::now();
    (
        MetaState::open(MetaConfig::fast(), Box::new(MemStore::new()), now).unwrap(),
        now,
    )
}

pub(super) fn join(state: &mut MetaState, n: usize, now: Instant) -> Vec<String> {
    (1..=n)
        .map(|i| {
            let addr = format!("127.0.0.1:{}", 34800 + i);
            state.beacon(&addr, INC, BTreeMap::new(), now).unwrap();
            addr
        })
        .collect()
}

#[test]
fn beacons_register_nodes_and_silence_makes_them_unalive() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 3, now);
    assert_eq!(state.node_counts(), (3, 0));
    let grace = state.config().grace;
    assert!(
        state.check_nodes(now + grace).unwrap().is_empty(),
        "exactly the grace period is not past it"
    );
    state
        .beacon(&addrs[0], INC, BTreeMap::new(), now + grace)
        .unwrap();
    let dead = state
        .check_nodes(now + grace + Duration::from_millis(1))
        .unwrap();
    assert_eq!(dead, vec![addrs[1].clone(), addrs[2].clone()]);
    assert_eq!(state.node_counts(), (1, 2));
    assert!(
        state
            .check_nodes(now + grace * 3)
            .unwrap()
            .contains(&addrs[0])
    );
    state
        .beacon(&addrs[1], INC, BTreeMap::new(), now + grace * 3)
        .unwrap();
    assert!(state.is_alive(&addrs[1]));
    assert!(
        state
            .beacon("not-an-address", INC, BTreeMap::new(), now)
            .is_err()
    );
}

#[test]
fn create_places_every_partition_on_distinct_alive_nodes() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    let (id, existed) = state
        .create_app("t1", 8, 3, false, BTreeMap::new())
        .unwrap();
    assert!(!existed);
    let app = state.app_by_name("t1").unwrap();
    assert_eq!(app.record.app_id, id);
    for p in &app.partitions {
        let members: BTreeSet<&str> = p.members().collect();
        assert_eq!(members.len(), 3);
        assert!(members.iter().all(|m| addrs.iter().any(|a| a == m)));
    }
    let nodes = state.list_nodes(now);
    let totals: Vec<u32> = nodes
        .iter()
        .map(|n| n.primary_count + n.secondary_count)
        .collect();
    assert_eq!(totals, vec![6, 6, 6, 6]);
    let assigned = state.assignments(&addrs[0]);
    assert_eq!(assigned.len(), 6);
    assert_eq!(
        assigned
            .iter()
            .filter(|a| a.role == crate::model::ReplicaRole::Primary)
            .count(),
        2
    );
}

#[test]
fn create_refuses_too_few_nodes_and_skips_unalive_and_black_listed() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.settings_mut().black_list.insert(addrs[3].clone());
    state.create_app("t", 4, 3, false, BTreeMap::new()).unwrap();
    assert!(
        state.assignments(&addrs[3]).is_empty(),
        "black-listed node got a replica"
    );
    let err = state
        .create_app("t2", 4, 4, false, BTreeMap::new())
        .unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err}");
    assert!(err.to_string().contains("there are 3"), "{err}");
}

#[test]
fn create_refuses_sizes_that_would_exhaust_memory() {
    let (mut state, now) = fast_state();
    join(&mut state, 3, now);
    for (p, r) in [(u32::MAX, 1), (4097, 3), (8, 10)] {
        let err = state.create_app("big", p, r, false, BTreeMap::new());
        assert!(
            matches!(err, Err(Error::InvalidInput(_))),
            "{p} x {r}: {err:?}"
        );
    }
    assert!(state.planned_app_by_name("big").is_err(), "nothing created");
}

#[test]
fn existing_name_is_success_unless_fail_if_exist() {
    let (mut state, now) = fast_state();
    join(&mut state, 3, now);
    let (id, _) = state.create_app("t", 2, 3, false, BTreeMap::new()).unwrap();
    assert_eq!(
        state.create_app("t", 2, 3, false, BTreeMap::new()).unwrap(),
        (id, true)
    );
    let err = state
        .create_app("t", 2, 3, true, BTreeMap::new())
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)));
    assert!(matches!(
        state.create_app("", 2, 3, false, BTreeMap::new()),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn ddl_is_refused_while_freezed_or_auto_frozen() {
    let (mut state, now) = fast_state();
    join(&mut state, 2, now);
    let err = state
        .create_app("t", 2, 2, false, BTreeMap::new())
        .unwrap_err();
    assert!(
        err.to_string().contains("fl_freezed"),
        "auto-frozen with 2 < 3 nodes: {err}"
    );
    join(&mut state, 3, now);
    state.set_level(MetaLevel::Freezed);
    assert!(matches!(
        state.create_app("t", 2, 2, false, BTreeMap::new()),
        Err(Error::Refused(_))
    ));
    let view = state.set_level(MetaLevel::Steady);
    assert_eq!(
        (view.old, view.stored, view.effective),
        (MetaLevel::Freezed, MetaLevel::Steady, MetaLevel::Steady)
    );
    state.create_app("t", 2, 2, false, BTreeMap::new()).unwrap();
}

#[test]
fn drop_recall_and_expiry() {
    let (mut state, now) = fast_state();
    join(&mut state, 3, now);
    let (id, _) = state.create_app("t", 2, 3, false, BTreeMap::new()).unwrap();
    let (dropped, expire) = state.drop_app("t", Some(Duration::from_secs(60))).unwrap();
    assert_eq!(dropped, id);
    assert!(matches!(state.app_by_name("t"), Err(Error::NotFound(_))));
    assert!(matches!(state.drop_app("t", None), Err(Error::NotFound(_))));
    // The name is free again while the dropped table waits.
    let (id2, _) = state.create_app("t", 2, 3, false, BTreeMap::new()).unwrap();
    assert_ne!(id2, id);
    assert!(matches!(
        state.recall_app(id, None),
        Err(Error::AlreadyExists(_))
    ));
    let record = state.recall_app(id, Some("t_old")).unwrap();
    assert_eq!(
        (record.status, record.app_name.as_str()),
        (AppStatus::Available, "t_old")
    );
    assert!(
        matches!(state.recall_app(id, None), Err(Error::Refused(_))),
        "not dropped"
    );
    state.drop_app("t_old", Some(Duration::ZERO)).unwrap();
    assert!(expire > 0);
    assert_eq!(state.purge_expired(now_ms()).unwrap(), vec![id]);
    assert!(matches!(
        state.recall_app(id, None),
        Err(Error::NotFound(_))
    ));
    // Ids are never reused, even after the highest one is gone.
    state.drop_app("t", Some(Duration::ZERO)).unwrap();
    state.purge_expired(now_ms()).unwrap();
    let (id3, _) = state.create_app("u", 1, 3, false, BTreeMap::new()).unwrap();
    assert!(id3 > id2);
}

#[test]
fn restart_keeps_tables_and_placements_and_gives_nodes_a_fresh_grace() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let (placement, addrs) = {
        let store = RedbStore::open(dir.path()).unwrap();
        let mut state = MetaState::open(MetaConfig::fast(), Box::new(store), start).unwrap();
        let addrs = join(&mut state, 4, start);
        state.create_app("t", 8, 3, false, BTreeMap::new()).unwrap();
        state.set_level(MetaLevel::Lively);
        state.settings_mut().assign_delay_ms = 10;
        (state.app_by_name("t").unwrap().partitions.clone(), addrs)
    };
    let later = start + Duration::from_secs(3600);
    let store = RedbStore::open(dir.path()).unwrap();
    let mut state = MetaState::open(MetaConfig::fast(), Box::new(store), later).unwrap();
    assert_eq!(state.app_by_name("t").unwrap().partitions, placement);
    assert_eq!(
        state.level().stored,
        MetaLevel::Steady,
        "the level is not persisted"
    );
    assert_eq!(
        state.settings().assign_delay_ms,
        600_000,
        "settings are not persisted"
    );
    assert_eq!(
        state.node_counts(),
        (4, 0),
        "known nodes start with a fresh grace period"
    );
    assert!(state.list_nodes(later).iter().all(|n| !n.reported));
    state
        .beacon(
            &addrs[0],
            INC,
            BTreeMap::new(),
            later + state.config().grace,
        )
        .unwrap();
    let dead = state
        .check_nodes(later + state.config().grace + Duration::from_millis(1))
        .unwrap();
    assert_eq!(dead.len(), 3);
    let err = state
        .create_app("u", 1, 1, false, BTreeMap::new())
        .unwrap_err();
    assert!(
        err.to_string().contains("fl_freezed"),
        "1 of 4 alive auto-freezes: {err}"
    );
}

/// Beacons every node with exactly what it is assigned (as a replica server would after
/// applying the last reply).
pub(super) fn beacon_assigned(state: &mut MetaState, addrs: &[String], now: Instant) {
    for a in addrs {
        let held = held(state, a);
        state.beacon(a, INC, held, now).unwrap();
    }
}

/// Valid reports of everything `addr` is assigned.
pub(super) fn held(state: &MetaState, addr: &str) -> BTreeMap<Gpid, ReplicaReport> {
    state
        .assignments(addr)
        .iter()
        .map(|x| (x.gpid, ReplicaReport::valid(x.ballot, 0, 0)))
        .collect()
}

/// Every primary asks for what is in flight on its partition, as a replica server's
/// primary would: the upgrade of a learner that caught up, or a proposed move.
pub(super) fn upgrade_learners(state: &mut MetaState) {
    let flights: Vec<(Gpid, Action)> = state
        .inflight
        .iter()
        .map(|(g, f)| (*g, f.action.clone()))
        .collect();
    for (gpid, action) in flights {
        let config = state.partition(gpid).unwrap().clone();
        let primary = config.primary.clone().unwrap();
        let request = match &action {
            Action::MovePrimary { to, .. } => PrimaryRequest::MovePrimary(to.clone()),
            Action::DowngradeToSecondary { .. } => PrimaryRequest::Downgrade,
            other => PrimaryRequest::UpgradeLearner(other.copies_to().unwrap().to_string()),
        };
        let (applied, _) = state
            .update_partition(gpid, config.ballot, &primary, request, Instant::now())
            .unwrap();
        assert!(applied);
    }
}

#[test]
fn a_learner_whose_primary_dies_is_given_up_so_cure_can_promote() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 1, 3, false, BTreeMap::new()).unwrap();
    state.set_level(MetaLevel::Lively);
    state.settings_mut().assign_delay_ms = 0;
    let gpid = Gpid { app_id: 1, pidx: 0 };
    let config = state.partition(gpid).unwrap().clone();
    let primary = config.primary.clone().unwrap();
    let victim = config.secondaries[0].clone();
    state
        .update_partition(
            gpid,
            config.ballot,
            &primary,
            PrimaryRequest::Remove(victim),
            now,
        )
        .unwrap();
    beacon_assigned(&mut state, &addrs, now);
    state.round(now).unwrap();
    assert_eq!(state.actions_in_flight(), 1, "a learner is added");
    let later = now + state.config().grace + Duration::from_millis(1);
    let others: Vec<String> = addrs.iter().filter(|a| **a != primary).cloned().collect();
    beacon_assigned(&mut state, &others, later);
    state.check_nodes(later).unwrap();
    assert_eq!(state.partition(gpid).unwrap().primary, None);
    assert_eq!(state.actions_in_flight(), 0, "no primary to learn from");
    state.round(later).unwrap();
    assert!(
        state.partition(gpid).unwrap().primary.is_some(),
        "cure promotes a secondary"
    );
}

#[test]
fn primary_requests_are_compare_and_set_on_the_ballot_and_only_from_the_primary() {
    let (mut state, now) = fast_state();
    join(&mut state, 3, now);
    state.create_app("t", 1, 3, false, BTreeMap::new()).unwrap();
    let gpid = Gpid { app_id: 1, pidx: 0 };
    let config = state.partition(gpid).unwrap().clone();
    let primary = config.primary.clone().unwrap();
    let victim = config.secondaries[0].clone();
    let remove = || PrimaryRequest::Remove(victim.clone());
    let (applied, now_config) = state
        .update_partition(gpid, config.ballot - 1, &primary, remove(), now)
        .unwrap();
    assert!(!applied, "a stale ballot changes nothing");
    assert_eq!(
        now_config, config,
        "and gets the current configuration back"
    );
    let (applied, _) = state
        .update_partition(gpid, config.ballot, &victim, remove(), now)
        .unwrap();
    assert!(!applied, "only the primary may ask");
    let (applied, after) = state
        .update_partition(gpid, config.ballot, &primary, remove(), now)
        .unwrap();
    assert!(applied);
    assert_eq!(after.ballot, config.ballot + 1);
    assert!(!after.secondaries.contains(&victim));
    assert_eq!(after.last_drops.last(), Some(&victim));
    assert!(matches!(
        state.update_partition(
            gpid,
            after.ballot,
            &primary,
            PrimaryRequest::UpgradeLearner("127.0.0.1:1".into()),
            now,
        ),
        Err(Error::Refused(_))
    ));
    state.set_level(MetaLevel::Blind);
    assert!(
        state
            .update_partition(gpid, after.ballot, &primary, remove(), now)
            .is_err(),
        "held at blind"
    );
}

#[test]
fn a_dead_node_leaves_configurations_and_cure_promotes_at_steady_not_at_freezed() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 5, now);
    state.create_app("t", 8, 3, false, BTreeMap::new()).unwrap();
    let later = now + state.config().grace + Duration::from_millis(1);
    beacon_assigned(&mut state, &addrs[..4], later);
    state.check_nodes(later).unwrap();
    let victim = &addrs[4];
    let app = state.app_by_name("t").unwrap();
    assert!(
        app.partitions
            .iter()
            .all(|p| !p.members().any(|m| m == victim))
    );
    assert!(
        app.partitions
            .iter()
            .any(|p| p.last_drops == [victim.clone()])
    );
    let headless = app
        .partitions
        .iter()
        .filter(|p| p.primary.is_none())
        .count();
    assert!(headless > 0, "the victim led some partitions");
    state.set_level(MetaLevel::Freezed);
    assert!(state.round(later).unwrap().held, "no cure at freezed");
    state.set_level(MetaLevel::Steady);
    let report = state.round(later).unwrap();
    assert_eq!(
        report.started.len(),
        headless,
        "one promotion per headless partition: {report:?}"
    );
    assert!(
        state
            .app_by_name("t")
            .unwrap()
            .partitions
            .iter()
            .all(|p| p.primary.is_some())
    );
}

#[test]
fn deaths_wait_while_blind_and_apply_when_the_level_rises() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 4, 3, false, BTreeMap::new()).unwrap();
    let before = state.app_by_name("t").unwrap().partitions.clone();
    state.set_level(MetaLevel::Blind);
    let later = now + state.config().grace + Duration::from_millis(1);
    beacon_assigned(&mut state, &addrs[..3], later);
    assert_eq!(state.check_nodes(later).unwrap(), vec![addrs[3].clone()]);
    assert_eq!(
        state.app_by_name("t").unwrap().partitions,
        before,
        "deferred at blind"
    );
    state.set_level(MetaLevel::Steady);
    state.round(later).unwrap();
    let after = &state.app_by_name("t").unwrap().partitions;
    assert!(after.iter().all(|p| !p.members().any(|m| m == addrs[3])));
}

#[test]
fn steady_counts_balancer_moves_and_lively_makes_them_through_learners() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 3, now);
    state.create_app("t", 8, 3, false, BTreeMap::new()).unwrap();
    let new = "127.0.0.1:34809".to_string();
    state.beacon(&new, INC, BTreeMap::new(), now).unwrap();
    let mut all = addrs.clone();
    all.push(new.clone());
    beacon_assigned(&mut state, &all, now);
    let report = state.round(now).unwrap();
    assert!(
        report.started.is_empty(),
        "steady: the balancer only counts"
    );
    let count = state.balance_operation_count().unwrap();
    assert!(count.copy_sec > 0, "{count:?}");
    state.set_level(MetaLevel::Lively);
    let report = state.round(now).unwrap();
    assert!(!report.started.is_empty());
    assert!(
        report
            .started
            .iter()
            .all(|a| a.copies_to() == Some(new.as_str()))
    );
    let learning: Vec<_> = state
        .assignments(&new)
        .into_iter()
        .filter(|a| a.role == ReplicaRole::Learner)
        .collect();
    assert_eq!(
        learning.len(),
        report.started.len(),
        "the new node is told to learn"
    );
    // The primaries report their learners caught up: the copies complete and the old
    // copies leave.
    beacon_assigned(&mut state, &all, now);
    assert_eq!(
        state.actions_in_flight(),
        learning.len(),
        "reporting is not learning"
    );
    upgrade_learners(&mut state);
    assert_eq!(state.actions_in_flight(), 0);
    let secondaries = state
        .assignments(&new)
        .iter()
        .filter(|a| a.role == ReplicaRole::Secondary)
        .count();
    assert_eq!(secondaries, learning.len());
    for _ in 0..20 {
        beacon_assigned(&mut state, &all, now);
        state.round(now).unwrap();
        upgrade_learners(&mut state);
    }
    let nodes = state.list_nodes(now);
    let totals: Vec<u32> = nodes
        .iter()
        .map(|n| n.primary_count + n.secondary_count)
        .collect();
    let primaries: Vec<u32> = nodes.iter().map(|n| n.primary_count).collect();
    assert_eq!(totals, vec![6, 6, 6, 6], "{nodes:?}");
    assert!(
        primaries.iter().max().unwrap() - primaries.iter().min().unwrap() <= 1,
        "{primaries:?}"
    );
}

#[test]
fn after_a_restart_nothing_moves_until_every_node_has_reported() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let addrs = {
        let store = RedbStore::open(dir.path()).unwrap();
        let mut state = MetaState::open(MetaConfig::fast(), Box::new(store), start).unwrap();
        let addrs = join(&mut state, 4, start);
        state.create_app("t", 8, 3, false, BTreeMap::new()).unwrap();
        addrs
    };
    let store = RedbStore::open(dir.path()).unwrap();
    let mut state = MetaState::open(MetaConfig::fast(), Box::new(store), start).unwrap();
    let before = state.app_by_name("t").unwrap().partitions.clone();
    beacon_assigned(&mut state, &addrs[..3], start);
    assert!(
        state.round(start).unwrap().held,
        "the fourth node has not reported"
    );
    assert_eq!(state.balance_operation_count(), None, "-1 while collecting");
    let later = start + state.config().grace + Duration::from_millis(1);
    beacon_assigned(&mut state, &addrs[..3], later);
    state.check_nodes(later).unwrap();
    assert!(
        !state.round(later).unwrap().held,
        "declared dead counts as accounted for"
    );
    assert_ne!(state.app_by_name("t").unwrap().partitions, before);
}

#[test]
fn a_member_that_reports_its_replica_lost_leaves_the_configuration() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 3, now);
    state.create_app("t", 2, 3, false, BTreeMap::new()).unwrap();
    // A replica not reported at all is not lost: the node has not taken its assignment
    // yet (nothing compares configuration versions or clocks).
    state.beacon(&addrs[0], INC, BTreeMap::new(), now).unwrap();
    assert_eq!(
        state.app_by_name("t").unwrap().partitions[0]
            .members()
            .count(),
        3
    );
    beacon_assigned(&mut state, &addrs, now);
    let killed = Gpid::new(1, 0);
    let mut reports = held(&state, &addrs[0]);
    reports.get_mut(&killed).unwrap().data = ReplicaData::Lost;
    state.beacon(&addrs[0], INC, reports, now).unwrap();
    let p = &state.app_by_name("t").unwrap().partitions[0];
    assert!(!p.members().any(|m| m == addrs[0]), "{p:?}");
    assert_eq!(p.last_drops, vec![addrs[0].clone()]);
}

#[test]
fn a_known_address_with_a_new_data_directory_is_a_new_empty_node() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 8, 3, false, BTreeMap::new()).unwrap();
    beacon_assigned(&mut state, &addrs, now);
    assert!(!state.assignments(&addrs[0]).is_empty());
    // Inside the grace period, on the same address, with a wiped directory.
    let outcome = state
        .beacon(&addrs[0], "inc-2", BTreeMap::new(), now)
        .unwrap();
    assert!(outcome.assignments.is_empty(), "{:?}", outcome.assignments);
    let parts = &state.app_by_name("t").unwrap().partitions;
    assert!(parts.iter().all(|p| !p.members().any(|m| m == addrs[0])));
    assert!(state.is_alive(&addrs[0]), "alive, as a new node");
    // The new identity is remembered: the next beacon changes nothing more.
    let ballots: Vec<i64> = parts.iter().map(|p| p.ballot).collect();
    state
        .beacon(&addrs[0], "inc-2", BTreeMap::new(), now)
        .unwrap();
    let after: Vec<i64> = state
        .app_by_name("t")
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.ballot)
        .collect();
    assert_eq!(ballots, after);
}

#[test]
fn a_brand_new_partition_is_fresh_until_its_configuration_changes() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 3, now);
    state.create_app("t", 1, 3, false, BTreeMap::new()).unwrap();
    assert!(state.assignments(&addrs[0]).iter().all(|a| a.create_empty));
    let gpid = Gpid::new(1, 0);
    let config = state.partition(gpid).unwrap().clone();
    let primary = config.primary.clone().unwrap();
    let (applied, renewed) = state
        .update_partition(gpid, config.ballot, &primary, PrimaryRequest::Renew, now)
        .unwrap();
    assert!(applied);
    assert_eq!(renewed.ballot, config.ballot + 1);
    assert_eq!(
        (renewed.primary, renewed.secondaries),
        (config.primary, config.secondaries),
        "a renewal changes only the ballot"
    );
    assert!(state.assignments(&addrs[0]).iter().all(|a| !a.create_empty));
}

#[test]
fn a_primary_move_is_proposed_to_the_primary_and_applied_when_it_asks() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 3, now);
    state.create_app("t", 1, 3, false, BTreeMap::new()).unwrap();
    beacon_assigned(&mut state, &addrs, now);
    let gpid = Gpid::new(1, 0);
    let config = state.partition(gpid).unwrap().clone();
    let (from, to) = (
        config.primary.clone().unwrap(),
        config.secondaries[0].clone(),
    );
    let action = Action::MovePrimary {
        gpid,
        from: from.clone(),
        to: to.clone(),
    };
    state.propose(action.clone(), true, now).unwrap();
    assert_eq!(
        state.partition(gpid).unwrap(),
        &config,
        "nothing moves before the primary stops serving"
    );
    let mine = state.assignments(&from);
    assert_eq!(mine[0].proposal, Some(action));
    assert!(state.assignments(&to)[0].proposal.is_none());
    let (applied, after) = state
        .update_partition(
            gpid,
            config.ballot,
            &from,
            PrimaryRequest::MovePrimary(to.clone()),
            now,
        )
        .unwrap();
    assert!(applied);
    assert_eq!(after.primary.as_deref(), Some(to.as_str()));
    assert!(after.secondaries.contains(&from));
    assert_eq!(state.actions_in_flight(), 0);
}

#[test]
fn an_action_is_forgotten_only_once_its_configuration_is_durable() {
    let store = FaultyStore::new();
    let now = Instant::now();
    let mut state = MetaState::open(MetaConfig::fast(), Box::new(store.clone()), now).unwrap();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 1, 3, false, BTreeMap::new()).unwrap();
    beacon_assigned(&mut state, &addrs, now);
    let gpid = Gpid::new(1, 0);
    let config = state.partition(gpid).unwrap().clone();
    let primary = config.primary.clone().unwrap();
    let outsider = addrs
        .iter()
        .find(|a| !config.members().any(|m| m == a.as_str()))
        .unwrap()
        .clone();
    let add = Action::AddSecondary {
        gpid,
        node: outsider.clone(),
    };
    state.propose(add, true, now).unwrap();
    assert_eq!(state.actions_in_flight(), 1);
    store.fail(true);
    let upgrade = PrimaryRequest::UpgradeLearner(outsider.clone());
    let err = state.update_partition(gpid, config.ballot, &primary, upgrade.clone(), now);
    assert!(matches!(err, Err(Error::Storage(_))), "{err:?}");
    assert_eq!(
        state.actions_in_flight(),
        1,
        "the action survives the failed write"
    );
    assert_eq!(state.partition(gpid).unwrap(), &config);
    store.fail(false);
    let (applied, after) = state
        .update_partition(gpid, config.ballot, &primary, upgrade, now)
        .unwrap();
    assert!(applied && after.secondaries.contains(&outsider));
    assert_eq!(state.actions_in_flight(), 0);
}

#[test]
fn a_replica_nobody_needs_is_garbage_only_at_lively_and_only_when_its_partition_is_healthy() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 1, 3, false, BTreeMap::new()).unwrap();
    beacon_assigned(&mut state, &addrs, now);
    let gpid = Gpid { app_id: 1, pidx: 0 };
    let config = state.partition(gpid).unwrap().clone();
    let outsider = addrs
        .iter()
        .find(|a| !config.members().any(|m| m == a.as_str()))
        .unwrap()
        .clone();
    // The outsider still holds a copy (e.g. left behind by a move).
    let held_copy = BTreeMap::from([(gpid, ReplicaReport::valid(config.ballot - 1, 0, 0))]);
    let steady = state
        .beacon(&outsider, INC, held_copy.clone(), now)
        .unwrap();
    assert!(steady.garbage.is_empty(), "steady keeps the files");
    state.set_level(MetaLevel::Lively);
    let lively = state
        .beacon(&outsider, INC, held_copy.clone(), now)
        .unwrap();
    assert_eq!(lively.garbage, vec![gpid], "lively collects them");
    // While the partition lacks a member, the spare copy is kept.
    let member = config.members().next().unwrap().to_string();
    let later = now + state.config().grace + Duration::from_millis(1);
    for a in addrs.iter().filter(|a| **a != member) {
        let reports = if *a == outsider {
            held_copy.clone()
        } else {
            held(&state, a)
        };
        state.beacon(a, INC, reports, later).unwrap();
    }
    state.check_nodes(later).unwrap();
    let unhealthy = state.beacon(&outsider, INC, held_copy, later).unwrap();
    assert!(
        !unhealthy.garbage.contains(&gpid),
        "a copy may still be needed while the partition is unhealthy"
    );
}

/// Writes the next queued batch to `store` as the writer thread would, reporting back.
fn write_next(
    state: &mut MetaState,
    queue: &std::sync::mpsc::Receiver<Batch>,
    store: &mut dyn MetaStore,
) -> u64 {
    let batch = queue.try_recv().expect("a batch is queued");
    assert!(
        !state.is_failed(batch.seq),
        "batch {} was failed",
        batch.seq
    );
    match store.apply(&batch.ops) {
        Ok(()) => state.on_durable(&batch),
        Err(e) => {
            state.on_write_failed(batch.seq, &e);
        }
    }
    batch.seq
}

#[test]
fn with_a_queued_store_nothing_is_shown_or_assigned_before_it_is_durable() {
    let faulty = FaultyStore::new();
    let now = Instant::now();
    let mut state = MetaState::open(MetaConfig::fast(), Box::new(faulty.clone()), now).unwrap();
    let addrs = join(&mut state, 4, now);
    let (mut store, queue) = state.detach_store().unwrap();
    assert!(state.detach_store().is_none(), "the store moves once");
    state.create_app("t", 2, 3, false, BTreeMap::new()).unwrap();
    assert_eq!(state.submitted(), 1);
    assert!(state.app_by_name("t").is_err(), "not shown before durable");
    assert!(state.list_apps(None).is_empty());
    assert!(addrs.iter().all(|a| state.assignments(a).is_empty()));
    assert!(
        state.list_nodes(now).iter().all(|n| n.primary_count == 0),
        "node counts are of durable configurations"
    );
    // A second create of the same name sees the planned one: no duplicate table.
    let (id, existed) = state.create_app("t", 2, 3, false, BTreeMap::new()).unwrap();
    assert!(existed && id == 1);
    assert_eq!(write_next(&mut state, &queue, store.as_mut()), 1);
    assert!(queue.try_recv().is_err());
    assert_eq!(state.app_by_name("t").unwrap().partitions.len(), 2);
    assert_eq!(
        addrs
            .iter()
            .map(|a| state.assignments(a).len())
            .sum::<usize>(),
        6
    );
    beacon_assigned(&mut state, &addrs, now);

    // A node dies: it leaves every configuration in the working copy, and stays in what
    // is assigned and shown until that is durable.
    let victim = state.app_by_name("t").unwrap().partitions[0]
        .primary
        .clone()
        .unwrap();
    let before = state.app_by_name("t").unwrap().clone();
    let later = now + state.config().grace + Duration::from_millis(1);
    for a in addrs.iter().filter(|a| **a != victim) {
        let held = held(&state, a);
        state.beacon(a, INC, held, later).unwrap();
    }
    state.check_nodes(later).unwrap();
    assert_eq!(state.app_by_name("t").unwrap(), &before);
    assert!(!state.assignments(&victim).is_empty());

    // The write fails: the working copy returns to what is durable, and the batch
    // planned on top of it (a drop) fails with it.
    faulty.fail(true);
    state.drop_app("t", None).unwrap();
    let planned = state.submitted();
    assert_eq!(planned, 3);
    assert_eq!(write_next(&mut state, &queue, store.as_mut()), 2);
    assert!(
        state.is_failed(3),
        "a batch planned on a failed one is failed"
    );
    assert_eq!(
        state.partition(Gpid::new(1, 0)).unwrap(),
        &before.partitions[0]
    );
    assert_eq!(
        state.planned_app_by_name("t").unwrap().record.status,
        AppStatus::Available
    );
    let skipped = queue.try_recv().unwrap();
    assert!(state.is_failed(skipped.seq));
    // The dead node's removal was undone; the next check removes it again.
    assert!(
        state
            .partition(Gpid::new(1, 0))
            .unwrap()
            .members()
            .any(|m| m == victim)
    );
    faulty.fail(false);
    state.check_nodes(later).unwrap();
    assert_eq!(write_next(&mut state, &queue, store.as_mut()), 4);
    let shown = &state.app_by_name("t").unwrap().partitions;
    assert!(
        shown.iter().all(|p| !p.members().any(|m| m == victim)),
        "{shown:?}"
    );

    // Healed: the next change is planned on what is durable and goes through.
    let writes = faulty.writes();
    state.drop_app("t", None).unwrap();
    assert_eq!(write_next(&mut state, &queue, store.as_mut()), 5);
    assert_eq!(faulty.writes(), writes + 1);
    assert!(state.app_by_name("t").is_err(), "dropped, durably");
}

#[test]
fn a_replaced_node_is_assigned_nothing_until_its_replacement_is_durable() {
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 4, 3, false, BTreeMap::new()).unwrap();
    beacon_assigned(&mut state, &addrs, now);
    let (_store, queue) = state.detach_store().unwrap();
    assert!(!state.assignments(&addrs[0]).is_empty());
    let outcome = state
        .beacon(&addrs[0], "inc-2", BTreeMap::new(), now)
        .unwrap();
    assert!(queue.try_recv().is_ok(), "the replacement is queued");
    assert!(outcome.assignments.is_empty(), "{:?}", outcome.assignments);
    assert!(state.garbage(&addrs[0], &[]).is_empty());
}

#[test]
fn an_action_whose_node_lost_its_replica_ends_so_cure_can_replace_it() {
    // Found by the 10-minute kill test: the balancer proposed moving a primary to a
    // secondary, `replica.kill_partition` then deleted that secondary's replica, and the
    // move stayed in flight until it timed out (120 s), holding cure off the partition.
    let (mut state, now) = fast_state();
    let addrs = join(&mut state, 4, now);
    state.create_app("t", 1, 3, false, BTreeMap::new()).unwrap();
    state.set_level(MetaLevel::Lively);
    beacon_assigned(&mut state, &addrs, now);
    let gpid = Gpid::new(1, 0);
    let config = state.partition(gpid).unwrap().clone();
    let (from, to) = (
        config.primary.clone().unwrap(),
        config.secondaries[0].clone(),
    );
    let action = Action::MovePrimary {
        gpid,
        from,
        to: to.clone(),
    };
    state.propose(action, true, now).unwrap();
    assert_eq!(state.actions_in_flight(), 1);
    let mut reports = held(&state, &to);
    reports.get_mut(&gpid).unwrap().data = ReplicaData::Lost;
    state.beacon(&to, INC, reports, now).unwrap();
    assert!(!state.partition(gpid).unwrap().members().any(|m| m == to));
    assert_eq!(
        state.actions_in_flight(),
        0,
        "the move to a lost replica ended"
    );
    let round = state.round(now).unwrap();
    assert!(
        round
            .started
            .iter()
            .any(|a| matches!(a, Action::AddSecondary { gpid: g, .. } if *g == gpid)),
        "cure replaces the lost replica at once: {:?}",
        round.started
    );
}

#[test]
fn a_learner_upgraded_but_not_yet_durable_is_not_garbage() {
    // Found by the scale-out benchmark: between the upgrade (the action ends, the new
    // configuration is queued) and its write, the durable image neither assigns the
    // learner nor misses a member, so its fresh copy was deleted as garbage, and it then
    // joined the configuration without data.
    let now = Instant::now();
    let mut state = MetaState::open(MetaConfig::fast(), Box::new(MemStore::new()), now).unwrap();
    let addrs = join(&mut state, 4, now);
    let (mut store, queue) = state.detach_store().unwrap();
    state.create_app("t", 1, 3, false, BTreeMap::new()).unwrap();
    write_next(&mut state, &queue, store.as_mut());
    beacon_assigned(&mut state, &addrs, now);
    state.set_level(MetaLevel::Lively);
    let gpid = Gpid { app_id: 1, pidx: 0 };
    let config = state.partition(gpid).unwrap().clone();
    let to = addrs
        .iter()
        .find(|a| !config.members().any(|m| m == a.as_str()))
        .unwrap()
        .clone();
    let from = config.secondaries[0].clone();
    let action = Action::CopySecondary {
        gpid,
        from,
        to: to.clone(),
    };
    state.propose(action, true, now).unwrap();
    assert_eq!(state.actions_in_flight(), 1);
    // The learner holds everything; its primary asks for the upgrade.
    let learned = BTreeMap::from([(gpid, ReplicaReport::valid(config.ballot, 0, 0))]);
    assert!(
        state
            .beacon(&to, INC, learned.clone(), now)
            .unwrap()
            .garbage
            .is_empty()
    );
    upgrade_learners(&mut state);
    assert_eq!(state.actions_in_flight(), 0, "the action ended");
    let before_durable = state.beacon(&to, INC, learned.clone(), now).unwrap();
    assert!(
        before_durable.garbage.is_empty(),
        "the new member's copy is kept while its configuration is written"
    );
    // Once written, it is assigned as a secondary.
    write_next(&mut state, &queue, store.as_mut());
    assert!(state.assignments(&to).iter().any(|a| a.gpid == gpid));
}
