//! Unit tests of the meta state: registration and liveness, DDL and its level checks,
//! drop/recall/expiry, and durability across a reopen.

use super::*;
use crate::meta::store::{MemStore, RedbStore};

fn fast_state() -> (MetaState, Instant) {
    let now = Instant::now();
    (
        MetaState::open(MetaConfig::fast(), Box::new(MemStore::new()), now).unwrap(),
        now,
    )
}

fn join(state: &mut MetaState, n: usize, now: Instant) -> Vec<String> {
    (1..=n)
        .map(|i| {
            let addr = format!("127.0.0.1:{}", 34800 + i);
            state.beacon(&addr, BTreeMap::new(), 0, now).unwrap();
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
        .beacon(&addrs[0], BTreeMap::new(), 0, now + grace)
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
        .beacon(&addrs[1], BTreeMap::new(), 0, now + grace * 3)
        .unwrap();
    assert!(state.is_alive(&addrs[1]));
    assert!(
        state
            .beacon("not-an-address", BTreeMap::new(), 0, now)
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
        .beacon(&addrs[0], BTreeMap::new(), 0, later + state.config().grace)
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
