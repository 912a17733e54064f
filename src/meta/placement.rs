//! Where a new table's replicas go. Pure: the candidate nodes and their current load in,
//! one (primary, secondaries) per partition out. Each partition's replicas land on
//! distinct nodes; within the table every node ends with replica and primary counts
//! within one of every other's, and ties go to the nodes least loaded cluster-wide, so
//! successive tables spread over the whole cluster.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::meta::primary_chain;

/// A candidate node and what it already holds across the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLoad {
    /// The node's address.
    pub address: String,
    /// Replicas it holds across all tables.
    pub replicas: u32,
    /// Primaries it holds across all tables.
    pub primaries: u32,
}

/// One partition's placement: primary first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The primary's address.
    pub primary: String,
    /// The secondaries' addresses.
    pub secondaries: Vec<String>,
}

#[derive(Clone, Copy, Default)]
struct Counts {
    app_replicas: u32,
    app_primaries: u32,
    replicas: u32,
    primaries: u32,
}

/// Places `partition_count` partitions of `replica_count` replicas on `nodes`.
pub fn place<'a>(
    nodes: &'a [NodeLoad],
    partition_count: u32,
    replica_count: u32,
) -> Result<Vec<Placement>> {
    if replica_count == 0 || partition_count == 0 {
        return Err(Error::InvalidInput(
            "partition_count and replica_count must be at least 1".into(),
        ));
    }
    if (nodes.len() as u32) < replica_count {
        return Err(Error::Refused(format!(
            "replica_count {replica_count} needs {replica_count} ALIVE nodes that may take \
             new replicas, but there are {}",
            nodes.len()
        )));
    }
    let mut counts: BTreeMap<&str, Counts> = nodes
        .iter()
        .map(|n| {
            let c = Counts {
                replicas: n.replicas,
                primaries: n.primaries,
                ..Counts::default()
            };
            (n.address.as_str(), c)
        })
        .collect();
    // Replica sets: each partition takes the r nodes with the fewest of this table's
    // replicas, which keeps the table's replica counts within one of each other. Its
    // primary is, at first, the member with the fewest of the table's primaries. The
    // nodes are kept ordered by that key, so a partition costs O(r log n).
    let key = |c: &Counts, a: &'a str| (c.app_replicas, c.replicas, c.app_primaries, a);
    let mut order: BTreeSet<(u32, u32, u32, &str)> =
        counts.iter().map(|(a, c)| key(c, a)).collect();
    let mut sets: Vec<(usize, Vec<&str>)> = Vec::with_capacity(partition_count as usize);
    for _ in 0..partition_count {
        let members: Vec<&str> = order
            .iter()
            .take(replica_count as usize)
            .map(|k| k.3)
            .collect();
        let primary = (0..members.len())
            .min_by_key(|i| {
                let c = counts[members[*i]];
                (c.app_primaries, c.primaries, members[*i])
            })
            .expect("replica_count >= 1");
        for (i, m) in members.iter().enumerate() {
            let c = counts.get_mut(m).expect("member is a candidate");
            order.remove(&key(c, m));
            c.app_replicas += 1;
            c.replicas += 1;
            if i == primary {
                c.app_primaries += 1;
                c.primaries += 1;
            }
            order.insert(key(c, m));
        }
        sets.push((primary, members));
    }
    even_out_primaries(&mut sets, &mut counts);
    Ok(sets
        .into_iter()
        .map(|(primary, members)| {
            let mut secondaries: Vec<String> = members
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != primary)
                .map(|(_, m)| m.to_string())
                .collect();
            secondaries.sort();
            Placement {
                primary: members[primary].to_string(),
                secondaries,
            }
        })
        .collect())
}

/// Evens out this table's primaries by moving the role within each replica set
/// ([`crate::meta::primary_chain`]); replica counts do not change.
fn even_out_primaries(sets: &mut [(usize, Vec<&str>)], counts: &mut BTreeMap<&str, Counts>) {
    let mut primaries: BTreeMap<&str, u32> =
        counts.iter().map(|(n, c)| (*n, c.app_primaries)).collect();
    primary_chain::even_out(sets, &mut primaries);
    for (node, c) in counts.iter_mut() {
        c.app_primaries = primaries[node];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn nodes(n: usize) -> Vec<NodeLoad> {
        (0..n)
            .map(|i| NodeLoad {
                address: format!("10.0.0.{i}:34801"),
                replicas: 0,
                primaries: 0,
            })
            .collect()
    }

    fn spread(placements: &[Placement], nodes: &[NodeLoad]) -> (u32, u32) {
        let mut reps: HashMap<&str, u32> = nodes.iter().map(|n| (n.address.as_str(), 0)).collect();
        let mut pris = reps.clone();
        for p in placements {
            *pris.get_mut(p.primary.as_str()).unwrap() += 1;
            for m in std::iter::once(&p.primary).chain(&p.secondaries) {
                *reps.get_mut(m.as_str()).unwrap() += 1;
            }
        }
        let range = |m: &HashMap<&str, u32>| m.values().max().unwrap() - m.values().min().unwrap();
        (range(&reps), range(&pris))
    }

    #[test]
    fn members_are_distinct_and_counts_even_for_many_shapes() {
        for n in 1..=13usize {
            for r in 1..=n.min(5) as u32 {
                for p in [1u32, 2, 3, 4, 5, 7, 8, 15, 16, 31, 64, 100] {
                    let ns = nodes(n);
                    let placed = place(&ns, p, r).unwrap();
                    assert_eq!(placed.len(), p as usize);
                    for pl in &placed {
                        let mut all: Vec<&String> = std::iter::once(&pl.primary)
                            .chain(&pl.secondaries)
                            .collect();
                        assert_eq!(all.len(), r as usize);
                        all.sort();
                        all.dedup();
                        assert_eq!(all.len(), r as usize, "distinct members n={n} r={r} p={p}");
                    }
                    let (reps, pris) = spread(&placed, &ns);
                    assert!(reps <= 1, "replica spread {reps} for n={n} r={r} p={p}");
                    assert!(pris <= 1, "primary spread {pris} for n={n} r={r} p={p}");
                }
            }
        }
    }

    #[test]
    fn new_tables_prefer_less_loaded_nodes() {
        let mut ns = nodes(4);
        ns[0].replicas = 10;
        ns[0].primaries = 5;
        let placed = place(&ns, 1, 3).unwrap();
        let members: Vec<&String> = std::iter::once(&placed[0].primary)
            .chain(&placed[0].secondaries)
            .collect();
        assert!(
            !members.contains(&&ns[0].address),
            "the loaded node is skipped: {members:?}"
        );
    }

    #[test]
    fn refuses_too_few_nodes_and_zero_sizes() {
        let err = place(&nodes(2), 8, 3).unwrap_err();
        assert!(matches!(err, Error::Refused(_)), "{err:?}");
        assert!(err.to_string().contains("there are 2"));
        assert!(matches!(
            place(&nodes(3), 0, 3),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            place(&nodes(3), 8, 0),
            Err(Error::InvalidInput(_))
        ));
    }
}
