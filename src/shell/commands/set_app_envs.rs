//! `set_app_envs KEY VALUE [KEY VALUE...]`: sets environment variables of the table
//! chosen with `use`, as Pegasus's shell does. Ballast stores and shows them; no key
//! changes how a table behaves yet.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::pb;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `set_app_envs` verb.
pub struct SetAppEnvs;

#[derive(Args, Debug)]
struct SetAppEnvsArgs {
    /// Key and value pairs.
    #[arg(value_name = "KEY VALUE", required = true, num_args = 2.., allow_hyphen_values = true)]
    pairs: Vec<String>,
}

/// Sends one change of the table in use's environment and prints `done` (Pegasus's
/// line), then the keys it removed, if any, on stderr.
pub(super) async fn update_envs(
    ctx: &mut Context,
    mut req: pb::UpdateAppEnvsRequest,
    done: &str,
) -> Result<Flow, ShellError> {
    req.app_name = ctx.app()?;
    let reply = ctx.meta()?.update_app_envs(req).await?;
    ctx.println(done)?;
    if !reply.removed.is_empty() {
        eprintln!("removed: {}", reply.removed.join(", "));
    }
    Ok(Flow::Continue)
}

#[tonic::async_trait]
impl Verb for SetAppEnvs {
    fn name(&self) -> &'static str {
        "set_app_envs"
    }
    fn about(&self) -> &'static str {
        "Set environment variables of the table in use"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/set_app_envs.md")
    }
    fn args(&self, cmd: Command) -> Command {
        SetAppEnvsArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = SetAppEnvsArgs::from_arg_matches(m)?;
        if args.pairs.len() % 2 != 0 {
            return Err(ShellError::Usage(format!(
                "keys and values come in pairs: {} has no value",
                args.pairs.last().map_or("", String::as_str)
            )));
        }
        let set = args
            .pairs
            .chunks(2)
            .map(|kv| (kv[0].clone(), kv[1].clone()))
            .collect();
        let req = pb::UpdateAppEnvsRequest {
            set,
            ..Default::default()
        };
        update_envs(ctx, req, "set app envs succeed").await
    }
}
