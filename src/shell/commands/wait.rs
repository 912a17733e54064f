//! `wait healthy|balanced [--timeout SECONDS]`: blocks until every partition of every
//! AVAILABLE table is fully healthy — a primary and `max_replica_count` replicas, each on
//! a node beaconing now, not merely not yet declared dead — and, for `balanced`, until the
//! balancer has nothing left to do and no action is in flight. Scripts need no sleep
//! loops. A progress line on a terminal; exit code 5 on timeout.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::error::Error;
use crate::model::{HealthCounts, PartitionConfig};
use crate::pb;
use crate::shell::commands::ls::serving_nodes;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::progress::Progress;
use crate::shell::registry::{Flow, Verb};

/// The `wait` verb.
pub struct Wait;

#[derive(Args, Debug)]
struct WaitArgs {
    /// What to wait for.
    #[arg(value_name = "CONDITION", value_parser = ["healthy", "balanced"])]
    condition: String,
    /// Give up after this many seconds (exit code 5).
    #[arg(long = "timeout", value_name = "SECONDS", default_value_t = 600)]
    timeout: u64,
}

/// How often the cluster is asked.
const POLL: Duration = Duration::from_millis(200);

/// (fully healthy partitions, all partitions), by the one health rule, counting a
/// member only if the meta server says it is serving now.
pub fn healthy_counts(apps: &[pb::AppDetail], serving: &HashSet<String>) -> (usize, usize) {
    let mut healthy = 0;
    let mut total = 0;
    for app in apps {
        let max = app.info.as_ref().map_or(0, |i| i.max_replica_count);
        let parts: Vec<PartitionConfig> = app
            .partitions
            .iter()
            .map(PartitionConfig::from_pb)
            .collect();
        let counts = HealthCounts::of(&parts, max, |m| serving.contains(m));
        healthy += counts.fully_healthy as usize;
        total += parts.len();
    }
    (healthy, total)
}

#[tonic::async_trait]
impl Verb for Wait {
    fn name(&self) -> &'static str {
        "wait"
    }
    fn about(&self) -> &'static str {
        "Wait until every partition is healthy, or the cluster is balanced"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/wait.md")
    }
    fn args(&self, cmd: Command) -> Command {
        WaitArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = WaitArgs::from_arg_matches(m)?;
        let balanced = args.condition == "balanced";
        let meta = ctx.meta()?;
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        let progress = Progress::new(1);
        loop {
            let apps = meta.list_apps(pb::AppStatus::Available).await?;
            let Some(serving) = serving_nodes(&meta).await? else {
                progress.finish();
                return Err(ShellError::Usage(
                    "wait needs node liveness, which a stale answer does not have: \
                     run it without --stale-ok"
                        .into(),
                ));
            };
            let (healthy, total) = healthy_counts(&apps, &serving);
            let mut pending = String::new();
            let mut done = healthy == total;
            if balanced {
                let info = meta.cluster_info().await?;
                let ops = info.balance_operation_count.map_or(-1, |c| c.total);
                done = done && ops == 0 && info.actions_in_flight == 0;
                pending = format!(
                    ", balance operations {ops}, in flight {}",
                    info.actions_in_flight
                );
            }
            let status = format!("{healthy}/{total} partitions healthy{pending}");
            progress.set(healthy as u64, total as u64, status.clone());
            if done {
                progress.finish();
                ctx.println(format!(
                    "{}: {status}",
                    if balanced { "balanced" } else { "healthy" }
                ))?;
                return Ok(Flow::Continue);
            }
            if Instant::now() >= deadline {
                progress.finish();
                return Err(ShellError::Cluster(Error::Timeout(format!(
                    "timed out after {}s waiting for {}: {status}",
                    args.timeout, args.condition
                ))));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_must_be_serving_to_count() {
        let app = pb::AppDetail {
            info: Some(pb::AppInfo {
                max_replica_count: 3,
                ..Default::default()
            }),
            partitions: vec![
                pb::PartitionConfig {
                    primary: "a".into(),
                    secondaries: vec!["b".into(), "c".into()],
                    ..Default::default()
                },
                pb::PartitionConfig {
                    primary: "".into(),
                    secondaries: vec!["b".into(), "c".into()],
                    ..Default::default()
                },
            ],
        };
        let all: HashSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(healthy_counts(std::slice::from_ref(&app), &all), (1, 2));
        let without_c: HashSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(healthy_counts(&[app], &without_c), (0, 2));
    }
}
