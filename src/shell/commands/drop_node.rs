//! `drop_node ADDR [--force] [--yes]`: forgets a dead or decommissioned node at once
//! (Doris's DROP, as opposed to DECOMMISSION). It leaves `nodes` (`nodes -a` lists it as
//! DROPPED), no longer counts for auto-freeze, and its old data directory is refused if it
//! comes back (wiped, it joins as a new node). Refused (exit 4) while it is ALIVE, and
//! while it holds the last replica of a partition unless `--force`, which says what is
//! lost. It cannot be undone: a terminal asks; scripts pass `--yes`.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::model::Gpid;
use crate::pb;
use crate::shell::commands::balance::parse_addr;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `drop_node` verb.
pub struct DropNode;

#[derive(Args, Debug)]
struct DropNodeArgs {
    /// The node (host:port).
    #[arg(value_name = "ADDR", value_parser = parse_addr)]
    node: String,
    /// Drop it even though partitions lose their last replica.
    #[arg(long = "force")]
    force: bool,
    /// Confirm without being asked (needed in scripts).
    #[arg(long = "yes")]
    yes: bool,
}

#[tonic::async_trait]
impl Verb for DropNode {
    fn name(&self) -> &'static str {
        "drop_node"
    }
    fn about(&self) -> &'static str {
        "Forget a dead or decommissioned node at once"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/drop_node.md")
    }
    fn args(&self, cmd: Command) -> Command {
        DropNodeArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = DropNodeArgs::from_arg_matches(m)?;
        let what = if args.force {
            format!(
                "drop {} even if partitions lose their last replica",
                args.node
            )
        } else {
            format!("drop {}: it leaves the cluster for good", args.node)
        };
        ctx.confirm(&what, args.yes)?;
        let reply = ctx
            .meta()?
            .drop_node(pb::DropNodeRequest {
                node: args.node.clone(),
                force: args.force,
            })
            .await?;
        if reply.lost.is_empty() {
            ctx.println(format!("{}: DROPPED", args.node))?;
        } else {
            let lost: Vec<String> = reply
                .lost
                .iter()
                .map(|g| Gpid::from_pb(g).to_string())
                .collect();
            ctx.println(format!(
                "{}: DROPPED by force; {} partition(s) lost their last replica: {} (see ddd_diagnose)",
                args.node,
                lost.len(),
                lost.join(" ")
            ))?;
        }
        Ok(Flow::Continue)
    }
}
