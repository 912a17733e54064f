//! `cluster_info [-j] [-o FILE]`: the cluster summary as a `[cluster_info]` key/value
//! list, with Pegasus's keys (`meta_servers`, `primary_meta_server`,
//! `meta_function_level` = the level in force) plus the stored level and node counts.

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::json;

use crate::model::MetaLevel;
use crate::pb;
use crate::shell::commands::{OutputArgs, mark_stale};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report};
use crate::shell::registry::{Flow, Verb};

/// The `cluster_info` verb.
pub struct ClusterInfo;

#[derive(Args, Debug)]
struct ClusterInfoArgs {
    #[command(flatten)]
    out: OutputArgs,
}

/// The standard deviation of `values` (0 for none), printed with 2 decimals.
fn stddev(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
}

fn level_name(value: i32) -> String {
    MetaLevel::from_pb(value)
        .ok()
        .flatten()
        .map_or("unknown".into(), |l| l.name().to_string())
}

/// Pegasus's `balance_operation_count` object: `{"move_pri","copy_pri","copy_sec","total"}`,
/// every count -1 while replica reports are still being collected.
fn balance_count(info: &pb::ClusterInfoReply) -> Cell {
    let c = info
        .balance_operation_count
        .unwrap_or(pb::BalanceOperationCount {
            move_pri: -1,
            copy_pri: -1,
            copy_sec: -1,
            total: -1,
        });
    let value = json!({
        "move_pri": c.move_pri,
        "copy_pri": c.copy_pri,
        "copy_sec": c.copy_sec,
        "total": c.total,
    });
    Cell::custom(value.to_string(), value).bad_if(c.total < 0)
}

/// Builds the report from the cluster summary and the ALIVE nodes. On a stale answer
/// (`--stale-ok`, a follower answered) what only the leader knows is `unknown`.
fn report(info: &pb::ClusterInfoReply, alive: &[pb::NodeInfo]) -> Report {
    let known = |cell: Cell| {
        if info.stale.is_none() {
            cell
        } else {
            Cell::unknown()
        }
    };
    let primaries: Vec<f64> = alive.iter().map(|n| f64::from(n.primary_count)).collect();
    let totals: Vec<f64> = alive
        .iter()
        .map(|n| f64::from(n.primary_count + n.secondary_count))
        .collect();
    let frozen = !info.freeze_reason.is_empty();
    let fixed = |v: f64| Cell::custom(format!("{v:.2}"), json!((v * 100.0).round() / 100.0));
    let report = Report::default().pairs(
        "cluster_info",
        vec![
            (
                "meta_servers",
                Cell::custom(info.meta_servers.join(","), json!(info.meta_servers)),
            ),
            (
                "primary_meta_server",
                Cell::opt(
                    (!info.primary_meta_server.is_empty())
                        .then(|| info.primary_meta_server.clone()),
                ),
            ),
            (
                "meta_function_level",
                Cell::str(level_name(info.effective_level)).bad_if(frozen),
            ),
            (
                "stored_meta_function_level",
                Cell::str(level_name(info.stored_level)),
            ),
            (
                "freeze_reason",
                Cell::opt(frozen.then(|| info.freeze_reason.clone())).bad_if(frozen),
            ),
            ("total_node_count", Cell::num(info.total_node_count)),
            ("alive_node_count", known(Cell::num(info.alive_node_count))),
            ("app_count", Cell::num(info.app_count)),
            ("balance_operation_count", known(balance_count(info))),
            (
                "actions_in_flight",
                known(Cell::num(info.actions_in_flight)),
            ),
            (
                "primary_replica_count_stddev",
                known(fixed(stddev(&primaries))),
            ),
            ("total_replica_count_stddev", known(fixed(stddev(&totals)))),
            (
                "serving_node_count",
                known(
                    Cell::num(info.serving_node_count)
                        .bad_if(info.serving_node_count < info.alive_node_count),
                ),
            ),
            (
                "unhealthy_partition_count",
                known(
                    Cell::num(info.unhealthy_partition_count)
                        .bad_if(info.unhealthy_partition_count > 0),
                ),
            ),
            (
                "failover_seconds",
                Cell::custom(
                    format!("{:.1}", info.failover_ms as f64 / 1000.0),
                    json!(info.failover_ms as f64 / 1000.0),
                ),
            ),
        ],
    );
    mark_stale(report, info.stale.as_ref())
}

#[tonic::async_trait]
impl Verb for ClusterInfo {
    fn name(&self) -> &'static str {
        "cluster_info"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Show the meta servers, the meta level in force and node counts"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/cluster_info.md")
    }
    fn args(&self, cmd: Command) -> Command {
        ClusterInfoArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = ClusterInfoArgs::from_arg_matches(m)?;
        let meta = ctx.meta()?;
        let info = meta.cluster_info().await?;
        let alive = meta.list_nodes(pb::NodeStatus::Alive).await?;
        args.out.emit(ctx, &report(&info, &alive))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_effective_and_stored_levels_and_balance_spread() {
        let info = pb::ClusterInfoReply {
            meta_servers: vec!["127.0.0.1:34601".into()],
            primary_meta_server: "127.0.0.1:34601".into(),
            stored_level: pb::MetaLevel::Lively as i32,
            effective_level: pb::MetaLevel::Freezed as i32,
            freeze_reason: "alive_node_count 2 < min_live_node_count_for_unfreeze 3".into(),
            total_node_count: 3,
            alive_node_count: 2,
            app_count: 1,
            uptime_ms: 0,
            balance_operation_count: Some(pb::BalanceOperationCount {
                move_pri: 2,
                copy_pri: 0,
                copy_sec: 1,
                total: 3,
            }),
            actions_in_flight: 1,
            serving_node_count: 1,
            unhealthy_partition_count: 4,
            failover_ms: 22_500,
            stale: None,
        };
        let node = |p, s| pb::NodeInfo {
            primary_count: p,
            secondary_count: s,
            ..Default::default()
        };
        let json = report(&info, &[node(4, 8), node(4, 12)]).to_json();
        let c = &json["cluster_info"];
        assert_eq!(c["meta_function_level"], "freezed");
        assert_eq!(c["stored_meta_function_level"], "lively");
        assert_eq!(c["meta_servers"], json!(["127.0.0.1:34601"]));
        assert_eq!(c["primary_replica_count_stddev"], 0.0);
        assert_eq!(c["total_replica_count_stddev"], 2.0);
        assert_eq!(c["balance_operation_count"]["total"], 3);
        assert_eq!(c["actions_in_flight"], 1);
        assert_eq!(c["serving_node_count"], 1);
        assert_eq!(c["unhealthy_partition_count"], 4);
        assert_eq!(c["failover_seconds"], 22.5);
        let text = report(&info, &[]).to_text(false);
        let line = text
            .lines()
            .find(|l| l.starts_with("meta_function_level "))
            .unwrap();
        assert!(line.ends_with(": freezed"), "{text}");
    }

    #[test]
    fn a_stale_answer_gives_no_liveness_counts() {
        let info = pb::ClusterInfoReply {
            meta_servers: vec!["a:1".into(), "b:1".into()],
            total_node_count: 3,
            app_count: 2,
            stale: Some(pb::StaleRead {
                member_id: 2,
                applied_index: 9,
                leader: "a:1".into(),
            }),
            ..Default::default()
        };
        let json = report(&info, &[]).to_json();
        let c = &json["cluster_info"];
        assert_eq!(c["total_node_count"], 3);
        assert_eq!(c["app_count"], 2);
        assert_eq!(c["primary_meta_server"], serde_json::Value::Null);
        for key in [
            "alive_node_count",
            "balance_operation_count",
            "serving_node_count",
            "unhealthy_partition_count",
        ] {
            assert_eq!(c[key], serde_json::Value::Null, "{key}");
        }
        assert_eq!(json["stale_read"]["leader"], "a:1");
    }

    #[test]
    fn stddev_of_nothing_is_zero() {
        assert_eq!(stddev(&[]), 0.0);
        assert_eq!(stddev(&[3.0, 3.0]), 0.0);
    }
}
