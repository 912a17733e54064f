//! `multi_del HASH_KEY SORT_KEY [SORT_KEY...]`: deletes several records of one hash key
//! atomically.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::bytes::arg_bytes;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `multi_del` verb.
pub struct MultiDel;

#[derive(Args, Debug)]
struct MultiDelArgs {
    /// The hash key.
    #[arg(value_name = "HASH_KEY")]
    hash_key: String,
    /// The sort keys to delete.
    #[arg(value_name = "SORT_KEY", required = true)]
    sort_keys: Vec<String>,
}

#[tonic::async_trait]
impl Verb for MultiDel {
    fn name(&self) -> &'static str {
        "multi_del"
    }
    fn about(&self) -> &'static str {
        "Delete several records of one hash key atomically"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/multi_del.md")
    }
    fn args(&self, cmd: Command) -> Command {
        MultiDelArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = MultiDelArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        let sort_keys: Vec<Vec<u8>> = args.sort_keys.iter().map(|s| arg_bytes(s)).collect();
        ctx.data()?
            .del(&app, &arg_bytes(&args.hash_key), &sort_keys)
            .await?;
        ctx.println(format!("OK, {} sort keys deleted", sort_keys.len()))?;
        Ok(Flow::Continue)
    }
}
