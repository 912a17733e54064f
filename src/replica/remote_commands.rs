//! The replica server's remote commands.

use crate::remote::{CommandResult, Registry, RemoteCommand};
use crate::replica::Replica;

/// The replica server's command registry.
pub static REPLICA_COMMANDS: Registry<Replica> = Registry::new(&[RemoteCommand {
    name: "server-info",
    args: "",
    help: "version, role, address, start time, lease and replica counts of this process",
    run: server_info,
}]);

fn server_info(replica: &Replica, _args: &[String]) -> CommandResult {
    Ok(replica.server_info())
}
