//! `get_app_envs [-j]`: the environment variables of the table chosen with `use`, as an
//! `[app_envs]` section of `key : value` lines (JSON: `{"app_envs": {key: value}}`).

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report};
use crate::shell::registry::{Flow, Verb};

/// The `get_app_envs` verb.
pub struct GetAppEnvs;

#[derive(Args, Debug)]
struct GetAppEnvsArgs {
    /// Print JSON: {"app_envs": {KEY: VALUE}}.
    #[arg(short = 'j', long = "json")]
    json: bool,
}

/// The report of a table's environment variables, in key order.
pub(super) fn envs_report<'a>(envs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Report {
    let mut pairs: Vec<(&str, Cell)> = envs
        .into_iter()
        .map(|(k, v)| (k.as_str(), Cell::str(v.clone())))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    Report::default().pairs("app_envs", pairs)
}

#[tonic::async_trait]
impl Verb for GetAppEnvs {
    fn name(&self) -> &'static str {
        "get_app_envs"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Show the environment variables of the table in use"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/get_app_envs.md")
    }
    fn args(&self, cmd: Command) -> Command {
        GetAppEnvsArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = GetAppEnvsArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        let reply = ctx.meta()?.query_app(&app).await?;
        let envs = reply.app.and_then(|a| a.info).unwrap_or_default().envs;
        ctx.emit(&envs_report(&envs), args.json, None)?;
        Ok(Flow::Continue)
    }
}
