//! The replica server's remote commands.

use serde_json::json;

use crate::remote::{CommandResult, Registry, RemoteCommand};
use crate::replica::Replica;

/// The replica server's command registry.
pub static REPLICA_COMMANDS: Registry<Replica> = Registry::new(&[
    RemoteCommand {
        name: "server-info",
        args: "",
        help: "version, role, address, start time, lease and replica counts of this process",
        run: server_info,
    },
    RemoteCommand {
        name: "replica.kill_partition",
        args: "[app_id [partition_index]]",
        help: "close and delete replicas on this node: all, a table's, or one partition's",
        run: kill_partition,
    },
]);

fn kill_partition(replica: &Replica, args: &[String]) -> CommandResult {
    let parse = |s: &String, what: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("invalid argument '{s}': expected {what}"))
    };
    let (app_id, pidx) = match args {
        [] => (None, None),
        [a] => (Some(parse(a, "an app id")?), None),
        [a, p] => (
            Some(parse(a, "an app id")?),
            Some(parse(p, "a partition index")?),
        ),
        _ => {
            return Err(format!(
                "expected at most two arguments, got {}",
                args.len()
            ));
        }
    };
    let killed = replica
        .record()
        .kill(app_id, pidx)
        .map_err(|e| e.to_string())?;
    let killed: Vec<String> = killed.iter().map(ToString::to_string).collect();
    Ok(json!({ "error": "ok", "killed": killed }))
}

fn server_info(replica: &Replica, _args: &[String]) -> CommandResult {
    Ok(replica.server_info())
}
