//! `set HASH_KEY SORT_KEY VALUE [TTL_SECONDS]`: writes one record of the table in use;
//! answered once the write is committed on every replica.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::bytes::arg_bytes;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `set` verb.
pub struct Set;

#[derive(Args, Debug)]
struct SetArgs {
    /// The hash key (chooses the partition).
    #[arg(value_name = "HASH_KEY")]
    hash_key: String,
    /// The sort key.
    #[arg(value_name = "SORT_KEY")]
    sort_key: String,
    /// The value.
    #[arg(value_name = "VALUE")]
    value: String,
    /// Expire after this many seconds (default: never).
    #[arg(value_name = "TTL_SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    ttl: Option<u32>,
}

#[tonic::async_trait]
impl Verb for Set {
    fn name(&self) -> &'static str {
        "set"
    }
    fn about(&self) -> &'static str {
        "Write one record, with an optional TTL"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/set.md")
    }
    fn args(&self, cmd: Command) -> Command {
        SetArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = SetArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        let pair = (arg_bytes(&args.sort_key), arg_bytes(&args.value));
        let hash_key = arg_bytes(&args.hash_key);
        ctx.data()?
            .set(&app, &hash_key, &[pair], args.ttl.unwrap_or(0))
            .await?;
        ctx.println("OK")?;
        Ok(Flow::Continue)
    }
}
