//! Cure's rules, one scenario each.

use std::collections::BTreeMap;

use super::*;
use crate::meta::snapshot::{AppView, NodeView, PartitionView};
use crate::model::{Gpid, PartitionConfig, ReplicaReport};

fn snap(alive: &[&str], dead: &[&str], partitions: Vec<PartitionConfig>) -> Snapshot {
    let mut nodes = BTreeMap::new();
    for n in alive {
        nodes.insert(
            n.to_string(),
            NodeView {
                alive: true,
                reported: true,
                replicas: BTreeMap::new(),
            },
        );
    }
    for n in dead {
        nodes.insert(
            n.to_string(),
            NodeView {
                alive: false,
                reported: false,
                replicas: BTreeMap::new(),
            },
        );
    }
    let partitions = partitions
        .into_iter()
        .map(|config| PartitionView {
            config,
            last_drop_ms: 1_000,
        })
        .collect();
    Snapshot {
        now_ms: 1_000,
        nodes,
        apps: vec![AppView {
            app_id: 1,
            max_replica_count: 3,
            partitions,
        }],
        assign_delay_ms: 600_000,
        ..Snapshot::default()
    }
}

fn part(pidx: u32, primary: Option<&str>, secondaries: &[&str], drops: &[&str]) -> PartitionConfig {
    PartitionConfig {
        pidx,
        ballot: 5,
        primary: primary.map(str::to_string),
        secondaries: secondaries.iter().map(|s| s.to_string()).collect(),
        last_drops: drops.iter().map(|s| s.to_string()).collect(),
        fresh: false,
    }
}

fn g(pidx: u32) -> Gpid {
    Gpid { app_id: 1, pidx }
}

const OPTS: CureOptions = CureOptions {
    add_secondary_max_count_for_one_node: None,
};

#[test]
fn a_partition_without_primary_promotes_the_secondary_with_fewest_primaries() {
    // b already leads partition 1; c leads nothing.
    let s = snap(
        &["b", "c", "d"],
        &["a"],
        vec![
            part(0, None, &["b", "c"], &["a"]),
            part(1, Some("b"), &["c", "d"], &[]),
        ],
    );
    assert_eq!(
        cure(&s, &OPTS)[0],
        Action::UpgradeToPrimary {
            gpid: g(0),
            node: "c".into()
        }
    );
}

#[test]
fn a_missing_secondary_waits_for_the_delay_unless_the_dropped_node_is_back() {
    let mut s = snap(
        &["a", "b", "d"],
        &["c"],
        vec![part(0, Some("a"), &["b"], &["c"])],
    );
    assert!(
        cure(&s, &OPTS).is_empty(),
        "within the assign delay: wait for c"
    );
    s.now_ms = 1_000 + 600_000;
    assert_eq!(
        cure(&s, &OPTS),
        vec![Action::AddSecondary {
            gpid: g(0),
            node: "d".into()
        }]
    );
    s.now_ms = 1_000;
    s.nodes.get_mut("c").unwrap().alive = true;
    assert_eq!(
        cure(&s, &OPTS),
        vec![Action::AddSecondary {
            gpid: g(0),
            node: "c".into()
        }],
        "the last dropped node is back: re-add it at once"
    );
}

#[test]
fn a_black_listed_drop_or_a_lone_replica_is_an_emergency() {
    let mut s = snap(
        &["a", "b", "d", "e"],
        &["c"],
        vec![part(0, Some("a"), &["b"], &["c"])],
    );
    s.black_list.insert("c".into());
    s.black_list.insert("d".into());
    assert_eq!(
        cure(&s, &OPTS),
        vec![Action::AddSecondary {
            gpid: g(0),
            node: "e".into()
        }],
        "no waiting, and never onto black-listed d"
    );
    let s = snap(
        &["a", "d"],
        &["b", "c"],
        vec![part(0, Some("a"), &[], &["b", "c"])],
    );
    assert_eq!(
        cure(&s, &OPTS),
        vec![Action::AddSecondary {
            gpid: g(0),
            node: "d".into()
        }]
    );
}

#[test]
fn new_secondaries_go_to_the_least_loaded_node_and_spread_within_a_round() {
    let mut s = snap(
        &["a", "b", "x", "y"],
        &["c"],
        vec![
            part(0, Some("a"), &["b"], &["c"]),
            part(1, Some("b"), &["a"], &["c"]),
            part(2, Some("x"), &["a", "b"], &[]),
        ],
    );
    s.now_ms = u64::MAX;
    let actions = cure(&s, &OPTS);
    let targets: Vec<String> = actions
        .iter()
        .filter_map(|a| a.copies_to().map(str::to_string))
        .collect();
    assert_eq!(
        targets,
        ["y", "x"],
        "y holds nothing; then x and y tie and x wins by name"
    );
}

#[test]
fn too_many_secondaries_lose_the_one_on_the_fullest_node() {
    let s = snap(
        &["a", "b", "c", "d"],
        &[],
        vec![
            part(0, Some("a"), &["b", "c", "d"], &[]),
            part(1, Some("a"), &["c", "d"], &[]),
        ],
    );
    let actions = cure(&s, &OPTS);
    assert_eq!(
        actions,
        vec![Action::RemoveSecondary {
            gpid: g(0),
            node: "d".into()
        }]
    );
}

#[test]
fn busy_partitions_are_left_to_their_action() {
    let mut s = snap(
        &["a", "b", "c", "d"],
        &[],
        vec![part(0, Some("a"), &["b", "c", "d"], &[])],
    );
    s.busy.insert(g(0));
    assert!(cure(&s, &OPTS).is_empty());
}

#[test]
fn all_replicas_dead_waits_for_the_last_member_never_choosing_by_reported_numbers() {
    let mut s = snap(
        &["x"],
        &["a", "b", "c"],
        vec![part(0, None, &[], &["a", "b", "c"])],
    );
    assert!(cure(&s, &OPTS).is_empty(), "never invent a replica");
    let back = |s: &mut Snapshot, n: &str, report: Option<ReplicaReport>| {
        let node = s.nodes.get_mut(n).unwrap();
        node.alive = true;
        node.reported = true;
        node.replicas.clear();
        node.replicas.extend(report.map(|r| (g(0), r)));
    };
    // b reports a newer ballot and more committed than the last member c: b was a
    // learner that had caught up only partly; c holds every committed write.
    back(&mut s, "b", Some(ReplicaReport::valid(9, 320, 320)));
    assert!(
        cure(&s, &OPTS).is_empty(),
        "c, the last member, is not back"
    );
    s.nodes.get_mut("c").unwrap().alive = true;
    let decide = |s: &Snapshot| ddd_decision(s, &s.apps[0], &s.apps[0].partitions[0]);
    assert!(
        matches!(decide(&s), DddDecision::Wait(w) if w.contains("c, the last member, to report")),
        "ALIVE but not reported yet"
    );
    back(&mut s, "c", Some(ReplicaReport::valid(8, 248, 388)));
    assert_eq!(
        cure(&s, &OPTS),
        vec![Action::AssignPrimary {
            gpid: g(0),
            node: "c".into()
        }]
    );
    // The last member lost its data: only an operator decides.
    let lost = ReplicaReport {
        data: crate::model::ReplicaData::Lost,
        ..ReplicaReport::valid(9, 0, 0)
    };
    back(&mut s, "c", Some(lost));
    assert!(cure(&s, &OPTS).is_empty());
    assert!(matches!(decide(&s), DddDecision::Lost(_)));
    back(&mut s, "c", None);
    assert!(matches!(decide(&s), DddDecision::Lost(w) if w.contains("holds nothing")));
}

#[test]
fn a_table_of_one_replica_waits_only_for_its_last_member() {
    let mut s = snap(&["a"], &["b"], vec![part(0, None, &[], &["b", "a"])]);
    s.apps[0].max_replica_count = 1;
    s.nodes
        .get_mut("a")
        .unwrap()
        .replicas
        .insert(g(0), ReplicaReport::valid(3, 2, 2));
    assert_eq!(
        cure(&s, &OPTS),
        vec![Action::AssignPrimary {
            gpid: g(0),
            node: "a".into()
        }]
    );
}

#[test]
fn a_secondary_that_reported_its_replica_lost_is_not_promoted() {
    let mut s = snap(&["b", "c"], &[], vec![part(0, None, &["b", "c"], &["a"])]);
    let lost = ReplicaReport {
        data: crate::model::ReplicaData::Lost,
        ..ReplicaReport::valid(5, 0, 0)
    };
    s.nodes.get_mut("b").unwrap().replicas.insert(g(0), lost);
    assert_eq!(
        cure(&s, &OPTS),
        vec![Action::UpgradeToPrimary {
            gpid: g(0),
            node: "c".into()
        }]
    );
}

#[test]
fn flow_control_caps_new_secondaries_per_node() {
    let mut s = snap(
        &["a", "b", "n"],
        &["c"],
        (0..4).map(|i| part(i, Some("a"), &["b"], &["c"])).collect(),
    );
    s.now_ms = u64::MAX;
    let opts = CureOptions {
        add_secondary_max_count_for_one_node: Some(2),
    };
    assert_eq!(cure(&s, &opts).len(), 2);
    assert_eq!(cure(&s, &OPTS).len(), 4);
}

#[test]
fn a_rejoined_node_leaves_last_drops_so_the_next_dropped_one_is_re_added() {
    let mut config = part(0, Some("c"), &["d"], &["a", "b"]);
    let add_b = Action::AddSecondary {
        gpid: g(0),
        node: "b".into(),
    };
    assert!(crate::meta::snapshot::apply_to_config(&mut config, &add_b));
    assert_eq!(config.last_drops, ["a"]);
    let mut s = snap(&["a", "b", "c", "d"], &[], vec![config]);
    s.apps[0].max_replica_count = 4;
    assert_eq!(
        cure(&s, &OPTS),
        vec![Action::AddSecondary {
            gpid: g(0),
            node: "a".into()
        }]
    );
}
