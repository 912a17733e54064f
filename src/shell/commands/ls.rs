//! `ls [-a] [-d] [-j] [-s STATUS] [-o FILE]`: the tables, with Pegasus's
//! `[general_info]` columns and, with `-d`, `[healthy_info]` per AVAILABLE table.

use std::collections::HashSet;

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::model::{AppStatus, HealthCounts, PartitionConfig};
use crate::pb;
use crate::shell::commands::{OutputArgs, mark_stale};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report, col, num};
use crate::shell::registry::{Flow, Verb};
use crate::timeutil::format_ms;

/// The `ls` verb.
pub struct Ls;

#[derive(Args, Debug)]
struct LsArgs {
    /// List tables of every status, dropped ones included.
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Add per-table partition health.
    #[arg(short = 'd', long = "detailed")]
    detailed: bool,
    /// Only tables of this status.
    #[arg(short = 's', long = "status", value_parser = ["all", "available", "creating", "dropping", "dropped"], ignore_case = true, conflicts_with = "all")]
    status: Option<String>,
    #[command(flatten)]
    out: OutputArgs,
}

/// Builds the report from the tables and the set of serving nodes; health is `unknown`
/// when liveness is not (a stale answer: `serving` is `None`).
fn report(apps: &[pb::AppDetail], serving: Option<&HashSet<String>>, detailed: bool) -> Report {
    let general = apps
        .iter()
        .filter_map(|a| a.info.as_ref())
        .map(|i| {
            let status = AppStatus::from_pb(i.status).map_or("UNKNOWN", AppStatus::name);
            let dropped = i.drop_time_ms > 0;
            vec![
                Cell::num(i.app_id),
                Cell::str(status),
                Cell::str(&i.app_name),
                Cell::str(&i.app_type),
                Cell::num(i.partition_count),
                Cell::num(i.max_replica_count),
                Cell::bool(true),
                Cell::str(format_ms(i.create_time_ms)),
                Cell::opt(dropped.then(|| format_ms(i.drop_time_ms))),
                Cell::opt(dropped.then(|| format_ms(i.drop_expire_ms))),
                Cell::num(i.envs.len() as i64),
            ]
        })
        .collect();
    let columns = vec![
        col("app_id"),
        col("status"),
        col("app_name"),
        col("app_type"),
        num("partition_count"),
        num("replica_count"),
        col("is_stateful"),
        col("create_time"),
        col("drop_time"),
        col("drop_expire"),
        num("envs_count"),
    ];
    let mut report = Report::default().table("general_info", columns, general);
    let available: Vec<&pb::AppDetail> = apps
        .iter()
        .filter(|a| {
            a.info
                .as_ref()
                .is_some_and(|i| i.status == pb::AppStatus::Available as i32)
        })
        .collect();
    let mut summary = vec![("total_app_count", Cell::num(available.len() as i64))];
    if detailed {
        let mut rows = Vec::new();
        let (mut full, mut unhealthy, mut write_bad, mut read_bad) = (0i64, 0i64, 0i64, 0i64);
        for app in &available {
            let info = app.info.as_ref().expect("filtered on info");
            let parts: Vec<PartitionConfig> = app
                .partitions
                .iter()
                .map(PartitionConfig::from_pb)
                .collect();
            let mut row = vec![
                Cell::num(info.app_id),
                Cell::str(&info.app_name),
                Cell::num(info.partition_count),
            ];
            match serving {
                Some(serving) => {
                    let h =
                        HealthCounts::of(&parts, info.max_replica_count, |m| serving.contains(m));
                    full += i64::from(h.unhealthy == 0);
                    unhealthy += i64::from(h.unhealthy > 0);
                    write_bad += i64::from(h.write_unhealthy > 0);
                    read_bad += i64::from(h.read_unhealthy > 0);
                    row.extend([
                        Cell::num(h.fully_healthy),
                        Cell::num(h.unhealthy).bad_if(h.unhealthy > 0),
                        Cell::num(h.write_unhealthy).bad_if(h.write_unhealthy > 0),
                        Cell::num(h.read_unhealthy).bad_if(h.read_unhealthy > 0),
                    ]);
                }
                None => row.extend(std::iter::repeat_n(Cell::unknown(), 4)),
            }
            rows.push(row);
        }
        let columns = vec![
            col("app_id"),
            col("app_name"),
            num("partition_count"),
            num("fully_healthy"),
            num("unhealthy"),
            num("write_unhealthy"),
            num("read_unhealthy"),
        ];
        report = report.table("healthy_info", columns, rows);
        let known = |cell: Cell| {
            if serving.is_some() {
                cell
            } else {
                Cell::unknown()
            }
        };
        summary.extend([
            ("fully_healthy_app_count", known(Cell::num(full))),
            (
                "unhealthy_app_count",
                known(Cell::num(unhealthy).bad_if(unhealthy > 0)),
            ),
            (
                "write_unhealthy_app_count",
                known(Cell::num(write_bad).bad_if(write_bad > 0)),
            ),
            (
                "read_unhealthy_app_count",
                known(Cell::num(read_bad).bad_if(read_bad > 0)),
            ),
        ]);
    }
    report.pairs("summary", summary)
}

#[tonic::async_trait]
impl Verb for Ls {
    fn name(&self) -> &'static str {
        "ls"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "List the tables, with partition health per table (-d)"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/ls.md")
    }
    fn args(&self, cmd: Command) -> Command {
        LsArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = LsArgs::from_arg_matches(m)?;
        let status = args.status.map(|s| s.to_ascii_lowercase());
        let filter = match (args.all, status.as_deref()) {
            (true, _) | (false, Some("all")) => pb::AppStatus::Unspecified,
            (false, None) => pb::AppStatus::Available,
            (false, Some(s)) => s
                .parse::<AppStatus>()
                .map_err(|e| ShellError::Usage(e.to_string()))?
                .to_pb(),
        };
        let meta = ctx.meta()?;
        let reply = meta.list_apps_reply(filter).await?;
        let serving = if args.detailed && reply.stale.is_none() {
            serving_nodes(&meta).await?
        } else {
            None
        };
        let report = mark_stale(
            report(&reply.apps, serving.as_ref(), args.detailed),
            reply.stale.as_ref(),
        );
        args.out.emit(ctx, &report)
    }
}

/// The addresses of the nodes whose replicas count as serving now (what health is
/// counted against); `None` when a stale answer does not know.
pub async fn serving_nodes(
    meta: &crate::client::MetaClient,
) -> Result<Option<HashSet<String>>, ShellError> {
    let reply = meta.list_nodes_reply(pb::NodeStatus::Alive, false).await?;
    if reply.stale.is_some() {
        return Ok(None);
    }
    Ok(Some(
        reply
            .nodes
            .into_iter()
            .filter(|n| n.serving)
            .map(|n| n.address)
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(
        id: u32,
        name: &str,
        status: pb::AppStatus,
        parts: Vec<pb::PartitionConfig>,
    ) -> pb::AppDetail {
        pb::AppDetail {
            info: Some(pb::AppInfo {
                app_id: id,
                app_name: name.into(),
                status: status as i32,
                app_type: "pegasus".into(),
                partition_count: parts.len() as u32,
                max_replica_count: 3,
                create_time_ms: 1_704_103_200_000,
                ..Default::default()
            }),
            partitions: parts,
        }
    }

    fn part(pidx: u32, primary: &str, secondaries: &[&str]) -> pb::PartitionConfig {
        pb::PartitionConfig {
            pidx,
            ballot: 1,
            primary: primary.into(),
            secondaries: secondaries.iter().map(|s| s.to_string()).collect(),
            last_drops: vec![],
        }
    }

    #[test]
    fn health_counts_use_the_live_view() {
        let apps = [app(
            1,
            "t",
            pb::AppStatus::Available,
            vec![
                part(0, "a", &["b", "c"]),
                part(1, "", &["b", "c"]),
                part(2, "a", &["b", "d"]),
            ],
        )];
        let alive: HashSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let json = report(&apps, Some(&alive), true).to_json();
        let row = &json["healthy_info"][0];
        assert_eq!(
            (row["fully_healthy"].as_i64(), row["unhealthy"].as_i64()),
            (Some(1), Some(2))
        );
        assert_eq!(
            (
                row["write_unhealthy"].as_i64(),
                row["read_unhealthy"].as_i64()
            ),
            (Some(1), Some(1))
        );
        assert_eq!(json["summary"]["unhealthy_app_count"], 1);
        let text = report(&apps, Some(&alive), true).to_text(false);
        let header: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(header[..3], ["app_id", "status", "app_name"]);
        assert!(text.contains("2024-01-01_10:00:00"));
    }

    #[test]
    fn without_detail_there_is_no_health() {
        let apps = [app(
            1,
            "t",
            pb::AppStatus::Available,
            vec![part(0, "a", &[])],
        )];
        let json = report(&apps, None, false).to_json();
        assert!(json.get("healthy_info").is_none());
        assert_eq!(
            json["general_info"][0]["drop_time"],
            serde_json::Value::Null
        );
        assert_eq!(json["general_info"][0]["is_stateful"], true);
    }
}
