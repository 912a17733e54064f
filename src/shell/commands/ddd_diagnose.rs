//! `ddd_diagnose [-g GPID] [-j] [-o FILE]` and `ddd_diagnose --force-primary GPID ADDR
//! --yes`: partitions that lost every replica (Pegasus's DDD — dead, dead, dead). Each
//! is listed with what its last members reported (alive, data, ballot, committed and
//! prepared decrees) and what the meta server waits for. Such a partition serves nothing
//! and is never rebuilt empty on its own; `--force-primary` is an operator's decision to
//! make ADDR its primary — with ADDR's data if it holds a verified replica, otherwise
//! empty — and the answer says what that may lose. Without `--yes` it refuses (exit 4).

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::json;

use crate::error::Error;
use crate::model::{Gpid, ReplicaData};
use crate::pb;
use crate::shell::commands::OutputArgs;
use crate::shell::commands::balance::{parse_addr, parse_gpid};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report, col, num};
use crate::shell::registry::{Flow, Verb};

/// The `ddd_diagnose` verb.
pub struct DddDiagnose;

#[derive(Args, Debug)]
struct DddArgs {
    /// Only this table (APP_ID) or partition (APP_ID.PIDX).
    #[arg(short = 'g', long = "gpid", value_name = "APP_ID[.PIDX]")]
    gpid: Option<String>,
    /// Make ADDR the primary of partition GPID (it starts empty if ADDR holds nothing).
    #[arg(long = "force-primary", num_args = 2, value_names = ["GPID", "ADDR"])]
    force: Option<Vec<String>>,
    /// Confirm a force, which may lose writes.
    #[arg(long = "yes")]
    yes: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// The filter `-g` asks for: a table, or one partition of it.
fn filter(gpid: &str) -> Result<(u32, Option<u32>), ShellError> {
    let bad = || ShellError::Usage(format!("'{gpid}' is not APP_ID or APP_ID.PIDX"));
    match gpid.split_once('.') {
        Some(_) => {
            let g: Gpid = gpid.parse().map_err(|_| bad())?;
            Ok((g.app_id, Some(g.pidx)))
        }
        None => Ok((gpid.parse().map_err(|_| bad())?, None)),
    }
}

fn data_name(value: i32) -> &'static str {
    if value == 0 {
        return "none";
    }
    ReplicaData::from_pb(value).name()
}

/// The report: one row per partition, one per last member, and a count.
fn report(reply: &pb::DddDiagnoseReply) -> Report {
    let gpid = |p: &pb::DddPartition| p.gpid.as_ref().map_or(Gpid::new(0, 0), Gpid::from_pb);
    let mut parts = Vec::new();
    let mut members = Vec::new();
    for p in &reply.partitions {
        let g = gpid(p).to_string();
        parts.push(vec![
            Cell::str(&g),
            Cell::str(&p.app_name),
            Cell::num(p.ballot),
            Cell::str(&p.decision),
        ]);
        for m in &p.members {
            members.push(vec![
                Cell::str(&g),
                Cell::str(&m.node),
                Cell::str(if m.alive { "ALIVE" } else { "UNALIVE" }).bad_if(!m.alive),
                Cell::bool(m.reported),
                Cell::str(data_name(m.data)).bad_if(m.data != pb::ReplicaData::Valid as i32),
                Cell::num(m.ballot),
                Cell::custom(m.committed.to_string(), json!(m.committed)),
                Cell::custom(m.prepared.to_string(), json!(m.prepared)),
            ]);
        }
    }
    let count = reply.partitions.len() as i64;
    Report::default()
        .table(
            "partitions",
            vec![col("gpid"), col("app_name"), num("ballot"), col("decision")],
            parts,
        )
        .table(
            "last_members",
            vec![
                col("gpid"),
                col("node"),
                col("status"),
                col("reported"),
                col("data"),
                num("ballot"),
                num("committed"),
                num("prepared"),
            ],
            members,
        )
        .pairs(
            "summary",
            vec![("ddd_partition_count", Cell::num(count).bad_if(count > 0))],
        )
}

#[tonic::async_trait]
impl Verb for DddDiagnose {
    fn name(&self) -> &'static str {
        "ddd_diagnose"
    }
    fn about(&self) -> &'static str {
        "List partitions that lost every replica; force one's primary"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/ddd_diagnose.md")
    }
    fn args(&self, cmd: Command) -> Command {
        DddArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let a = DddArgs::from_arg_matches(m)?;
        let (app_id, pidx) = match &a.gpid {
            Some(g) => filter(g)?,
            None => (0, None),
        };
        let mut req = pb::DddDiagnoseRequest {
            app_id,
            pidx,
            ..Default::default()
        };
        if let Some(force) = &a.force {
            let gpid = parse_gpid(&force[0]).map_err(ShellError::Usage)?;
            let node = parse_addr(&force[1]).map_err(ShellError::Usage)?;
            if !a.yes {
                return Err(Error::Unsafe(format!(
                    "forcing {node} as the primary of {gpid} may lose writes (every one, if it holds nothing of it); add --yes to do it"
                ))
                .into());
            }
            req.force_gpid = Some(gpid.to_pb());
            req.force_node = node;
        } else if a.yes {
            return Err(ShellError::Usage(
                "--yes confirms a --force-primary; there is none".into(),
            ));
        }
        let reply = ctx.meta()?.ddd_diagnose(req).await?;
        if !reply.forced.is_empty() {
            ctx.println(format!(
                "forced {} as the primary of {}: {}",
                force_node(&a),
                force_gpid(&a),
                reply.forced
            ))?;
            return Ok(Flow::Continue);
        }
        a.out.emit(ctx, &report(&reply))
    }
}

fn force_gpid(a: &DddArgs) -> &str {
    a.force.as_ref().map_or("", |f| f[0].as_str())
}

fn force_node(a: &DddArgs) -> &str {
    a.force.as_ref().map_or("", |f| f[1].as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_lists_partitions_and_their_last_members_with_typed_json() {
        let reply = pb::DddDiagnoseReply {
            partitions: vec![pb::DddPartition {
                gpid: Some(Gpid::new(1, 3).to_pb()),
                app_name: "t".into(),
                ballot: 7,
                members: vec![pb::DddMember {
                    node: "h:1".into(),
                    alive: true,
                    reported: true,
                    data: pb::ReplicaData::Lost as i32,
                    ballot: 6,
                    committed: 40,
                    prepared: 41,
                }],
                decision: "h:1, the last member, lost its replica".into(),
            }],
            forced: String::new(),
        };
        let json = report(&reply).to_json();
        assert_eq!(json["partitions"][0]["gpid"], "1.3");
        assert_eq!(json["last_members"][0]["data"], "lost");
        assert_eq!(json["last_members"][0]["committed"], 40);
        assert_eq!(json["summary"]["ddd_partition_count"], 1);
        let text = report(&reply).to_text(false);
        assert!(text.contains("1.3   t"), "{text}");
    }

    #[test]
    fn gpid_filters_parse_a_table_or_a_partition() {
        assert_eq!(filter("2").unwrap(), (2, None));
        assert_eq!(filter("2.5").unwrap(), (2, Some(5)));
        assert!(filter("x").is_err());
    }
}
