//! `del HASH_KEY SORT_KEY`: deletes one record of the table in use (deleting an absent
//! record succeeds).

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::bytes::arg_bytes;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `del` verb.
pub struct Del;

#[derive(Args, Debug)]
struct DelArgs {
    /// The hash key.
    #[arg(value_name = "HASH_KEY")]
    hash_key: String,
    /// The sort key.
    #[arg(value_name = "SORT_KEY")]
    sort_key: String,
}

#[tonic::async_trait]
impl Verb for Del {
    fn name(&self) -> &'static str {
        "del"
    }
    fn about(&self) -> &'static str {
        "Delete one record"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/del.md")
    }
    fn args(&self, cmd: Command) -> Command {
        DelArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = DelArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        ctx.data()?
            .del(
                &app,
                &arg_bytes(&args.hash_key),
                &[arg_bytes(&args.sort_key)],
            )
            .await?;
        ctx.println("OK")?;
        Ok(Flow::Continue)
    }
}
