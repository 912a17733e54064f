//! Table administration that moves no data: `rename` and the table's environment
//! variables (`set_app_envs`, `del_app_envs`, `clear_app_envs`). Like Pegasus's rename,
//! neither checks the meta level; both persist the table's record before answering.

use std::collections::BTreeMap;

use super::MetaState;
use crate::error::{Error, Result};
use crate::meta::store::StoreOp;
use crate::model::{AppStatus, validate_app_name};

/// The longest environment key or value.
pub const MAX_ENV_LEN: usize = 4096;

/// What to do to a table's environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvChange {
    /// Set these keys.
    Set(BTreeMap<String, String>),
    /// Delete these keys (each must exist).
    Del(Vec<String>),
    /// Delete every key (`None`) or those with a prefix.
    Clear(Option<String>),
}

fn check_env(key: &str, value: &str) -> Result<()> {
    if key.is_empty()
        || key.len() > MAX_ENV_LEN
        || key.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::InvalidInput(format!(
            "an environment key is 1 to {MAX_ENV_LEN} bytes without spaces or control characters"
        )));
    }
    if value.len() > MAX_ENV_LEN {
        return Err(Error::InvalidInput(format!(
            "the value of {key} is longer than {MAX_ENV_LEN} bytes"
        )));
    }
    Ok(())
}

impl MetaState {
    fn available_app_id(&self, name: &str) -> Result<u32> {
        let app = self.planned_app_by_name(name)?;
        if app.record.status != AppStatus::Available {
            return Err(Error::NotFound(format!("table '{name}' does not exist")));
        }
        Ok(app.record.app_id)
    }

    /// Renames an available table. Returns its id.
    pub fn rename_app(&mut self, old: &str, new: &str) -> Result<u32> {
        let app_id = self.available_app_id(old)?;
        validate_app_name(new)?;
        if old == new {
            return Err(Error::InvalidInput(format!(
                "table '{old}' already has that name"
            )));
        }
        if self.planned_app_by_name(new).is_ok() {
            return Err(Error::AlreadyExists(format!(
                "table '{new}' already exists"
            )));
        }
        let mut record = self.apps[&app_id].record.clone();
        record.app_name = new.to_string();
        self.persist(vec![StoreOp::PutApp(record.clone())])?;
        self.apps.get_mut(&app_id).expect("app exists").record = record;
        tracing::info!(app_id, old, new, "table renamed");
        Ok(app_id)
    }

    /// Changes a table's environment variables. Returns them afterwards and the keys
    /// removed.
    pub fn update_app_envs(
        &mut self,
        name: &str,
        change: EnvChange,
    ) -> Result<(BTreeMap<String, String>, Vec<String>)> {
        let app_id = self.available_app_id(name)?;
        let mut record = self.apps[&app_id].record.clone();
        let mut removed = Vec::new();
        match change {
            EnvChange::Set(pairs) => {
                if pairs.is_empty() {
                    return Err(Error::InvalidInput("no environment variable to set".into()));
                }
                for (k, v) in &pairs {
                    check_env(k, v)?;
                }
                record.envs.extend(pairs);
            }
            EnvChange::Del(keys) => {
                if let Some(missing) = keys.iter().find(|k| !record.envs.contains_key(*k)) {
                    return Err(Error::NotFound(format!(
                        "table '{name}' has no environment variable {missing}"
                    )));
                }
                for k in keys {
                    if record.envs.remove(&k).is_some() {
                        removed.push(k);
                    }
                }
            }
            EnvChange::Clear(prefix) => {
                let prefix = prefix.unwrap_or_default();
                record.envs.retain(|k, _| {
                    let gone = k.starts_with(&prefix);
                    if gone {
                        removed.push(k.clone());
                    }
                    !gone
                });
            }
        }
        if record != self.apps[&app_id].record {
            self.persist(vec![StoreOp::PutApp(record.clone())])?;
            tracing::info!(
                app_id,
                app = name,
                envs = record.envs.len(),
                "table environment changed"
            );
        }
        let envs = record.envs.clone();
        self.apps.get_mut(&app_id).expect("app exists").record = record;
        Ok((envs, removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::state::tests::{fast_state, join};

    fn state_with_nodes(n: usize) -> MetaState {
        let (mut s, now) = fast_state();
        join(&mut s, n, now);
        s
    }

    #[test]
    fn rename_keeps_the_id_and_refuses_a_taken_name() {
        let mut s = state_with_nodes(3);
        let (id, _) = s.create_app("a", 2, 3, false, BTreeMap::new()).unwrap();
        s.create_app("b", 2, 3, false, BTreeMap::new()).unwrap();
        assert!(matches!(
            s.rename_app("a", "b"),
            Err(Error::AlreadyExists(_))
        ));
        assert!(matches!(
            s.rename_app("nosuch", "c"),
            Err(Error::NotFound(_))
        ));
        assert!(s.rename_app("a", "bad name").is_err());
        assert_eq!(s.rename_app("a", "c").unwrap(), id);
        assert_eq!(s.planned_app_by_name("c").unwrap().record.app_id, id);
        assert!(s.planned_app_by_name("a").is_err());
    }

    #[test]
    fn envs_are_set_deleted_and_cleared_by_prefix() {
        let mut s = state_with_nodes(3);
        s.create_app("t", 2, 3, false, BTreeMap::new()).unwrap();
        let set = |pairs: &[(&str, &str)]| {
            EnvChange::Set(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let (envs, _) = s
            .update_app_envs("t", set(&[("a.x", "1"), ("a.y", "2"), ("b", "3")]))
            .unwrap();
        assert_eq!(envs.len(), 3);
        let err = s.update_app_envs("t", EnvChange::Del(vec!["b".into(), "zz".into()]));
        assert!(
            matches!(err, Err(Error::NotFound(_))),
            "nothing deleted when a key is missing"
        );
        let (envs, removed) = s
            .update_app_envs("t", EnvChange::Clear(Some("a.".into())))
            .unwrap();
        assert_eq!(removed, vec!["a.x", "a.y"]);
        assert_eq!(envs.keys().collect::<Vec<_>>(), vec!["b"]);
        let (envs, removed) = s
            .update_app_envs("t", EnvChange::Del(vec!["b".into()]))
            .unwrap();
        assert!(envs.is_empty() && removed == vec!["b"]);
        assert!(s.update_app_envs("t", set(&[("has space", "1")])).is_err());
        assert!(
            s.update_app_envs("t", EnvChange::Set(BTreeMap::new()))
                .is_err()
        );
    }
}
