//! `decommission_status [-j] [-o FILE]`: every node being (or recently) decommissioned —
//! state, replicas and bytes left of what it held, percent done, average speed and ETA —
//! and, once a node has moved nothing for a while, the partitions that block it and why
//! (no eligible target, a learner that keeps failing, the level freezed...).

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::json;

use crate::client::MetaClient;
use crate::model::Gpid;
use crate::pb;
use crate::shell::commands::OutputArgs;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report, col, num, size_cell};
use crate::shell::registry::{Flow, Verb};
use crate::timeutil::{format_size, now_ms};

/// The `decommission_status` verb.
pub struct DecommissionStatus;

#[derive(Args, Debug)]
struct StatusArgs {
    #[command(flatten)]
    out: OutputArgs,
}

/// Every departing node's progress, by address.
pub async fn fetch_drains(meta: &MetaClient) -> Result<Vec<pb::NodeDrain>, ShellError> {
    Ok(meta.decommission_status().await?.nodes)
}

fn state_name(state: i32) -> &'static str {
    match pb::NodeState::try_from(state) {
        Ok(pb::NodeState::Decommissioning) => "DECOMMISSIONING",
        Ok(pb::NodeState::Decommissioned) => "DECOMMISSIONED",
        Ok(pb::NodeState::Dropped) => "DROPPED",
        _ => "NORMAL",
    }
}

/// (percent done, bytes per second since the start, seconds left if known).
fn pace(d: &pb::NodeDrain, now_ms: u64) -> (f64, f64, Option<u64>) {
    let (total, left) = if d.bytes_total > 0 {
        (d.bytes_total as f64, d.bytes_left.min(d.bytes_total) as f64)
    } else {
        (
            f64::from(d.replicas_total.max(1)),
            f64::from(d.replicas_left.min(d.replicas_total.max(1))),
        )
    };
    let percent = if d.replicas_left == 0 {
        100.0
    } else {
        ((total - left) / total * 100.0).clamp(0.0, 99.9)
    };
    let secs = now_ms.saturating_sub(d.started_ms) as f64 / 1000.0;
    let moved = d.bytes_total.saturating_sub(d.bytes_left) as f64;
    let speed = if secs > 0.0 { moved / secs } else { 0.0 };
    let eta = (speed > 0.0).then(|| (d.bytes_left as f64 / speed).ceil() as u64);
    (percent, speed, eta)
}

/// One plain progress line, as `decommission --wait` prints it in scripts.
pub fn drain_line(d: &pb::NodeDrain) -> String {
    let (percent, speed, eta) = pace(d, now_ms());
    let eta = eta.map_or("-".into(), |s| format!("{s}s"));
    format!(
        "decommission: {} {} {}/{} replicas left ({} primaries), {} of {} left, {percent:.0}%, {}/s, ETA {eta}",
        d.node,
        state_name(d.state),
        d.replicas_left,
        d.replicas_total,
        d.primaries_left,
        format_size(d.bytes_left),
        format_size(d.bytes_total),
        format_size(speed as u64),
    )
}

/// The progress table and the blockers.
fn report(drains: &[pb::NodeDrain], now_ms: u64) -> Report {
    let mut rows = Vec::new();
    let mut blockers = Vec::new();
    for d in drains {
        let (percent, speed, eta) = pace(d, now_ms);
        rows.push(vec![
            Cell::str(&d.node),
            Cell::str(state_name(d.state)),
            Cell::str(if d.alive { "ALIVE" } else { "UNALIVE" }).bad_if(!d.alive),
            Cell::num(d.replicas_left),
            Cell::num(d.replicas_total),
            size_cell(d.bytes_left),
            Cell::custom(
                format!("{percent:.0}%"),
                json!((percent * 10.0).round() / 10.0),
            ),
            Cell::custom(
                format!("{}/s", format_size(speed as u64)),
                json!(speed as u64),
            ),
            Cell::custom(eta.map_or("-".into(), |s| format!("{s}s")), json!(eta)),
            Cell::custom(format!("{}s", d.idle_ms / 1000), json!(d.idle_ms / 1000)),
        ]);
        for b in &d.blockers {
            let gpid = b.gpid.as_ref().map_or(Gpid::new(0, 0), Gpid::from_pb);
            blockers.push(vec![
                Cell::str(&d.node),
                Cell::str(gpid.to_string()),
                Cell::str(&b.reason),
            ]);
        }
    }
    let columns = vec![
        col("node"),
        col("state"),
        col("status"),
        num("replicas_left"),
        num("replicas_total"),
        num("bytes_left"),
        num("percent"),
        num("speed"),
        num("eta"),
        num("idle"),
    ];
    Report::default()
        .table("decommission", columns, rows)
        .table(
            "blockers",
            vec![col("node"), col("gpid"), col("reason")],
            blockers,
        )
}

#[tonic::async_trait]
impl Verb for DecommissionStatus {
    fn name(&self) -> &'static str {
        "decommission_status"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Show the progress of decommissions, and what blocks a stalled one"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/decommission_status.md")
    }
    fn args(&self, cmd: Command) -> Command {
        StatusArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = StatusArgs::from_arg_matches(m)?;
        let drains = fetch_drains(&ctx.meta()?).await?;
        args.out.emit(ctx, &report(&drains, now_ms()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(left: u32, total: u32, bytes_left: u64, bytes_total: u64) -> pb::NodeDrain {
        pb::NodeDrain {
            node: "a:1".into(),
            state: pb::NodeState::Decommissioning as i32,
            alive: true,
            replicas_left: left,
            replicas_total: total,
            bytes_left,
            bytes_total,
            started_ms: 1_000,
            ..Default::default()
        }
    }

    #[test]
    fn pace_counts_bytes_and_projects_the_rest() {
        // Half the bytes moved in 10 s: 50%, 50 B/s, 10 s to go.
        let (percent, speed, eta) = pace(&drain(2, 4, 500, 1_000), 11_000);
        assert_eq!(percent, 50.0);
        assert_eq!(speed, 50.0);
        assert_eq!(eta, Some(10));
    }

    #[test]
    fn an_empty_node_is_done_and_a_stuck_one_has_no_eta() {
        assert_eq!(pace(&drain(0, 3, 0, 0), 5_000).0, 100.0);
        assert_eq!(pace(&drain(3, 3, 900, 900), 5_000).2, None);
    }

    #[test]
    fn blockers_are_listed_with_their_partition() {
        let mut d = drain(1, 1, 10, 10);
        d.blockers.push(pb::DrainBlocker {
            gpid: Some(Gpid::new(2, 3).to_pb()),
            reason: "no eligible target".into(),
        });
        let json = report(&[d], 2_000).to_json();
        assert_eq!(json["blockers"][0]["gpid"], "2.3");
        assert_eq!(json["decommission"][0]["replicas_left"], 1);
    }
}
