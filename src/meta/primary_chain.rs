//! Evening out primaries without copying data: a partition's primary role can move to
//! any node that already holds one of its replicas. Find a chain u → … → v where each
//! step is a partition whose primary is on one node and which has a replica on the next,
//! from a node with the most primaries to one with at least two fewer, and shift the
//! role one step along it; repeat until every node is within one of every other. It is
//! Pegasus's move_primary flow, used both when placing a new table and by the balancer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A partition for the search: the index of its primary in `members`, and its members.
pub type MemberSet<'a> = (usize, Vec<&'a str>);

/// Evens out `primaries` (per node; only nodes listed may take the role) by moving the
/// primary role within `sets`. Returns each move as (set index, new primary's member
/// index), in the order applied; `sets` and `primaries` are updated.
pub fn even_out(
    sets: &mut [MemberSet<'_>],
    primaries: &mut BTreeMap<&str, u32>,
) -> Vec<(usize, usize)> {
    // The sets each node leads, so a search step looks only at those.
    let mut led: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (primary, members)) in sets.iter().enumerate() {
        led.entry(members[*primary]).or_default().push(i);
    }
    let mut moves = Vec::new();
    loop {
        let Some(&min) = primaries.values().min() else {
            return moves;
        };
        let mut sources: Vec<&str> = primaries
            .keys()
            .copied()
            .filter(|n| primaries[n] >= min + 2)
            .collect();
        sources.sort_by_key(|n| (std::cmp::Reverse(primaries[n]), *n));
        // Sources go richest first, so their limits never rise: a node reached from a
        // source whose search failed leads only to nodes too rich for later ones too.
        let mut dead = BTreeSet::new();
        let Some(path) = sources
            .iter()
            .find_map(|s| chain_to_poorer(sets, &led, primaries, s, &mut dead))
        else {
            return moves;
        };
        for (set, to) in path {
            let (primary, members) = &mut sets[set];
            let from = members[*primary];
            if let Some(c) = primaries.get_mut(from) {
                *c -= 1;
            }
            *primaries
                .get_mut(members[to])
                .expect("chain nodes are counted") += 1;
            if let Some(list) = led.get_mut(from) {
                list.retain(|i| *i != set);
            }
            led.entry(members[to]).or_default().push(set);
            *primary = to;
            moves.push((set, to));
        }
    }
}

/// Breadth-first search from `source` for a node with at least two fewer primaries.
fn chain_to_poorer<'a>(
    sets: &[MemberSet<'a>],
    led: &BTreeMap<&'a str, Vec<usize>>,
    primaries: &BTreeMap<&str, u32>,
    source: &'a str,
    dead: &mut BTreeSet<&'a str>,
) -> Option<Vec<(usize, usize)>> {
    let limit = primaries[source].checked_sub(2)?;
    if dead.contains(source) {
        return None;
    }
    let mut came_from: BTreeMap<&str, (usize, usize, &str)> = BTreeMap::new();
    let mut queue = VecDeque::from([source]);
    while let Some(node) = queue.pop_front() {
        for &si in led.get(node).map(Vec::as_slice).unwrap_or(&[]) {
            let (primary, members) = &sets[si];
            for (mi, next) in members.iter().enumerate() {
                let counted = primaries.get(next);
                if mi == *primary
                    || *next == source
                    || counted.is_none()
                    || came_from.contains_key(next)
                    || dead.contains(next)
                {
                    continue;
                }
                came_from.insert(next, (si, mi, node));
                if counted.is_some_and(|c| *c <= limit) {
                    let mut path = Vec::new();
                    let mut at = *next;
                    while at != source {
                        let (s, m, prev) = came_from[at];
                        path.push((s, m));
                        at = prev;
                    }
                    // Applied from the source's end, so each step's primary is current.
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(next);
            }
        }
    }
    dead.insert(source);
    dead.extend(came_from.into_keys());
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_along_a_chain_and_only_to_counted_nodes() {
        // a leads both; b holds replicas of both; c only of the second.
        let mut sets = vec![(0, vec!["a", "b"]), (0, vec!["a", "c"])];
        let mut primaries = BTreeMap::from([("a", 2), ("b", 0), ("c", 0)]);
        let moves = even_out(&mut sets, &mut primaries);
        assert_eq!(moves.len(), 1);
        assert_eq!(primaries.values().copied().max(), Some(1));
        // With b not counted (e.g. black-listed), only c can take the role.
        let mut sets = vec![
            (0, vec!["a", "b"]),
            (0, vec!["a", "b"]),
            (0, vec!["a", "c"]),
        ];
        let mut primaries = BTreeMap::from([("a", 3), ("c", 0)]);
        even_out(&mut sets, &mut primaries);
        assert_eq!(primaries, BTreeMap::from([("a", 2), ("c", 1)]));
    }

    #[test]
    fn two_step_chain() {
        // a(2) -> b via p0; b -> c via p1; c has 0. Moving p0 to b then p1 to c evens out.
        let mut sets = vec![
            (0, vec!["a", "b"]),
            (0, vec!["b", "c"]),
            (0, vec!["a", "x"]),
        ];
        let mut primaries = BTreeMap::from([("a", 2), ("b", 1), ("c", 0), ("x", 1)]);
        let moves = even_out(&mut sets, &mut primaries);
        assert_eq!(moves, vec![(0, 1), (1, 1)]);
        assert_eq!(
            primaries,
            BTreeMap::from([("a", 1), ("b", 1), ("c", 1), ("x", 1)])
        );
    }
}
