//! `multi_set HASH_KEY SORT_KEY VALUE [SORT_KEY VALUE...]`: writes several records of
//! one hash key atomically (one batch, one decree).

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::bytes::arg_bytes;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `multi_set` verb.
pub struct MultiSet;

#[derive(Args, Debug)]
struct MultiSetArgs {
    /// The hash key (chooses the partition).
    #[arg(value_name = "HASH_KEY")]
    hash_key: String,
    /// Sort keys and values, alternating.
    #[arg(value_name = "SORT_KEY VALUE", required = true, num_args = 2..)]
    pairs: Vec<String>,
}

#[tonic::async_trait]
impl Verb for MultiSet {
    fn name(&self) -> &'static str {
        "multi_set"
    }
    fn about(&self) -> &'static str {
        "Write several records of one hash key atomically"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/multi_set.md")
    }
    fn args(&self, cmd: Command) -> Command {
        MultiSetArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = MultiSetArgs::from_arg_matches(m)?;
        if args.pairs.len() % 2 != 0 {
            return Err(ShellError::Usage(
                "multi_set takes SORT_KEY VALUE pairs: the last sort key has no value".into(),
            ));
        }
        let app = ctx.app()?;
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = args
            .pairs
            .chunks(2)
            .map(|p| (arg_bytes(&p[0]), arg_bytes(&p[1])))
            .collect();
        ctx.data()?
            .set(&app, &arg_bytes(&args.hash_key), &pairs, 0)
            .await?;
        ctx.println("OK")?;
        Ok(Flow::Continue)
    }
}
