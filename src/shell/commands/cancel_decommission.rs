//! `cancel_decommission ADDR...`: DECOMMISSIONING nodes go back to NORMAL and may receive
//! replicas again; what already moved stays moved (the balancer evens it out at level
//! lively).

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::commands::balance::parse_addr;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `cancel_decommission` verb.
pub struct CancelDecommission;

#[derive(Args, Debug)]
struct CancelArgs {
    /// The nodes (host:port).
    #[arg(value_name = "ADDR", required = true, num_args = 1.., value_parser = parse_addr)]
    nodes: Vec<String>,
}

#[tonic::async_trait]
impl Verb for CancelDecommission {
    fn name(&self) -> &'static str {
        "cancel_decommission"
    }
    fn about(&self) -> &'static str {
        "Return decommissioning nodes to NORMAL; what moved stays moved"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/cancel_decommission.md")
    }
    fn args(&self, cmd: Command) -> Command {
        CancelArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = CancelArgs::from_arg_matches(m)?;
        let reply = ctx.meta()?.cancel_decommission(args.nodes.clone()).await?;
        for node in &args.nodes {
            let line = if reply.cancelled.contains(node) {
                format!("{node}: decommission cancelled; NORMAL")
            } else {
                format!("{node}: was not decommissioning; unchanged")
            };
            ctx.println(line)?;
        }
        Ok(Flow::Continue)
    }
}
