//! `hash_scan HASH_KEY START_SORT_KEY STOP_SORT_KEY [-n MAX]`: prints the records of one
//! hash key with sort keys from START (inclusive) to STOP (exclusive; `""` for no bound),
//! in sort-key order, paging through the primary.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::bytes::{arg_bytes, print_records};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `hash_scan` verb.
pub struct HashScan;

#[derive(Args, Debug)]
struct HashScanArgs {
    /// The hash key.
    #[arg(value_name = "HASH_KEY")]
    hash_key: String,
    /// The first sort key (inclusive; "" for the first).
    #[arg(value_name = "START_SORT_KEY")]
    start: String,
    /// Where to stop (exclusive; "" for no bound).
    #[arg(value_name = "STOP_SORT_KEY")]
    stop: String,
    /// Print at most MAX records (default: all).
    #[arg(short = 'n', long = "max_count", value_name = "MAX")]
    max: Option<usize>,
}

#[tonic::async_trait]
impl Verb for HashScan {
    fn name(&self) -> &'static str {
        "hash_scan"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Scan one hash key's records by sort-key range"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/hash_scan.md")
    }
    fn args(&self, cmd: Command) -> Command {
        HashScanArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = HashScanArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        let (start, stop) = (arg_bytes(&args.start), arg_bytes(&args.stop));
        let records = ctx
            .data()?
            .scan(
                &app,
                Some(&arg_bytes(&args.hash_key)),
                (&start, &stop),
                args.max.unwrap_or(usize::MAX),
            )
            .await?;
        print_records(ctx, &records)?;
        Ok(Flow::Continue)
    }
}
