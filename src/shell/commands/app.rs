//! `app NAME [-d] [-j] [-o FILE]`: one table. `[general]` always; with `-d`, Pegasus's
//! `[replicas]` (`pidx ballot replica_count primary secondaries`), `[nodes]` (`node
//! primary secondary total`, only nodes holding replicas) and `[healthy]`.

use std::collections::{BTreeMap, HashSet};

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::json;

use crate::model::{HealthCounts, PartitionConfig, partition_health};
use crate::pb;
use crate::shell::commands::{OutputArgs, mark_stale};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report, col, disk_cell, num};
use crate::shell::registry::{Flow, Verb};

/// The `app` verb.
pub struct App;

#[derive(Args, Debug)]
struct AppArgs {
    /// The table's name.
    #[arg(value_name = "APP")]
    name: String,
    /// Add every partition's configuration, replicas per node and health.
    #[arg(short = 'd', long = "detailed")]
    detailed: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// Builds the report from the meta server's answer (liveness and health `unknown` when
/// it is stale).
fn report(reply: &pb::QueryAppReply, detailed: bool) -> Report {
    mark_stale(report_of(reply, detailed), reply.stale.as_ref())
}

fn report_of(reply: &pb::QueryAppReply, detailed: bool) -> Report {
    let known = reply.stale.is_none();
    let app = reply.app.clone().unwrap_or_default();
    let info = app.info.unwrap_or_default();
    let mut report = Report::default().pairs(
        "general",
        vec![
            ("app_name", Cell::str(&info.app_name)),
            ("app_id", Cell::num(info.app_id)),
            ("partition_count", Cell::num(info.partition_count)),
            ("max_replica_count", Cell::num(info.max_replica_count)),
        ],
    );
    if !detailed {
        return report;
    }
    let serving: HashSet<&str> = reply.serving_nodes.iter().map(String::as_str).collect();
    let is_alive = |m: &str| serving.contains(m);
    let parts: Vec<PartitionConfig> = app
        .partitions
        .iter()
        .map(PartitionConfig::from_pb)
        .collect();
    let max = info.max_replica_count;
    let mut per_node: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let mut disk: BTreeMap<(u32, &str), u64> = BTreeMap::new();
    for d in &reply.replica_disks {
        disk.insert((d.pidx, d.node.as_str()), d.disk_bytes);
    }
    let node_disk = |node: &str| -> u64 {
        disk.iter()
            .filter(|((_, n), _)| *n == node)
            .map(|(_, b)| b)
            .sum()
    };
    let rows = parts
        .iter()
        .map(|p| {
            let live = p.members().filter(|m| is_alive(m)).count() as u32;
            let healthy = partition_health(p, max, is_alive).fully_healthy;
            if let Some(primary) = &p.primary {
                per_node.entry(primary).or_default().0 += 1;
            }
            for s in &p.secondaries {
                per_node.entry(s).or_default().1 += 1;
            }
            let replicas = if known {
                Cell::custom(
                    format!("{live}/{max}"),
                    json!({ "alive": live, "max": max }),
                )
                .bad_if(!healthy)
            } else {
                Cell::custom(format!("?/{max}"), json!({ "alive": null, "max": max }))
            };
            vec![
                Cell::num(p.pidx),
                Cell::num(p.ballot),
                replicas,
                Cell::opt(p.primary.clone()),
                Cell::list(&p.secondaries),
                disk_cell(
                    p.primary
                        .as_deref()
                        .and_then(|n| disk.get(&(p.pidx, n)))
                        .copied()
                        .unwrap_or(0),
                    p.primary.is_some(),
                ),
            ]
        })
        .collect();
    let columns = vec![
        col("pidx"),
        col("ballot"),
        col("replica_count"),
        col("primary"),
        col("secondaries"),
        num("disk_usage"),
    ];
    report = report.table("replicas", columns, rows);
    let node_rows = per_node
        .iter()
        .map(|(node, (p, s))| {
            vec![
                Cell::str(*node),
                Cell::num(*p),
                Cell::num(*s),
                Cell::num(p + s),
                disk_cell(node_disk(node), p + s > 0),
            ]
        })
        .collect();
    report = report.table(
        "nodes",
        vec![
            col("node"),
            num("primary"),
            num("secondary"),
            num("total"),
            num("disk_usage"),
        ],
        node_rows,
    );
    let h = HealthCounts::of(&parts, max, is_alive);
    let count = |n: u32| {
        if known {
            Cell::num(n).bad_if(n > 0)
        } else {
            Cell::unknown()
        }
    };
    report.pairs(
        "healthy",
        vec![
            (
                "fully_healthy_partition_count",
                if known {
                    Cell::num(h.fully_healthy)
                } else {
                    Cell::unknown()
                },
            ),
            ("unhealthy_partition_count", count(h.unhealthy)),
            ("write_unhealthy_partition_count", count(h.write_unhealthy)),
            ("read_unhealthy_partition_count", count(h.read_unhealthy)),
        ],
    )
}

#[tonic::async_trait]
impl Verb for App {
    fn name(&self) -> &'static str {
        "app"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Show one table: its partitions' configurations and health (-d)"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/app.md")
    }
    fn args(&self, cmd: Command) -> Command {
        AppArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = AppArgs::from_arg_matches(m)?;
        crate::model::validate_app_name(&args.name)
            .map_err(|e| ShellError::Usage(e.to_string()))?;
        let reply = ctx.meta()?.query_app(&args.name).await?;
        args.out.emit(ctx, &report(&reply, args.detailed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn reply() -> pb::QueryAppReply {
        let part = |pidx: u32, primary: &str, secondaries: &[&str]| pb::PartitionConfig {
            pidx,
            ballot: 3,
            primary: primary.into(),
            secondaries: secondaries.iter().map(|s| s.to_string()).collect(),
            last_drops: vec![],
        };
        pb::QueryAppReply {
            app: Some(pb::AppDetail {
                info: Some(pb::AppInfo {
                    app_id: 2,
                    app_name: "t1".into(),
                    partition_count: 2,
                    max_replica_count: 3,
                    ..Default::default()
                }),
                partitions: vec![
                    part(0, "h:1", &["h:3", "h:2"]),
                    part(1, "", &["h:1", "h:4"]),
                ],
            }),
            alive_nodes: vec!["h:1".into(), "h:2".into(), "h:3".into()],
            serving_nodes: vec!["h:1".into(), "h:2".into(), "h:3".into()],
            replica_disks: vec![
                pb::ReplicaDisk {
                    pidx: 0,
                    node: "h:1".into(),
                    disk_bytes: 2048,
                },
                pb::ReplicaDisk {
                    pidx: 0,
                    node: "h:3".into(),
                    disk_bytes: 1024,
                },
            ],
            ddd_partitions: vec![],
            stale: None,
        }
    }

    #[test]
    fn a_stale_answer_shows_no_liveness_or_health() {
        let stale = pb::QueryAppReply {
            stale: Some(pb::StaleRead {
                member_id: 2,
                applied_index: 17,
                leader: String::new(),
            }),
            ..reply()
        };
        let json = report(&stale, true).to_json();
        assert_eq!(json["replicas"][0]["replica_count"]["alive"], Value::Null);
        assert_eq!(json["replicas"][0]["replica_count"]["max"], 3);
        assert_eq!(
            json["healthy"]["fully_healthy_partition_count"],
            Value::Null
        );
        assert_eq!(json["healthy"]["unhealthy_partition_count"], Value::Null);
        assert_eq!(json["stale_read"]["member_id"], 2);
        assert_eq!(json["stale_read"]["applied_index"], 17);
        assert_eq!(json["stale_read"]["leader"], Value::Null);
        let text = report(&stale, true).to_text(false);
        assert!(text.contains("?/3") && !text.contains("3/3"), "{text}");
    }

    #[test]
    fn replicas_rows_are_awk_friendly() {
        let text = report(&reply(), true).to_text(false);
        let row: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("0 "))
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            row,
            ["0", "3", "3/3", "h:1", "[h:3,h:2]", "2.0KB"],
            "disk_usage is the primary's replica"
        );
        let row1: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("1 "))
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            row1,
            ["1", "3", "1/3", "-", "[h:1,h:4]", "0B"],
            "dead h:4 does not count"
        );
    }

    #[test]
    fn json_has_typed_rows_and_node_totals() {
        let json = report(&reply(), true).to_json();
        assert_eq!(json["replicas"][0]["primary"], "h:1");
        assert_eq!(json["replicas"][0]["secondaries"], json!(["h:3", "h:2"]));
        assert_eq!(json["replicas"][1]["primary"], serde_json::Value::Null);
        assert_eq!(
            json["replicas"][0]["replica_count"],
            json!({"alive": 3, "max": 3})
        );
        assert_eq!(
            json["nodes"][0],
            json!({"node": "h:1", "primary": 1, "secondary": 1, "total": 2, "disk_usage": 2048})
        );
        assert_eq!(json["nodes"][1]["node"], "h:2");
        assert_eq!(
            json["nodes"][1]["disk_usage"],
            Value::Null,
            "h:2 holds a replica it has not reported: unknown, not 0"
        );
        assert_eq!(json["nodes"][2]["disk_usage"], 1024);
        assert_eq!(json["healthy"]["read_unhealthy_partition_count"], 1);
        assert!(report(&reply(), false).to_json().get("replicas").is_none());
    }
}
