//! Thin gRPC adapters for table administration that moves no data: rename and the
//! table's environment variables. The decisions are [`crate::meta::state`]'s.

use crate::error::{Error, Result};
use crate::meta::Meta;
use crate::meta::state::EnvChange;
use crate::pb;

/// Renames a table.
pub async fn rename(meta: &Meta, req: pb::RenameAppRequest) -> Result<pb::RenameAppReply> {
    let app_id = meta
        .change(|s| s.rename_app(&req.old_app_name, &req.new_app_name))
        .await?;
    Ok(pb::RenameAppReply { app_id })
}

/// The one change a request asks for.
fn change_of(req: pb::UpdateAppEnvsRequest) -> Result<EnvChange> {
    let asked = [
        !req.set.is_empty(),
        !req.del_keys.is_empty(),
        req.clear_all,
        !req.clear_prefix.is_empty(),
    ];
    if asked.iter().filter(|a| **a).count() != 1 {
        return Err(Error::InvalidInput(
            "say exactly one of: keys to set, keys to delete, clear all, clear a prefix".into(),
        ));
    }
    Ok(if !req.set.is_empty() {
        EnvChange::Set(req.set.into_iter().collect())
    } else if !req.del_keys.is_empty() {
        EnvChange::Del(req.del_keys)
    } else if req.clear_all {
        EnvChange::Clear(None)
    } else {
        EnvChange::Clear(Some(req.clear_prefix))
    })
}

/// Sets, deletes or clears a table's environment variables.
pub async fn update_envs(
    meta: &Meta,
    req: pb::UpdateAppEnvsRequest,
) -> Result<pb::UpdateAppEnvsReply> {
    let name = req.app_name.clone();
    let change = change_of(req)?;
    let (envs, removed) = meta.change(|s| s.update_app_envs(&name, change)).await?;
    Ok(pb::UpdateAppEnvsReply {
        envs: envs.into_iter().collect(),
        removed,
    })
}
