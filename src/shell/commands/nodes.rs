//! `nodes [-d] [-j] [-s all|alive|unalive] [-o FILE]`: the replica servers the meta
//! server knows, with Pegasus's columns (`address status replica_count primary_count
//! secondary_count` with `-d`) and a `[summary]`.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::pb;
use crate::shell::commands::{OutputArgs, mark_stale};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report, Tone, col, disk_cell, num};
use crate::shell::registry::{Flow, Verb};

/// The `nodes` verb.
pub struct Nodes;

#[derive(Args, Debug)]
struct NodesArgs {
    /// Add replica, primary and secondary counts per node.
    #[arg(short = 'd', long = "detailed")]
    detailed: bool,
    /// Only nodes of this status.
    #[arg(short = 's', long = "status", default_value = "all", value_parser = ["all", "alive", "unalive"], ignore_case = true)]
    status: String,
    /// Also list nodes that left the cluster (DROPPED).
    #[arg(short = 'a', long = "all")]
    all: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// Builds the report from the meta server's node list.
fn report(nodes: &[pb::NodeInfo], detailed: bool) -> Report {
    let mut columns = vec![col("address"), col("status")];
    if detailed {
        columns.extend([
            num("replica_count"),
            num("primary_count"),
            num("secondary_count"),
            num("disk_usage"),
        ]);
    }
    columns.extend([col("connection"), col("state")]);
    let rows = nodes
        .iter()
        .map(|n| {
            let status = match pb::NodeStatus::try_from(n.status) {
                Ok(pb::NodeStatus::Alive) => Cell::str("ALIVE").tone(Tone::Good),
                Ok(pb::NodeStatus::Unalive) => Cell::str("UNALIVE").tone(Tone::Bad),
                _ => Cell::str("UNKNOWN"),
            };
            let mut row = vec![Cell::str(&n.address), status];
            if detailed {
                row.extend([
                    Cell::num(n.primary_count + n.secondary_count),
                    Cell::num(n.primary_count),
                    Cell::num(n.secondary_count),
                    disk_cell(n.disk_bytes, n.primary_count + n.secondary_count > 0),
                ]);
            }
            row.push(connection_cell(n));
            row.push(state_cell(n.state));
            row
        })
        .collect();
    let members = || {
        nodes
            .iter()
            .filter(|n| n.state != pb::NodeState::Dropped as i32)
    };
    let count =
        |status: pb::NodeStatus| members().filter(|n| n.status == status as i32).count() as i64;
    let (alive, unalive) = (count(pb::NodeStatus::Alive), count(pb::NodeStatus::Unalive));
    let total = members().count() as i64;
    let mut summary = vec![
        ("total_node_count", Cell::num(total)),
        ("alive_node_count", Cell::num(alive)),
        ("unalive_node_count", Cell::num(unalive).bad_if(unalive > 0)),
    ];
    // Only a stale answer has nodes of unknown liveness.
    let unknown = total - alive - unalive;
    if unknown > 0 {
        summary.push(("unknown_node_count", Cell::num(unknown)));
    }
    Report::default()
        .table("details", columns, rows)
        .pairs("summary", summary)
}

/// CONNECTED while the node's replicas count as serving; LOST once its process is gone
/// or it stopped beaconing (before the grace period makes it UNALIVE); `-` for a node that
/// left; UNKNOWN on a stale answer.
fn connection_cell(n: &pb::NodeInfo) -> Cell {
    if n.state == pb::NodeState::Dropped as i32 {
        Cell::str("-")
    } else if n.status == pb::NodeStatus::Unknown as i32 {
        Cell::str("UNKNOWN")
    } else if n.serving {
        Cell::str("CONNECTED").tone(Tone::Good)
    } else {
        Cell::str("LOST").tone(Tone::Bad)
    }
}

/// The node's lifecycle.
fn state_cell(state: i32) -> Cell {
    let state = pb::NodeState::try_from(state).unwrap_or(pb::NodeState::Normal);
    let name = match state {
        pb::NodeState::Normal => "NORMAL",
        pb::NodeState::Decommissioning => "DECOMMISSIONING",
        pb::NodeState::Decommissioned => "DECOMMISSIONED",
        pb::NodeState::Dropped => "DROPPED",
    };
    Cell::str(name)
}

#[tonic::async_trait]
impl Verb for Nodes {
    fn name(&self) -> &'static str {
        "nodes"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "List the replica servers with their status and replica counts"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/nodes.md")
    }
    fn args(&self, cmd: Command) -> Command {
        NodesArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = NodesArgs::from_arg_matches(m)?;
        let status = match args.status.to_ascii_lowercase().as_str() {
            "alive" => pb::NodeStatus::Alive,
            "unalive" => pb::NodeStatus::Unalive,
            _ => pb::NodeStatus::Unspecified,
        };
        let reply = ctx.meta()?.list_nodes_reply(status, args.all).await?;
        let report = mark_stale(report(&reply.nodes, args.detailed), reply.stale.as_ref());
        args.out.emit(ctx, &report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addr: &str, alive: bool, p: u32, s: u32) -> pb::NodeInfo {
        pb::NodeInfo {
            address: addr.into(),
            status: if alive {
                pb::NodeStatus::Alive
            } else {
                pb::NodeStatus::Unalive
            } as i32,
            primary_count: p,
            secondary_count: s,
            serving: alive,
            ..Default::default()
        }
    }

    #[test]
    fn nodes_of_unknown_liveness_are_neither_alive_nor_unalive() {
        let unknown = pb::NodeInfo {
            address: "h:1".into(),
            status: pb::NodeStatus::Unknown as i32,
            ..Default::default()
        };
        let nodes = [unknown, node("h:2", false, 0, 0)];
        let json = report(&nodes, false).to_json();
        assert_eq!(json["details"][0]["status"], "UNKNOWN");
        assert_eq!(json["details"][0]["connection"], "UNKNOWN");
        assert_eq!(json["summary"]["alive_node_count"], 0);
        assert_eq!(json["summary"]["unalive_node_count"], 1);
        assert_eq!(json["summary"]["unknown_node_count"], 1);
        let fresh = report(&nodes[1..], false).to_json();
        assert!(fresh["summary"].get("unknown_node_count").is_none());
    }

    #[test]
    fn disk_not_yet_reported_is_unknown_not_zero() {
        let mut reported = node("h:1", true, 2, 3);
        reported.disk_bytes = 3 << 20;
        let nodes = [node("h:0", true, 2, 3), reported, node("h:2", true, 0, 0)];
        let json = report(&nodes, true).to_json();
        assert!(
            json["details"][0]["disk_usage"].is_null(),
            "replicas placed, none reported yet: {}",
            json["details"][0]
        );
        assert_eq!(json["details"][1]["disk_usage"], 3 << 20);
        assert_eq!(
            json["details"][2]["disk_usage"], 0,
            "no replicas, nothing on disk"
        );
        let text = report(&nodes, true).to_text(false);
        let cells = |i: usize| -> Vec<String> {
            let line = text.lines().nth(2 + i).unwrap_or_default();
            line.split_whitespace().map(String::from).collect()
        };
        assert_eq!(cells(0)[5], "unknown");
        assert_eq!(cells(1)[5], "3.0MB");
        assert_eq!(cells(2)[5], "0B");
    }

    #[test]
    fn detailed_columns_are_in_pegasus_order() {
        let nodes = [
            node("127.0.0.1:34801", true, 8, 16),
            node("127.0.0.1:34802", false, 0, 0),
        ];
        let text = report(&nodes, true).to_text(false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "[details]");
        let header: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "address",
                "status",
                "replica_count",
                "primary_count",
                "secondary_count",
                "disk_usage",
                "connection",
                "state"
            ]
        );
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "127.0.0.1:34801",
                "ALIVE",
                "24",
                "8",
                "16",
                "unknown",
                "CONNECTED",
                "NORMAL"
            ]
        );
        let lost: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(lost[6], "LOST", "a node that is not serving says so");
        assert!(text.contains("unalive_node_count  : 1"));
        let json = report(&nodes, true).to_json();
        assert_eq!(json["details"][0]["replica_count"], 24);
        assert_eq!(json["summary"]["total_node_count"], 2);
    }

    #[test]
    fn plain_listing_keeps_address_and_status_first() {
        let text = report(&[node("a:1", true, 1, 1)], false).to_text(false);
        let header: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(header, ["address", "status", "connection", "state"]);
    }
}
