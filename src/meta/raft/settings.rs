//! Runtime settings in a group of meta servers: the leader holds what an operator set
//! (`set_meta_level`, `assign_delay`, ...) and sends it to every other member, so a new
//! leader carries on with the values in force.

use std::sync::Arc;
use std::time::Duration;

use super::group::Member;
use super::network::{Request, Response};

impl Member {
    /// Holds `command args` as the latest value of that runtime setting.
    pub fn hold_setting(&self, command: String, args: Vec<String>) {
        let mut held = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|(c, _)| *c != command);
        held.push((command, args));
    }

    /// The runtime settings held, in the order they were last changed.
    pub fn held_settings(&self) -> Vec<(String, Vec<String>)> {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Holds a setting the leader changed and sends it to every other member (best
    /// effort: a member that is down gets its configured values when it restarts, as a
    /// Pegasus meta server does).
    pub fn forward_setting(self: &Arc<Self>, command: String, args: Vec<String>) {
        self.hold_setting(command.clone(), args.clone());
        for (id, node) in self.members().nodes {
            if id == self.id {
                continue;
            }
            let this = self.clone();
            let request = Request::Setting {
                command: command.clone(),
                args: args.clone(),
            };
            tokio::spawn(async move {
                for _ in 0..3 {
                    let sent = super::network::call_incarnation(
                        this.transport.as_ref(),
                        &node.address,
                        &node.incarnation,
                        request.clone(),
                        this.admin_timeout(),
                    )
                    .await;
                    if matches!(sent, Ok(Response::Done(_))) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(this.timings.election_min_ms)).await;
                }
                tracing::warn!(member = id, "could not forward a runtime setting");
            });
        }
    }
}
