//! `rename OLD_NAME NEW_NAME`: renames a table, as Pegasus's `rename` does. The table
//! keeps its id, data and placement; clients must use the new name. If the session was
//! using the table, it goes on using it under the new name.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::pb;
use crate::shell::commands::create::parse_name;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `rename` verb.
pub struct Rename;

#[derive(Args, Debug)]
struct RenameArgs {
    /// The table's name now.
    #[arg(value_name = "OLD_NAME", value_parser = parse_name)]
    old: String,
    /// Its new name.
    #[arg(value_name = "NEW_NAME", value_parser = parse_name)]
    new: String,
}

#[tonic::async_trait]
impl Verb for Rename {
    fn name(&self) -> &'static str {
        "rename"
    }
    fn about(&self) -> &'static str {
        "Rename a table"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/rename.md")
    }
    fn args(&self, cmd: Command) -> Command {
        RenameArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = RenameArgs::from_arg_matches(m)?;
        let reply = ctx
            .meta()?
            .rename_app(pb::RenameAppRequest {
                old_app_name: args.old.clone(),
                new_app_name: args.new.clone(),
            })
            .await?;
        if ctx.app().ok().as_deref() == Some(args.old.as_str()) {
            ctx.set_app(args.new.clone());
        }
        ctx.println(format!(
            "rename app ok, id({}), old_name({}), new_name({})",
            reply.app_id, args.old, args.new
        ))?;
        Ok(Flow::Continue)
    }
}
