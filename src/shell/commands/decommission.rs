//! `decommission ADDR... [--dry-run] [--wait [--timeout S]] [--yes] [-j] [-o FILE]`:
//! drains nodes the way Doris's DECOMMISSION and CockroachDB's `node decommission` do.
//! Every pre-flight check runs first and is reported at once (enough nodes remain for
//! the widest table, their free disk holds what moves, the live ratio will not freeze the
//! meta server, no partition is unhealthy, the nodes exist); one failure refuses with
//! exit 4 and changes nothing. `--dry-run` prints the checks and the plan (per node,
//! replicas and bytes and where they go). Otherwise, once confirmed (a terminal asks;
//! scripts pass `--yes`), the nodes become DECOMMISSIONING: primaries move away first
//! (no copy), then secondaries are copied off; a node that holds nothing is
//! DECOMMISSIONED and may be stopped. `--wait` follows it to the end (exit 5 on timeout).

use std::time::{Duration, Instant};

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::json;

use crate::error::Error;
use crate::pb;
use crate::shell::commands::OutputArgs;
use crate::shell::commands::balance::parse_addr;
use crate::shell::commands::decommission_status::{drain_line, fetch_drains};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report, col, num, size_cell};
use crate::shell::progress::Progress;
use crate::shell::registry::{Flow, Verb};
use crate::timeutil::format_size;

/// The `decommission` verb.
pub struct Decommission;

#[derive(Args, Debug)]
struct DecommissionArgs {
    /// The nodes (host:port); several form one batch: nothing moves between them.
    #[arg(value_name = "ADDR", required = true, num_args = 1..)]
    nodes: Vec<String>,
    /// Only run the checks and print the plan; change nothing.
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Block until every node is DECOMMISSIONED, showing progress.
    #[arg(long = "wait")]
    wait: bool,
    /// With --wait: give up after this many seconds (exit 5).
    #[arg(
        long = "timeout",
        value_name = "SECONDS",
        default_value_t = 3600,
        requires = "wait"
    )]
    timeout: u64,
    /// Confirm without being asked (needed in scripts).
    #[arg(long = "yes")]
    yes: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// The checks and the plan as a report.
fn report(reply: &pb::DecommissionReply) -> Report {
    let checks = reply
        .checks
        .iter()
        .map(|c| {
            vec![
                Cell::str(&c.name),
                Cell::str(if c.ok { "ok" } else { "FAILED" }).bad_if(!c.ok),
                Cell::str(&c.detail),
            ]
        })
        .collect();
    let plan = reply
        .plan
        .iter()
        .map(|p| {
            let targets: Vec<String> = p
                .targets
                .iter()
                .map(|t| format!("{}={}({})", t.node, t.replicas, format_size(t.bytes)))
                .collect();
            let targets_json: Vec<_> = p
                .targets
                .iter()
                .map(|t| json!({"node": t.node, "replicas": t.replicas, "bytes": t.bytes}))
                .collect();
            vec![
                Cell::str(&p.node),
                Cell::num(p.replicas),
                Cell::num(p.primaries),
                size_cell(p.bytes),
                Cell::custom(
                    if targets.is_empty() {
                        "-".into()
                    } else {
                        targets.join(",")
                    },
                    json!(targets_json),
                ),
            ]
        })
        .collect();
    Report::default()
        .table(
            "checks",
            vec![col("check"), col("result"), col("detail")],
            checks,
        )
        .table(
            "plan",
            vec![
                col("node"),
                num("replicas"),
                num("primaries"),
                num("bytes_to_copy"),
                col("targets"),
            ],
            plan,
        )
}

/// A line for people: on stdout, unless stdout carries JSON (then on stderr).
fn note(ctx: &mut Context, json: bool, line: String) -> Result<(), ShellError> {
    if json {
        eprintln!("{line}");
        Ok(())
    } else {
        ctx.println(line)
    }
}

/// Follows the nodes until every one is DECOMMISSIONED (or dropped), with a bar on a
/// terminal and a plain line per change in scripts; exit 5 after `timeout`.
pub async fn wait_drained(
    ctx: &mut Context,
    nodes: &[String],
    timeout: Duration,
    json: bool,
) -> Result<(), ShellError> {
    let meta = ctx.meta()?;
    let deadline = Instant::now() + timeout;
    let progress = Progress::new(1);
    let mut last_lines: Vec<String> = Vec::new();
    loop {
        let drains = fetch_drains(&meta).await?;
        let mine: Vec<&pb::NodeDrain> = drains.iter().filter(|d| nodes.contains(&d.node)).collect();
        let left: u32 = mine.iter().map(|d| d.replicas_left).sum();
        let total: u32 = mine
            .iter()
            .map(|d| d.replicas_total.max(d.replicas_left))
            .sum();
        let done = mine
            .iter()
            .all(|d| d.state == pb::NodeState::Decommissioned as i32);
        let lines: Vec<String> = mine.iter().map(|d| drain_line(d)).collect();
        progress.set(
            u64::from(total - left),
            u64::from(total.max(1)),
            format!(
                "replicas moved; {} node(s) left",
                mine.iter().filter(|d| d.replicas_left > 0).count()
            ),
        );
        if !progress.drawn() && lines != last_lines {
            for line in &lines {
                eprintln!("{line}");
            }
            last_lines = lines.clone();
        }
        if done {
            progress.finish();
            for node in nodes {
                note(
                    ctx,
                    json,
                    format!("{node}: DECOMMISSIONED; it may be stopped"),
                )?;
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            progress.finish();
            return Err(Error::Timeout(format!(
                "timed out after {}s waiting for the decommission: {}",
                timeout.as_secs(),
                lines.join("; ")
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tonic::async_trait]
impl Verb for Decommission {
    fn name(&self) -> &'static str {
        "decommission"
    }
    fn about(&self) -> &'static str {
        "Drain nodes' replicas to the others, then retire them (checks, dry run, wait)"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/decommission.md")
    }
    fn args(&self, cmd: Command) -> Command {
        DecommissionArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = DecommissionArgs::from_arg_matches(m)?;
        let mut nodes = Vec::new();
        for n in &args.nodes {
            let addr = parse_addr(n).map_err(ShellError::Usage)?;
            if !nodes.contains(&addr) {
                nodes.push(addr);
            }
        }
        let meta = ctx.meta()?;
        let request = |dry_run| pb::DecommissionRequest {
            nodes: nodes.clone(),
            dry_run,
        };
        let plan = meta.decommission(request(true)).await?;
        let failed: Vec<&str> = plan
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        if args.dry_run || !failed.is_empty() {
            args.out.emit(ctx, &report(&plan))?;
            if !failed.is_empty() {
                return Err(Error::Unsafe(format!(
                    "decommission refused: {} failed; nothing changed",
                    failed.join(", ")
                ))
                .into());
            }
            return Ok(Flow::Continue);
        }
        let replicas: u32 = plan.plan.iter().map(|p| p.replicas).sum();
        let bytes: u64 = plan.plan.iter().map(|p| p.bytes).sum();
        ctx.confirm(
            &format!(
                "decommission {}: {replicas} replicas ({}) move to the other nodes",
                nodes.join(" "),
                format_size(bytes)
            ),
            args.yes,
        )?;
        let started = meta.decommission(request(false)).await?;
        args.out.emit(ctx, &report(&started))?;
        if args.wait {
            wait_drained(
                ctx,
                &nodes,
                Duration::from_secs(args.timeout),
                args.out.json,
            )
            .await?;
        } else {
            let line = format!(
                "{} DECOMMISSIONING; follow with `decommission_status`",
                nodes.join(" ")
            );
            note(ctx, args.out.json, line)?;
        }
        Ok(Flow::Continue)
    }
}
