//! `multi_get HASH_KEY [SORT_KEY...]`: reads several records of one hash key (all of
//! them when no sort key is given) and prints them with a count.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::bytes::{arg_bytes, print_records};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `multi_get` verb.
pub struct MultiGet;

#[derive(Args, Debug)]
struct MultiGetArgs {
    /// The hash key.
    #[arg(value_name = "HASH_KEY")]
    hash_key: String,
    /// The sort keys to read (default: every record of the hash key).
    #[arg(value_name = "SORT_KEY")]
    sort_keys: Vec<String>,
}

#[tonic::async_trait]
impl Verb for MultiGet {
    fn name(&self) -> &'static str {
        "multi_get"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Read several records of one hash key"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/multi_get.md")
    }
    fn args(&self, cmd: Command) -> Command {
        MultiGetArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = MultiGetArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        let data = ctx.data()?;
        let hash_key = arg_bytes(&args.hash_key);
        let records = if args.sort_keys.is_empty() {
            data.scan(&app, Some(&hash_key), (b"", b""), usize::MAX)
                .await?
        } else {
            let sort_keys: Vec<Vec<u8>> = args.sort_keys.iter().map(|s| arg_bytes(s)).collect();
            data.get(&app, &hash_key, &sort_keys).await?
        };
        print_records(ctx, &records)?;
        Ok(Flow::Continue)
    }
}
