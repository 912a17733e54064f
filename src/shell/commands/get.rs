//! `get HASH_KEY SORT_KEY`: reads one record of the table in use from its partition's
//! primary and prints its value, escaped (`Not found` if absent or expired).

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::bytes::{arg_bytes, escape};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `get` verb.
pub struct Get;

#[derive(Args, Debug)]
struct GetArgs {
    /// The hash key.
    #[arg(value_name = "HASH_KEY")]
    hash_key: String,
    /// The sort key.
    #[arg(value_name = "SORT_KEY")]
    sort_key: String,
}

#[tonic::async_trait]
impl Verb for Get {
    fn name(&self) -> &'static str {
        "get"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Read one record"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/get.md")
    }
    fn args(&self, cmd: Command) -> Command {
        GetArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = GetArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        let found = ctx
            .data()?
            .get(
                &app,
                &arg_bytes(&args.hash_key),
                &[arg_bytes(&args.sort_key)],
            )
            .await?;
        match found.first() {
            Some(r) => ctx.println(escape(&r.value))?,
            None => ctx.println("Not found")?,
        }
        Ok(Flow::Continue)
    }
}
