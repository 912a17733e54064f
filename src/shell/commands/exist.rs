//! `exist HASH_KEY SORT_KEY`: whether a record of the table in use exists (and has not
//! expired), printed as Pegasus does: `True` or `False`.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::bytes::arg_bytes;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `exist` verb.
pub struct Exist;

#[derive(Args, Debug)]
struct ExistArgs {
    /// The hash key.
    #[arg(value_name = "HASH_KEY")]
    hash_key: String,
    /// The sort key.
    #[arg(value_name = "SORT_KEY")]
    sort_key: String,
    /// Print JSON: {"exist": true|false}.
    #[arg(short = 'j', long = "json")]
    json: bool,
}

#[tonic::async_trait]
impl Verb for Exist {
    fn name(&self) -> &'static str {
        "exist"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Whether one record exists: True or False"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/exist.md")
    }
    fn args(&self, cmd: Command) -> Command {
        ExistArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = ExistArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        let found = ctx
            .data()?
            .get(
                &app,
                &arg_bytes(&args.hash_key),
                &[arg_bytes(&args.sort_key)],
            )
            .await?;
        if args.json {
            ctx.print_json(&serde_json::json!({ "exist": !found.is_empty() }))?;
        } else {
            ctx.println(if found.is_empty() { "False" } else { "True" })?;
        }
        Ok(Flow::Continue)
    }
}
