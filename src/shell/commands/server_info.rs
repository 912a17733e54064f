//! `server_info [-t all|meta-server|replica-server] [-l ADDR,...]`: version, role,
//! address and start time of server processes: `remote_command server-info`.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::commands::remote_command::{TargetArgs, print_envelope, run_on_targets};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `server_info` verb.
pub struct ServerInfo;

#[derive(Args, Debug)]
struct ServerInfoArgs {
    #[command(flatten)]
    targets: TargetArgs,
}

#[tonic::async_trait]
impl Verb for ServerInfo {
    fn name(&self) -> &'static str {
        "server_info"
    }
    fn about(&self) -> &'static str {
        "Show version, role and start time of server processes"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/server_info.md")
    }
    fn args(&self, cmd: Command) -> Command {
        ServerInfoArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = ServerInfoArgs::from_arg_matches(m)?;
        let (envelope, ok) = run_on_targets(ctx, &args.targets, "server-info", &[]).await?;
        print_envelope(ctx, &envelope, ok)
    }
}
