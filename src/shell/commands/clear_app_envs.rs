//! `clear_app_envs (-a | -p PREFIX)`: deletes every environment variable of the table
//! chosen with `use`, or those whose key starts with PREFIX.

use clap::{ArgGroup, ArgMatches, Args, Command, FromArgMatches};

use crate::pb;
use crate::shell::commands::set_app_envs::update_envs;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `clear_app_envs` verb.
pub struct ClearAppEnvs;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).args(["all", "prefix"])))]
struct ClearAppEnvsArgs {
    /// Delete every key.
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Delete the keys that start with PREFIX.
    #[arg(short = 'p', long = "prefix", value_name = "PREFIX")]
    prefix: Option<String>,
}

#[tonic::async_trait]
impl Verb for ClearAppEnvs {
    fn name(&self) -> &'static str {
        "clear_app_envs"
    }
    fn about(&self) -> &'static str {
        "Delete all (or a prefix's) environment variables of the table in use"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/clear_app_envs.md")
    }
    fn args(&self, cmd: Command) -> Command {
        ClearAppEnvsArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = ClearAppEnvsArgs::from_arg_matches(m)?;
        let req = match args.prefix {
            Some(p) if p.is_empty() => {
                return Err(ShellError::Usage(
                    "an empty --prefix matches every key: say -a to clear them all".into(),
                ));
            }
            Some(p) => pb::UpdateAppEnvsRequest {
                clear_prefix: p,
                ..Default::default()
            },
            None => pb::UpdateAppEnvsRequest {
                clear_all: args.all,
                ..Default::default()
            },
        };
        update_envs(ctx, req, "clear app envs succeed").await
    }
}
