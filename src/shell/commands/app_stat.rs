//! `app_stat [-a APP] [-i MS] [-j] [-o FILE]`: per table, requests per second and p99
//! latency by kind over a sample interval, summed over every ALIVE replica server (each
//! request is counted by the primary that answered it), with a total row.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::json;

use crate::pb;
use crate::shell::commands::OutputArgs;
use crate::shell::commands::server_stat::{IntervalArg, rate_cells, rate_columns, sample_twice};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report, col, num};
use crate::shell::registry::{Flow, Verb};
use crate::stats::{Counter, delta, rates};

/// The `app_stat` verb.
pub struct AppStat;

#[derive(Args, Debug)]
struct AppStatArgs {
    /// Only this table.
    #[arg(short = 'a', long = "app_name", value_name = "APP")]
    app: Option<String>,
    #[command(flatten)]
    interval: IntervalArg,
    #[command(flatten)]
    out: OutputArgs,
}

#[tonic::async_trait]
impl Verb for AppStat {
    fn name(&self) -> &'static str {
        "app_stat"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Requests per second and p99 latency per table"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/app_stat.md")
    }
    fn args(&self, cmd: Command) -> Command {
        AppStatArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = AppStatArgs::from_arg_matches(m)?;
        let apps: Vec<(u32, String)> = match &args.app {
            Some(name) => {
                let info = ctx.meta()?.query_app(name).await?;
                let info = info.app.and_then(|a| a.info).unwrap_or_default();
                vec![(info.app_id, info.app_name)]
            }
            None => ctx
                .meta()?
                .list_apps(pb::AppStatus::Available)
                .await?
                .into_iter()
                .filter_map(|d| d.info)
                .map(|a| (a.app_id, a.app_name))
                .collect(),
        };
        let interval = Duration::from_millis(args.interval.interval_ms);
        let samples = sample_twice(ctx, &[], interval).await?;
        let mut total: BTreeMap<String, Counter> = BTreeMap::new();
        let mut rows = Vec::new();
        for (app_id, name) in &apps {
            let mut merged: BTreeMap<String, Counter> = BTreeMap::new();
            for (_, earlier, later) in &samples {
                for (op, c) in delta(earlier, later, |a| a == *app_id) {
                    merged.entry(op.clone()).or_default().merge(&c);
                    total.entry(op).or_default().merge(&c);
                }
            }
            let mut row = vec![
                Cell::custom(app_id.to_string(), json!(app_id)),
                Cell::str(name.clone()),
            ];
            row.extend(rate_cells(&rates(&merged, interval)));
            rows.push(row);
        }
        let mut row = vec![
            Cell::custom("-", serde_json::Value::Null),
            Cell::str(format!("(total:{})", apps.len())),
        ];
        row.extend(rate_cells(&rates(&total, interval)));
        rows.push(row);
        let mut columns = vec![num("app_id"), col("app_name")];
        columns.extend(rate_columns());
        args.out
            .emit(ctx, &Report::default().table("app_stat", columns, rows))
    }
}
