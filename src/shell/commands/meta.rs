//! `meta status [-j] | leave ID [--yes] [--force] | transfer_leader [--to ID]`: the meta
//! servers' group, as Databend's `metactl` and Doris's `ALTER SYSTEM … FOLLOWER` run it.
//! `status` asks every member for its own row (`id address role term last_log_index
//! applied_index lag`, lag from the leader, `*` when behind) and lists the voters and
//! learners; `leave` removes a member after the group's checks (exit 4 when refused: the last
//! voter, the quorum of the members up, an even voter count without `--force`); a leader
//! that leaves hands leadership over first; `transfer_leader` hands it to a voter.

use clap::{ArgMatches, Command, FromArgMatches, Subcommand};
use serde_json::json;

use crate::meta::raft::client;
use crate::meta::raft::network::Request;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report, col, num};
use crate::shell::registry::{Flow, Verb};

/// The `meta` verb.
pub struct MetaVerb;

#[derive(Subcommand, Debug)]
#[command(rename_all = "snake_case")]
enum MetaCommand {
    /// One row per member, then the voter and learner ids.
    Status {
        /// Print JSON.
        #[arg(short = 'j', long = "json")]
        json: bool,
    },
    /// Remove a member from the group.
    Leave {
        /// The member's id.
        #[arg(value_name = "ID")]
        id: u64,
        /// Do not ask (scripts must pass it).
        #[arg(long)]
        yes: bool,
        /// Allow leaving an even number of voters.
        #[arg(long)]
        force: bool,
    },
    /// Hand leadership to a voter (by default the most caught-up one that is up).
    TransferLeader {
        /// The member to lead.
        #[arg(long, value_name = "ID")]
        to: Option<u64>,
    },
}

#[tonic::async_trait]
impl Verb for MetaVerb {
    fn name(&self) -> &'static str {
        "meta"
    }
    fn about(&self) -> &'static str {
        "The meta servers' group: status, leave a member, transfer leadership"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/meta.md")
    }
    fn args(&self, cmd: Command) -> Command {
        MetaCommand::augment_subcommands(cmd)
            .subcommand_required(true)
            .disable_help_subcommand(true)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let command = MetaCommand::from_arg_matches(m)?;
        let via = ctx.meta()?.addrs().to_vec();
        match command {
            MetaCommand::Status { json } => status(ctx, &via, json).await,
            MetaCommand::Leave { id, yes, force } => {
                ctx.confirm(&format!("remove meta server {id} from the group"), yes)?;
                let done = client::send(&via, Request::Leave { id, force }).await?;
                ctx.println(done)?;
                Ok(Flow::Continue)
            }
            MetaCommand::TransferLeader { to } => {
                let done = client::send(&via, Request::Transfer { to }).await?;
                ctx.println(done)?;
                Ok(Flow::Continue)
            }
        }
    }
}

async fn status(ctx: &mut Context, via: &[String], as_json: bool) -> Result<Flow, ShellError> {
    let (first, members) = client::status_all(via).await?;
    // Lags come from the leader's row.
    let leader_lags = members
        .iter()
        .filter_map(|(_, _, s)| s.as_ref().ok())
        .find(|s| s.role == "leader")
        .map(|s| s.lags.clone())
        .unwrap_or_default();
    let lag_of = |id: u64| leader_lags.iter().find(|(m, _)| *m == id).map(|(_, l)| *l);
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for (id, address, s) in &members {
        let lag = lag_of(*id);
        match s {
            Ok(s) => {
                let lag_text = match lag {
                    Some(0) => "0".to_string(),
                    Some(l) => format!("{l}*"),
                    None if s.role == "leader" => "0".to_string(),
                    None => "-".to_string(),
                };
                rows.push(vec![
                    Cell::num(*id as i64),
                    Cell::str(address.clone()),
                    Cell::str(s.role.clone()),
                    Cell::num(s.term as i64),
                    Cell::num(s.last_log_index as i64),
                    Cell::num(s.applied_index as i64),
                    Cell::str(lag_text).bad_if(lag.is_some_and(|l| l > 0)),
                ]);
                json_rows.push(json!({
                    "id": id, "address": address, "role": s.role, "term": s.term,
                    "last_log_index": s.last_log_index, "applied_index": s.applied_index,
                    "lag": lag.unwrap_or(0),
                }));
            }
            Err(e) => {
                rows.push(vec![
                    Cell::num(*id as i64),
                    Cell::str(address.clone()),
                    Cell::str("unreachable").bad_if(true),
                    Cell::str("-"),
                    Cell::str("-"),
                    Cell::str("-"),
                    Cell::str("-"),
                ]);
                json_rows.push(json!({
                    "id": id, "address": address, "role": "unreachable", "term": null,
                    "last_log_index": null, "applied_index": null, "lag": null,
                    "error": e.to_string(),
                }));
            }
        }
    }
    if as_json {
        ctx.print_json(&json!({
            "members": json_rows,
            "voters": first.voters,
            "learners": first.learners,
        }))?;
        return Ok(Flow::Continue);
    }
    let columns = vec![
        num("id"),
        col("address"),
        col("role"),
        num("term"),
        num("last_log_index"),
        num("applied_index"),
        num("lag"),
    ];
    let color = ctx.color();
    let text = Report::default()
        .table("members", columns, rows)
        .to_text(color);
    ctx.println(text.trim_end())?;
    ctx.println(format!("voters: {:?}", first.voters))?;
    ctx.println(format!("learners: {:?}", first.learners))?;
    Ok(Flow::Continue)
}
