//! `balance -g GPID -p move_pri|copy_pri|copy_sec -f FROM -t TO`: asks the meta server to
//! move one replica (Pegasus's `balance`). The move is checked against the partition's
//! configuration (FROM holds the role, TO is ALIVE and may receive) and carried out by
//! the next cure round, at steady or lively.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::model::Gpid;
use crate::pb;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `balance` verb.
pub struct Balance;

/// Parses `app_id.pidx` for clap.
pub fn parse_gpid(s: &str) -> Result<Gpid, String> {
    s.parse().map_err(|e: crate::Error| e.to_string())
}

/// Parses a node address for clap.
pub fn parse_addr(s: &str) -> Result<String, String> {
    crate::model::validate_address(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
struct BalanceArgs {
    /// The partition, app_id.pidx.
    #[arg(short = 'g', long = "gpid", value_name = "GPID", required = true, value_parser = parse_gpid)]
    gpid: Gpid,
    /// What to do: move the primary role (no copy), copy the primary, copy a secondary.
    #[arg(short = 'p', long = "type", required = true, value_parser = crate::meta::proposal::BALANCE_KINDS)]
    kind: String,
    /// The node the primary role or replica moves from.
    #[arg(short = 'f', long = "from", value_name = "ADDR", required = true, value_parser = parse_addr)]
    from: String,
    /// The node it moves to.
    #[arg(short = 't', long = "to", value_name = "ADDR", required = true, value_parser = parse_addr)]
    to: String,
}

/// Sends a proposal and prints Pegasus's confirmation line with the action.
pub async fn send(
    ctx: &mut Context,
    req: pb::ProposeRequest,
    what: &str,
) -> Result<Flow, ShellError> {
    let reply = ctx.meta()?.propose(req).await?;
    ctx.println(format!("send {what}: ERR_OK, action: {}", reply.action))?;
    Ok(Flow::Continue)
}

#[tonic::async_trait]
impl Verb for Balance {
    fn name(&self) -> &'static str {
        "balance"
    }
    fn about(&self) -> &'static str {
        "Move one replica or primary role: move_pri, copy_pri, copy_sec"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/balance.md")
    }
    fn args(&self, cmd: Command) -> Command {
        BalanceArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let a = BalanceArgs::from_arg_matches(m)?;
        let req = pb::ProposeRequest {
            gpid: Some(a.gpid.to_pb()),
            kind: a.kind,
            from: a.from,
            to: a.to,
            force: false,
        };
        send(ctx, req, "balance proposal result").await
    }
}
