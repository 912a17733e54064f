//! Draining's rules, one scenario each.

use std::collections::BTreeMap;

use super::*;
use crate::meta::snapshot::{AppView, NodeView, PartitionView};
use crate::model::PartitionConfig;

fn part(pidx: u32, primary: &str, secondaries: &[&str]) -> PartitionConfig {
    PartitionConfig {
        pidx,
        ballot: 5,
        primary: Some(primary.to_string()),
        secondaries: secondaries.iter().map(|s| s.to_string()).collect(),
        last_drops: vec![],
        fresh: false,
    }
}

fn snap(
    nodes: &[&str],
    replicas: u32,
    partitions: Vec<PartitionConfig>,
    draining: &[&str],
) -> Snapshot {
    let nodes = nodes
        .iter()
        .map(|n| {
            let view = NodeView {
                alive: true,
                reported: true,
                replicas: BTreeMap::new(),
            };
            (n.to_string(), view)
        })
        .collect();
    let partitions = partitions
        .into_iter()
        .map(|config| PartitionView {
            config,
            last_drop_ms: 0,
        })
        .collect();
    Snapshot {
        nodes,
        apps: vec![AppView {
            app_id: 1,
            max_replica_count: replicas,
            partitions,
        }],
        draining: draining.iter().map(|s| s.to_string()).collect(),
        ..Snapshot::default()
    }
}

fn gpid(pidx: u32) -> Gpid {
    Gpid::new(1, pidx)
}

#[test]
fn a_draining_primary_moves_to_a_secondary_without_a_copy() {
    let s = snap(
        &["a", "b", "c", "d"],
        3,
        vec![part(0, "a", &["b", "c"])],
        &["a"],
    );
    assert_eq!(
        drain(&s).actions,
        vec![Action::MovePrimary {
            gpid: gpid(0),
            from: "a".into(),
            to: "b".into()
        }]
    );
}

#[test]
fn a_draining_secondary_is_copied_to_a_node_outside_the_batch() {
    // b and c are both draining: p0's secondary on b goes to d, never to c.
    let s = snap(
        &["a", "b", "c", "d"],
        2,
        vec![part(0, "a", &["b"])],
        &["b", "c"],
    );
    assert_eq!(
        drain(&s).actions,
        vec![Action::CopySecondary {
            gpid: gpid(0),
            from: "b".into(),
            to: "d".into()
        }]
    );
}

#[test]
fn with_no_eligible_target_the_partition_is_blocked_with_the_reason() {
    let s = snap(&["a", "b", "c"], 3, vec![part(0, "a", &["b", "c"])], &["c"]);
    let plan = drain(&s);
    assert!(plan.actions.is_empty());
    assert!(
        plan.blocked[&gpid(0)].contains("no eligible target"),
        "{plan:?}"
    );
}

#[test]
fn a_partition_with_an_action_in_flight_waits() {
    let mut s = snap(
        &["a", "b", "c", "d"],
        3,
        vec![part(0, "a", &["b", "c"])],
        &["a"],
    );
    s.busy.insert(gpid(0));
    let plan = drain(&s);
    assert!(plan.actions.is_empty());
    assert!(plan.blocked[&gpid(0)].contains("in flight"));
}

#[test]
fn a_stopping_node_moves_only_its_primaries() {
    let mut s = snap(
        &["a", "b", "c", "d"],
        3,
        vec![part(0, "a", &["b", "c"]), part(1, "b", &["a", "c"])],
        &[],
    );
    s.leaving.insert("a".into());
    // p0's primary goes to c, the secondary with fewer primaries; p1 stays as it is.
    assert_eq!(
        drain(&s).actions,
        vec![Action::MovePrimary {
            gpid: gpid(0),
            from: "a".into(),
            to: "c".into()
        }]
    );
}

#[test]
fn each_receiving_node_gets_one_copy_per_round() {
    // Both partitions can only go to d: one copy there this round, the other waits.
    let s = snap(
        &["a", "b", "c", "d"],
        3,
        vec![part(0, "a", &["b", "c"]), part(1, "a", &["b", "c"])],
        &["c"],
    );
    let plan = drain(&s);
    assert_eq!(plan.actions.len(), 1, "{plan:?}");
    assert!(plan.blocked[&gpid(1)].contains("every eligible target"));
}

#[test]
fn a_surplus_draining_secondary_is_removed() {
    let s = snap(
        &["a", "b", "c", "d"],
        2,
        vec![part(0, "a", &["b", "c"])],
        &["c"],
    );
    assert_eq!(
        drain(&s).actions,
        vec![Action::RemoveSecondary {
            gpid: gpid(0),
            node: "c".into()
        }]
    );
}

#[test]
fn a_lone_draining_primary_first_gets_a_secondary_to_take_over() {
    let s = snap(&["a", "b"], 1, vec![part(0, "a", &[])], &["a"]);
    assert_eq!(
        drain(&s).actions,
        vec![Action::AddSecondary {
            gpid: gpid(0),
            node: "b".into()
        }]
    );
}

#[test]
fn nothing_is_planned_for_nodes_that_stay() {
    let s = snap(&["a", "b", "c"], 3, vec![part(0, "a", &["b", "c"])], &[]);
    assert_eq!(drain(&s), DrainPlan::default());
}

#[test]
fn a_nodes_secondaries_wait_until_its_primaries_have_moved() {
    // d is primary of p0 (which can move) and secondary of p1: p1 waits.
    let s = snap(
        &["a", "b", "c", "d", "e"],
        3,
        vec![part(0, "d", &["a", "b"]), part(1, "a", &["b", "d"])],
        &["d"],
    );
    let plan = drain(&s);
    assert_eq!(plan.actions.len(), 1, "{plan:?}");
    assert!(matches!(plan.actions[0], Action::MovePrimary { .. }));
    assert!(plan.blocked[&gpid(1)].contains("primaries to move first"));
}
