//! `server_stat [-l ADDR,...] [-i MS] [-j] [-o FILE]`: per replica server, requests per
//! second and p99 latency by kind over a sample interval, from the counters each server
//! keeps (`remote_command server-stat`, sampled twice `-i` ms apart). Meta servers
//! answer no data requests and are not listed.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::json;

use crate::shell::commands::OutputArgs;
use crate::shell::commands::remote_command::{TargetArgs, run_on_targets};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Column, Report, col, num};
use crate::shell::registry::{Flow, Verb};
use crate::stats::{Counters, OPS, Rates};

/// The `server_stat` verb.
pub struct ServerStat;

/// The sample interval's flag, shared with `app_stat`.
#[derive(Args, Debug, Clone)]
pub(super) struct IntervalArg {
    /// Sample the counters this many milliseconds apart.
    #[arg(short = 'i', long = "sample_interval_ms", value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub interval_ms: u64,
}

#[derive(Args, Debug)]
struct ServerStatArgs {
    /// Exactly these replica servers (default: every ALIVE one).
    #[arg(
        short = 'l',
        long = "list",
        value_name = "ADDRS",
        value_delimiter = ','
    )]
    list: Vec<String>,
    #[command(flatten)]
    interval: IntervalArg,
    #[command(flatten)]
    out: OutputArgs,
}

/// The counters of every (or every listed) replica server, by address.
async fn counters(
    ctx: &mut Context,
    list: &[String],
) -> Result<BTreeMap<String, Counters>, ShellError> {
    let targets = TargetArgs {
        target: "replica-server".into(),
        list: list.to_vec(),
    };
    let (envelope, ok) = run_on_targets(ctx, &targets, "server-stat", &[]).await?;
    let mut out = BTreeMap::new();
    for (addr, d) in envelope["details"].as_object().into_iter().flatten() {
        if !ok && d["succeed"] != json!(true) {
            return Err(ShellError::Failed(format!("{addr}: {}", d["message"])));
        }
        let counters = serde_json::from_value(d["message"]["counters"].clone())
            .map_err(|e| ShellError::Failed(format!("{addr}: unreadable counters: {e}")))?;
        out.insert(addr.clone(), counters);
    }
    Ok(out)
}

/// Two samples of every listed replica server's counters, `interval` apart.
pub(super) async fn sample_twice(
    ctx: &mut Context,
    list: &[String],
    interval: Duration,
) -> Result<Vec<(String, Counters, Counters)>, ShellError> {
    let first = counters(ctx, list).await?;
    tokio::time::sleep(interval).await;
    let second = counters(ctx, list).await?;
    Ok(second
        .into_iter()
        .map(|(addr, later)| {
            let earlier = first.get(&addr).cloned().unwrap_or_default();
            (addr, earlier, later)
        })
        .collect())
}

/// The rate columns, after the row's title columns: `<op>_qps` for every kind, then
/// `<op>_p99(ms)` for the reads and writes Pegasus shows.
pub(super) fn rate_columns() -> Vec<Column> {
    let qps = OPS.iter().map(|op| num(leak(format!("{op}_qps"))));
    let p99 = P99_OPS.iter().map(|op| num(leak(format!("{op}_p99(ms)"))));
    qps.chain(p99).collect()
}

/// The kinds whose p99 is shown.
const P99_OPS: [&str; 6] = [
    "get",
    "multi_get",
    "put",
    "multi_put",
    "incr",
    "check_and_set",
];

fn leak(s: String) -> &'static str {
    // Column names are built once per run from a fixed list.
    Box::leak(s.into_boxed_str())
}

/// The cells of [`rate_columns`] for `rates`.
pub(super) fn rate_cells(rates: &Rates) -> Vec<Cell> {
    let qps = OPS.iter().map(|op| {
        let v = rates.qps.get(op).copied().unwrap_or(0.0);
        Cell::custom(format!("{v:.2}"), json!((v * 100.0).round() / 100.0))
    });
    let p99 = P99_OPS.iter().map(|op| match rates.p99.get(op) {
        Some(d) => {
            let ms = d.as_secs_f64() * 1000.0;
            Cell::custom(format!("{ms:.2}"), json!((ms * 100.0).round() / 100.0))
        }
        None => Cell::custom("-", serde_json::Value::Null),
    });
    qps.chain(p99).collect()
}

#[tonic::async_trait]
impl Verb for ServerStat {
    fn name(&self) -> &'static str {
        "server_stat"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Requests per second and p99 latency per replica server"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/server_stat.md")
    }
    fn args(&self, cmd: Command) -> Command {
        ServerStatArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = ServerStatArgs::from_arg_matches(m)?;
        let interval = Duration::from_millis(args.interval.interval_ms);
        let samples = sample_twice(ctx, &args.list, interval).await?;
        let rows = samples
            .iter()
            .map(|(addr, earlier, later)| {
                let d = crate::stats::delta(earlier, later, |_| true);
                let mut row = vec![Cell::str(addr.clone())];
                row.extend(rate_cells(&crate::stats::rates(&d, interval)));
                row
            })
            .collect();
        let mut columns = vec![col("address")];
        columns.extend(rate_columns());
        args.out
            .emit(ctx, &Report::default().table("server_stat", columns, rows))
    }
}
