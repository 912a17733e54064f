//! `incr HASH_KEY SORT_KEY [INCREMENT]`: adds to a record's integer value atomically and
//! prints the new value, as Pegasus does. An absent or expired record counts as 0; the
//! record keeps its TTL. Retried under one request id, so it is applied once.

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::json;

use crate::error::Error;
use crate::pb::atomic::Op;
use crate::pb::atomic_result::Outcome;
use crate::shell::bytes::arg_bytes;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `incr` verb.
pub struct Incr;

#[derive(Args, Debug)]
struct IncrArgs {
    /// The hash key.
    #[arg(value_name = "HASH_KEY")]
    hash_key: String,
    /// The sort key.
    #[arg(value_name = "SORT_KEY")]
    sort_key: String,
    /// What to add (may be negative).
    #[arg(
        value_name = "INCREMENT",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    increment: i64,
    /// Print JSON: {"new_value": N}.
    #[arg(short = 'j', long = "json")]
    json: bool,
}

#[tonic::async_trait]
impl Verb for Incr {
    fn name(&self) -> &'static str {
        "incr"
    }
    fn about(&self) -> &'static str {
        "Add to a record's integer value atomically; print the new value"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/incr.md")
    }
    fn args(&self, cmd: Command) -> Command {
        IncrArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = IncrArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        let outcome = ctx
            .data()?
            .atomic(
                &app,
                &arg_bytes(&args.hash_key),
                &arg_bytes(&args.sort_key),
                Op::Incr(args.increment),
            )
            .await?;
        let Outcome::IncrValue(value) = outcome else {
            return Err(Error::Internal(format!("incr answered with {outcome:?}")).into());
        };
        if args.json {
            ctx.print_json(&json!({ "new_value": value }))?;
        } else {
            ctx.println(value.to_string())?;
        }
        Ok(Flow::Continue)
    }
}
