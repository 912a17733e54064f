//! `full_scan [-n MAX]`: prints every record of the table in use, partition by
//! partition, each partition in key order.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::bytes::print_records;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `full_scan` verb.
pub struct FullScan;

#[derive(Args, Debug)]
struct FullScanArgs {
    /// Print at most MAX records (default: all).
    #[arg(short = 'n', long = "max_count", value_name = "MAX")]
    max: Option<usize>,
}

#[tonic::async_trait]
impl Verb for FullScan {
    fn name(&self) -> &'static str {
        "full_scan"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Scan every record of the table in use"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/full_scan.md")
    }
    fn args(&self, cmd: Command) -> Command {
        FullScanArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = FullScanArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        let max = args.max.unwrap_or(usize::MAX);
        let records = ctx.data()?.scan(&app, None, (b"", b""), max).await?;
        print_records(ctx, &records)?;
        Ok(Flow::Continue)
    }
}
