//! The replica server's remote commands.

use serde_json::json;

use crate::remote::{CommandResult, Registry, RemoteCommand, SetterArg, int_setter_arg};
use crate::replica::Replica;
use crate::replica::limiter::DEFAULT_COPY_RATE_MB;

/// The replica server's command registry.
pub static REPLICA_COMMANDS: Registry<Replica> = Registry::new(&[
    RemoteCommand {
        name: "server-info",
        args: "",
        help: "version, role, address, start time, lease and replica counts of this process",
        run: server_info,
    },
    RemoteCommand {
        name: "server-stat",
        args: "",
        help: "requests answered per table and kind since the process started: counts and latency histograms (server_stat and app_stat sample it twice)",
        run: server_stat,
    },
    RemoteCommand {
        name: "replica.kill_partition",
        args: "[app_id [partition_index]]",
        help: "delete replicas on this node (all, a table's, or one partition's); each is reported lost and learned again, never recreated empty",
        run: kill_partition,
    },
    RemoteCommand {
        name: "nfs.max_copy_rate_megabytes_per_disk",
        args: "[NUM | DEFAULT]",
        help: "query or set how fast this node streams snapshots to learners, in MB/s",
        run: max_copy_rate,
    },
]);

fn max_copy_rate(replica: &Replica, args: &[String]) -> CommandResult {
    const NAME: &str = "max_copy_rate_megabytes_per_disk";
    let old = replica.limiter().rate_mb();
    let new = match int_setter_arg(args, 1..=1_000_000)? {
        SetterArg::Query => return Ok(json!({ "error": "ok", NAME: old })),
        SetterArg::Default => DEFAULT_COPY_RATE_MB,
        SetterArg::Set(v) => v,
    };
    replica.limiter().set_rate_mb(new);
    Ok(json!({ "error": "ok", NAME: new, "old": old }))
}

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
    let killed = replica.kill_partitions(app_id, pidx);
    let killed: Vec<String> = killed.iter().map(ToString::to_string).collect();
    Ok(json!({ "error": "ok", "killed": killed }))
}

fn server_stat(replica: &Replica, args: &[String]) -> CommandResult {
    if !args.is_empty() {
        return Err("server-stat takes no arguments".into());
    }
    let counters = replica.node().stats.sample();
    Ok(json!({ "error": "ok", "counters": counters }))
}

fn server_info(replica: &Replica, _args: &[String]) -> CommandResult {
    Ok(replica.server_info())
}
