//! `count_data [-c] [-j]`: each partition's record count in the table in use — the
//! store's estimate (expired records included), or with `-c` a precise scan — and the
//! total.

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::json;

use crate::shell::commands::OutputArgs;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report, col, num};
use crate::shell::registry::{Flow, Verb};

/// The `count_data` verb.
pub struct CountData;

#[derive(Args, Debug)]
struct CountDataArgs {
    /// Scan every record (leaving out expired ones) instead of estimating.
    #[arg(short = 'c', long = "precise")]
    precise: bool,
    #[command(flatten)]
    output: OutputArgs,
}

/// The report: one row per partition, then the total.
fn report(counts: &[u64], precise: bool) -> Report {
    let column = if precise { "count" } else { "estimate_count" };
    let count = |n: u64| Cell::custom(n.to_string(), json!(n));
    let mut rows: Vec<Vec<Cell>> = counts
        .iter()
        .enumerate()
        .map(|(pidx, n)| vec![Cell::custom(pidx.to_string(), json!(pidx)), count(*n)])
        .collect();
    rows.push(vec![Cell::str("(total)"), count(counts.iter().sum())]);
    Report::default().table("count_data", vec![col("pidx"), num(column)], rows)
}

#[tonic::async_trait]
impl Verb for CountData {
    fn name(&self) -> &'static str {
        "count_data"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Count records per partition: estimate, or precise with -c"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/count_data.md")
    }
    fn args(&self, cmd: Command) -> Command {
        CountDataArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = CountDataArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        let counts = ctx.data()?.count(&app, args.precise).await?;
        args.output.emit(ctx, &report(&counts, args.precise))
    }
}
