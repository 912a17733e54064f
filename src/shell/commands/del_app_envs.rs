//! `del_app_envs KEY [KEY...]`: deletes environment variables of the table chosen with
//! `use`; a key the table does not have is an error and nothing is deleted.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::pb;
use crate::shell::commands::set_app_envs::update_envs;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `del_app_envs` verb.
pub struct DelAppEnvs;

#[derive(Args, Debug)]
struct DelAppEnvsArgs {
    /// The keys to delete.
    #[arg(value_name = "KEY", required = true)]
    keys: Vec<String>,
}

#[tonic::async_trait]
impl Verb for DelAppEnvs {
    fn name(&self) -> &'static str {
        "del_app_envs"
    }
    fn about(&self) -> &'static str {
        "Delete environment variables of the table in use"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/del_app_envs.md")
    }
    fn args(&self, cmd: Command) -> Command {
        DelAppEnvsArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = DelAppEnvsArgs::from_arg_matches(m)?;
        let req = pb::UpdateAppEnvsRequest {
            del_keys: args.keys,
            ..Default::default()
        };
        update_envs(ctx, req, "del app envs succeed").await
    }
}
