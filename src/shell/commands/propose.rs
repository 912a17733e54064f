//! `propose [-f] -g GPID -p TYPE -t TARGET -n NODE`: one manual configuration change
//! (Pegasus's `propose`): ASSIGN_PRIMARY, ADD_SECONDARY, DOWNGRADE_TO_SECONDARY,
//! DOWNGRADE_TO_INACTIVE or REMOVE of NODE, executed by TARGET (the partition's primary;
//! for ASSIGN_PRIMARY the node itself). Checked against the configuration; queued for
//! the next cure round, or carried out at once with `-f`.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::model::Gpid;
use crate::pb;
use crate::shell::commands::balance::{parse_addr, parse_gpid, send};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `propose` verb.
pub struct Propose;

#[derive(Args, Debug)]
struct ProposeArgs {
    /// Carry it out now instead of at the next cure round.
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// The partition, app_id.pidx.
    #[arg(short = 'g', long = "gpid", value_name = "GPID", required = true, value_parser = parse_gpid)]
    gpid: Gpid,
    /// The change.
    #[arg(short = 'p', long = "type", required = true, value_parser = crate::meta::proposal::PROPOSE_KINDS, ignore_case = true)]
    kind: String,
    /// The node that executes it: the primary (ASSIGN_PRIMARY: the node itself).
    #[arg(short = 't', long = "target", value_name = "ADDR", required = true, value_parser = parse_addr)]
    target: String,
    /// The node affected.
    #[arg(short = 'n', long = "node", value_name = "ADDR", required = true, value_parser = parse_addr)]
    node: String,
}

#[tonic::async_trait]
impl Verb for Propose {
    fn name(&self) -> &'static str {
        "propose"
    }
    fn about(&self) -> &'static str {
        "Send one manual configuration change for a partition"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/propose.md")
    }
    fn args(&self, cmd: Command) -> Command {
        ProposeArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let a = ProposeArgs::from_arg_matches(m)?;
        let req = pb::ProposeRequest {
            gpid: Some(a.gpid.to_pb()),
            kind: a.kind.to_ascii_uppercase(),
            from: a.target,
            to: a.node,
            force: a.force,
        };
        send(ctx, req, "proposal response").await
    }
}
