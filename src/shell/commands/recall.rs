//! `recall APP_ID [NEW_NAME]`: brings a dropped table back, with its data and placement,
//! before its reserve period ends.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::pb;
use crate::shell::commands::create::parse_name;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `recall` verb.
pub struct Recall;

#[derive(Args, Debug)]
struct RecallArgs {
    /// The dropped table's id (`ls -a` shows it).
    #[arg(value_name = "APP_ID")]
    app_id: u32,
    /// A new name, if the old one is taken.
    #[arg(value_name = "NEW_NAME", value_parser = parse_name)]
    new_name: Option<String>,
}

#[tonic::async_trait]
impl Verb for Recall {
    fn name(&self) -> &'static str {
        "recall"
    }
    fn about(&self) -> &'static str {
        "Bring back a dropped table"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/recall.md")
    }
    fn args(&self, cmd: Command) -> Command {
        RecallArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = RecallArgs::from_arg_matches(m)?;
        let reply = ctx
            .meta()?
            .recall_app(pb::RecallAppRequest {
                app_id: args.app_id,
                new_app_name: args.new_name.unwrap_or_default(),
            })
            .await?;
        let info = reply.info.unwrap_or_default();
        ctx.println(format!(
            "recall app ok, id({}), name({}), partition_count({})",
            info.app_id, info.app_name, info.partition_count
        ))?;
        Ok(Flow::Continue)
    }
}
