//! `drop NAME [-r SECONDS]`: drops a table. It stays recallable (`recall APP_ID`) for
//! SECONDS, or the meta server's default (7 days), and is then gone for good.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::pb;
use crate::shell::commands::create::parse_name;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};
use crate::timeutil::format_ms;

/// The `drop` verb.
pub struct Drop;

#[derive(Args, Debug)]
struct DropArgs {
    /// The table to drop.
    #[arg(value_name = "APP", value_parser = parse_name)]
    name: String,
    /// How long the dropped table stays recallable.
    #[arg(short = 'r', long = "reserve_seconds", value_name = "SECONDS")]
    reserve_seconds: Option<u64>,
}

#[tonic::async_trait]
impl Verb for Drop {
    fn name(&self) -> &'static str {
        "drop"
    }
    fn about(&self) -> &'static str {
        "Drop a table, keeping it recallable for a while"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/drop.md")
    }
    fn args(&self, cmd: Command) -> Command {
        DropArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = DropArgs::from_arg_matches(m)?;
        let reply = ctx
            .meta()?
            .drop_app(pb::DropAppRequest {
                app_name: args.name.clone(),
                reserve_seconds: args.reserve_seconds,
            })
            .await?;
        ctx.println(format!(
            "drop app \"{}\" succeed, app_id = {}, recallable until {}",
            args.name,
            reply.app_id,
            format_ms(reply.drop_expire_ms)
        ))?;
        Ok(Flow::Continue)
    }
}
