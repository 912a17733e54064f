//! Which partitions each node is a member of, by the durable configurations. A beacon's
//! assignments are read from it, so a beacon costs the meta server the node's own
//! replicas, not every partition of the cluster: with 1,000 nodes and 100,000 replicas
//! a scan per beacon kept a core busy (`ballast-bench meta-scale`). It is kept in step
//! with the durable image batch by batch: the partitions a batch touches leave the index
//! as they were and return as they are.

use std::collections::{BTreeSet, HashMap};

use crate::meta::store::{StoreOp, StoredState};
use crate::model::{Gpid, PartitionConfig};

/// Node address → the partitions whose durable configuration names it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct MemberIndex {
    by_node: HashMap<String, BTreeSet<Gpid>>,
}

impl MemberIndex {
    /// The index of every partition in `state`.
    pub fn build(state: &StoredState) -> MemberIndex {
        let mut index = MemberIndex::default();
        for app in state.apps.values() {
            for p in &app.partitions {
                index.add(Gpid::new(app.record.app_id, p.pidx), p);
            }
        }
        index
    }

    fn add(&mut self, gpid: Gpid, config: &PartitionConfig) {
        for m in config.members() {
            self.by_node.entry(m.to_string()).or_default().insert(gpid);
        }
    }

    fn remove(&mut self, gpid: Gpid, config: &PartitionConfig) {
        for m in config.members() {
            if let Some(set) = self.by_node.get_mut(m) {
                set.remove(&gpid);
                if set.is_empty() {
                    self.by_node.remove(m);
                }
            }
        }
    }

    /// The partitions `ops` change, given the state before them: every partition put,
    /// and every partition of a table deleted.
    pub fn touched(before: &StoredState, ops: &[StoreOp]) -> Vec<Gpid> {
        let mut out = Vec::new();
        for op in ops {
            match op {
                StoreOp::PutPartition(app_id, config) => out.push(Gpid::new(*app_id, config.pidx)),
                StoreOp::DeleteApp(app_id) => {
                    if let Some(app) = before.apps.get(app_id) {
                        out.extend(app.partitions.iter().map(|p| Gpid::new(*app_id, p.pidx)));
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn each(state: &StoredState, gpids: &[Gpid], mut f: impl FnMut(Gpid, &PartitionConfig)) {
        for gpid in gpids {
            let config = state
                .apps
                .get(&gpid.app_id)
                .and_then(|a| a.partitions.get(gpid.pidx as usize));
            if let Some(config) = config {
                f(*gpid, config);
            }
        }
    }

    /// Takes `gpids` out, as their configurations are in `state` (before a batch).
    pub fn unindex(&mut self, state: &StoredState, gpids: &[Gpid]) {
        MemberIndex::each(state, gpids, |g, c| self.remove(g, c));
    }

    /// Puts `gpids` back, as their configurations are in `state` (after a batch).
    pub fn reindex(&mut self, state: &StoredState, gpids: &[Gpid]) {
        MemberIndex::each(state, gpids, |g, c| self.add(g, c));
    }

    /// The partitions `node` is a member of, in gpid order.
    pub fn of(&self, node: &str) -> impl Iterator<Item = Gpid> + '_ {
        self.by_node.get(node).into_iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::app::AppRecord;
    use crate::model::AppStatus;

    fn config(pidx: u32, primary: &str, secondaries: &[&str]) -> PartitionConfig {
        PartitionConfig {
            pidx,
            ballot: 1,
            primary: (!primary.is_empty()).then(|| primary.to_string()),
            secondaries: secondaries.iter().map(|s| s.to_string()).collect(),
            ..PartitionConfig::default()
        }
    }

    fn record(app_id: u32) -> AppRecord {
        AppRecord {
            app_id,
            app_name: format!("t{app_id}"),
            status: AppStatus::Available,
            partition_count: 2,
            max_replica_count: 3,
            create_time_ms: 0,
            drop_time_ms: 0,
            drop_expire_ms: 0,
            envs: Default::default(),
        }
    }

    /// Applies `ops` to `state` and to `index` as the meta state does.
    fn step(state: &mut StoredState, index: &mut MemberIndex, ops: &[StoreOp]) {
        let touched = MemberIndex::touched(state, ops);
        index.unindex(state, &touched);
        state.apply(ops).unwrap();
        index.reindex(state, &touched);
        assert_eq!(*index, MemberIndex::build(state), "after {ops:?}");
    }

    #[test]
    fn kept_in_step_it_equals_a_rebuild_after_every_batch() {
        let mut state = StoredState::default();
        let mut index = MemberIndex::build(&state);
        step(
            &mut state,
            &mut index,
            &[
                StoreOp::PutApp(record(1)),
                StoreOp::PutPartition(1, config(0, "a", &["b", "c"])),
                StoreOp::PutPartition(1, config(1, "b", &["c", "d"])),
            ],
        );
        assert_eq!(index.of("c").count(), 2);
        // A node dies: it leaves both configurations in one batch.
        step(
            &mut state,
            &mut index,
            &[
                StoreOp::PutPartition(1, config(0, "a", &["b"])),
                StoreOp::PutPartition(1, config(1, "b", &["d"])),
            ],
        );
        assert_eq!(index.of("c").count(), 0);
        assert_eq!(
            index.of("b").collect::<Vec<_>>(),
            [Gpid::new(1, 0), Gpid::new(1, 1)]
        );
        // A second table, created and deleted; then the first one deleted.
        step(
            &mut state,
            &mut index,
            &[
                StoreOp::PutApp(record(2)),
                StoreOp::PutPartition(2, config(0, "d", &[])),
            ],
        );
        step(&mut state, &mut index, &[StoreOp::DeleteApp(2)]);
        step(&mut state, &mut index, &[StoreOp::DeleteApp(1)]);
        assert_eq!(index, MemberIndex::default());
        // Created and deleted in one batch.
        step(
            &mut state,
            &mut index,
            &[
                StoreOp::PutApp(record(3)),
                StoreOp::PutPartition(3, config(0, "e", &[])),
                StoreOp::DeleteApp(3),
            ],
        );
        assert_eq!(index, MemberIndex::default());
    }
}
