//! Turns a manual proposal — the shell's `balance -p move_pri|copy_pri|copy_sec -f FROM
//! -t TO` or `propose -p TYPE -t TARGET -n NODE` — into an [`Action`], with the checks
//! Pegasus makes on the target: the node that would execute the change must be the
//! partition's primary (or, for ASSIGN_PRIMARY, the node itself).

use crate::error::{Error, Result};
use crate::meta::snapshot::Action;
use crate::model::{Gpid, PartitionConfig};

/// The proposal kinds `balance` takes.
pub const BALANCE_KINDS: [&str; 3] = ["move_pri", "copy_pri", "copy_sec"];

/// The proposal kinds `propose` takes.
pub const PROPOSE_KINDS: [&str; 5] = [
    "ASSIGN_PRIMARY",
    "ADD_SECONDARY",
    "DOWNGRADE_TO_SECONDARY",
    "DOWNGRADE_TO_INACTIVE",
    "REMOVE",
];

/// Builds the action for a proposal of `kind` on `gpid` (whose configuration is
/// `config`). For balance kinds `from`/`to` are the move's ends; for propose kinds `from`
/// is the target (executing node) and `to` the node affected.
pub fn proposal_action(
    kind: &str,
    gpid: Gpid,
    from: &str,
    to: &str,
    config: &PartitionConfig,
) -> Result<Action> {
    let (from, to) = (from.to_string(), to.to_string());
    let target_is_primary = || {
        if config.primary.as_deref() == Some(from.as_str()) {
            Ok(())
        } else {
            Err(Error::Refused(format!(
                "target {from} is not the primary of {gpid} (the primary is {})",
                config.primary.as_deref().unwrap_or("-")
            )))
        }
    };
    Ok(match kind {
        "move_pri" => Action::MovePrimary { gpid, from, to },
        "copy_pri" => Action::CopyPrimary { gpid, from, to },
        "copy_sec" => Action::CopySecondary { gpid, from, to },
        "ASSIGN_PRIMARY" => {
            if from != to {
                return Err(Error::Refused(
                    "ASSIGN_PRIMARY: the target must be the node itself".into(),
                ));
            }
            if config.secondaries.contains(&to) {
                Action::UpgradeToPrimary { gpid, node: to }
            } else {
                Action::AssignPrimary { gpid, node: to }
            }
        }
        "ADD_SECONDARY" => {
            target_is_primary()?;
            Action::AddSecondary { gpid, node: to }
        }
        "DOWNGRADE_TO_SECONDARY" => {
            target_is_primary()?;
            Action::DowngradeToSecondary { gpid, node: to }
        }
        "DOWNGRADE_TO_INACTIVE" | "REMOVE" => {
            target_is_primary()?;
            Action::RemoveSecondary { gpid, node: to }
        }
        other => {
            return Err(Error::InvalidInput(format!(
                "unknown proposal type '{other}' (expected one of {}, {})",
                BALANCE_KINDS.join("|"),
                PROPOSE_KINDS.join("|")
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PartitionConfig {
        PartitionConfig {
            pidx: 0,
            ballot: 2,
            primary: Some("a".into()),
            secondaries: vec!["b".into(), "c".into()],
            last_drops: vec![],
            fresh: false,
        }
    }

    #[test]
    fn kinds_map_to_actions_and_targets_are_checked() {
        let g = Gpid { app_id: 1, pidx: 0 };
        assert_eq!(
            proposal_action("move_pri", g, "a", "b", &config()).unwrap(),
            Action::MovePrimary {
                gpid: g,
                from: "a".into(),
                to: "b".into()
            }
        );
        assert_eq!(
            proposal_action("DOWNGRADE_TO_INACTIVE", g, "a", "c", &config()).unwrap(),
            Action::RemoveSecondary {
                gpid: g,
                node: "c".into()
            }
        );
        let err = proposal_action("ADD_SECONDARY", g, "b", "d", &config()).unwrap_err();
        assert!(err.to_string().contains("not the primary"), "{err}");
        assert!(matches!(
            proposal_action("NOPE", g, "a", "b", &config()),
            Err(Error::InvalidInput(_))
        ));
        assert_eq!(
            proposal_action("ASSIGN_PRIMARY", g, "b", "b", &config()).unwrap(),
            Action::UpgradeToPrimary {
                gpid: g,
                node: "b".into()
            }
        );
    }
}
