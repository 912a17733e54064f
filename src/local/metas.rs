//! The embedded cluster's meta servers when it runs a group (`shell --local N --metas M`):
//! starting a member (the first starts the group, the others join through those
//! running), adding one (Databend's scale-out), and stopping and restarting one as a crash
//! and a recovery would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::LocalCluster;
use crate::error::{Error, Result};
use crate::meta::ha::MetaHolder;
use crate::meta::{GroupOptions, start_member};
use crate::server::{ServerHandle, bind};

/// One meta server of an embedded group.
pub(super) struct LocalMeta {
    pub(super) id: u64,
    pub(super) address: String,
    pub(super) running: Option<(ServerHandle, Arc<MetaHolder>)>,
}

impl LocalCluster {
    /// Starts (or restarts) group member `id` on `listen`: member 1 of a new group starts
    /// it, every other joins through the members running.
    pub(super) async fn start_member(&mut self, id: u64, listen: &str) -> Result<String> {
        let data_dir = self.root.join(format!("meta-{id}"));
        let join: Vec<String> = self
            .metas
            .iter()
            .filter(|m| m.id != id && m.running.is_some())
            .map(|m| m.address.clone())
            .collect();
        let opts = GroupOptions {
            id,
            single: id == 1 && join.is_empty(),
            join,
            observer: false,
            timings: Default::default(),
        };
        // A member stopped in this process lets go of its files once its tasks end.
        let deadline = Instant::now() + Duration::from_secs(10);
        let (handle, holder) = loop {
            let listener = bind(listen).await?;
            match start_member(self.config.clone(), opts.clone(), &data_dir, listener).await {
                Ok(started) => break started,
                Err(e) if e.to_string().contains("in use") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let address = handle.addr().to_string();
        match self.metas.iter_mut().find(|m| m.id == id) {
            Some(m) => m.running = Some((handle, holder)),
            None => self.metas.push(LocalMeta {
                id,
                address: address.clone(),
                running: Some((handle, holder)),
            }),
        }
        Ok(address)
    }

    /// Starts one more meta server, which joins the group as a voter (Databend's
    /// scale-out). Only for a cluster started with several meta servers.
    pub async fn add_meta(&mut self) -> Result<(u64, String)> {
        self.require_group()?;
        let id = self.metas.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let address = self.start_member(id, "127.0.0.1:0").await?;
        self.remember_ports()?;
        Ok((id, address))
    }

    /// Stops meta server `id` at once, as a crash would.
    pub async fn stop_meta(&mut self, id: u64) -> Result<String> {
        self.require_group()?;
        let member = self.member_mut(id)?;
        let Some((handle, _)) = member.running.take() else {
            return Err(Error::Refused(format!(
                "meta server {id} is already stopped"
            )));
        };
        handle.shutdown().await;
        Ok(member.address.clone())
    }

    /// Starts stopped meta server `id` again on its address and data.
    pub async fn start_meta(&mut self, id: u64) -> Result<String> {
        self.require_group()?;
        let member = self.member_mut(id)?;
        if member.running.is_some() {
            return Err(Error::Refused(format!(
                "meta server {id} is already running"
            )));
        }
        let listen = member.address.clone();
        self.start_member(id, &listen).await
    }

    fn require_group(&self) -> Result<()> {
        if self.metas.is_empty() {
            return Err(Error::Refused(
                "the local cluster has one meta server alone: start the shell with --local N --metas 3 to rehearse a group"
                    .into(),
            ));
        }
        Ok(())
    }

    fn member_mut(&mut self, id: u64) -> Result<&mut LocalMeta> {
        self.metas
            .iter_mut()
            .find(|m| m.id == id)
            .ok_or_else(|| Error::NotFound(format!("no meta server {id} in the local cluster")))
    }
}
