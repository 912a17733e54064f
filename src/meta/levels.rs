//! The meta level in force. The stored level is what the operator set; the effective
//! level drops to `freezed` while too few nodes are ALIVE (auto-freeze), so that a
//! cluster losing many nodes at once stops moving replicas instead of piling them onto
//! the survivors.

use crate::model::MetaLevel;

/// The thresholds auto-freeze compares the live view against.
#[derive(Debug, Clone, Copy)]
pub struct FreezeThresholds {
    /// Freeze while fewer nodes than this are ALIVE.
    pub min_live_node_count: u32,
    /// Freeze while ALIVE·100 < this·(ALIVE+UNALIVE).
    pub live_percentage: u32,
}

/// The level in force and, when it is lower than the stored one, why.
pub fn effective_level(
    stored: MetaLevel,
    alive: u32,
    dead: u32,
    t: FreezeThresholds,
) -> (MetaLevel, Option<String>) {
    if stored <= MetaLevel::Freezed {
        return (stored, None);
    }
    if alive < t.min_live_node_count {
        return (
            MetaLevel::Freezed,
            Some(format!(
                "alive_node_count {alive} < min_live_node_count_for_unfreeze {}",
                t.min_live_node_count
            )),
        );
    }
    let total = u64::from(alive) + u64::from(dead);
    if u64::from(alive) * 100 < u64::from(t.live_percentage) * total {
        return (
            MetaLevel::Freezed,
            Some(format!(
                "alive_node_count {alive} of {total} is below \
                 node_live_percentage_threshold_for_update {}%",
                t.live_percentage
            )),
        );
    }
    (stored, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: FreezeThresholds = FreezeThresholds {
        min_live_node_count: 3,
        live_percentage: 65,
    };

    #[test]
    fn freezes_below_the_minimum_count() {
        let (level, why) = effective_level(MetaLevel::Lively, 2, 0, T);
        assert_eq!(level, MetaLevel::Freezed);
        assert!(why.unwrap().contains("min_live_node_count_for_unfreeze 3"));
        assert_eq!(
            effective_level(MetaLevel::Lively, 3, 0, T).0,
            MetaLevel::Lively
        );
    }

    #[test]
    fn freezes_below_the_percentage() {
        // 3 of 5 alive = 60% < 65%.
        assert_eq!(
            effective_level(MetaLevel::Steady, 3, 2, T).0,
            MetaLevel::Freezed
        );
        // 13 of 20 = 65%: not below.
        assert_eq!(
            effective_level(MetaLevel::Steady, 13, 7, T).0,
            MetaLevel::Steady
        );
        let zero = FreezeThresholds {
            live_percentage: 0,
            ..T
        };
        assert_eq!(
            effective_level(MetaLevel::Steady, 3, 100, zero).0,
            MetaLevel::Steady
        );
    }

    #[test]
    fn low_stored_levels_are_never_raised() {
        assert_eq!(
            effective_level(MetaLevel::Blind, 0, 9, T),
            (MetaLevel::Blind, None)
        );
        assert_eq!(
            effective_level(MetaLevel::Freezed, 9, 0, T),
            (MetaLevel::Freezed, None)
        );
    }
}
