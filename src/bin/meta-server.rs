//! `meta-server`: the process that owns membership and partition placement. A thin main:
//! flags in, [`ballast::meta::start`] out, until Ctrl-C or SIGTERM.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ballast::meta::config::MetaConfig;
use ballast::model::MetaLevel;
use clap::Parser;

/// Ballast's meta server.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Ballast's meta server: owns membership and partition placement (durable in --data-dir)",
    long_about = None,
    args_override_self = true
)]
struct Args {
    /// A TOML file of these flags (keys spelled with _ for -); a flag on the command line wins.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:34601")]
    listen: String,
    /// Directory of the durable meta state (tables and placements; a member's Raft log).
    #[arg(long, required_unless_present = "leave_id")]
    data_dir: Option<PathBuf>,
    /// This meta server's id in a group of meta servers; omit it to run one meta server
    /// alone, as before. An id is never reused.
    #[arg(long)]
    id: Option<u64>,
    /// Start a new group of this meta server alone (once: a restart just reopens it). An
    /// existing single server's data directory is migrated in place.
    #[arg(long, requires = "id", conflicts_with = "join")]
    single: bool,
    /// Join the group through these members (any of them: a follower forwards to the
    /// leader). A member the group already holds skips joining, so restarts keep the flag.
    #[arg(long, value_name = "ADDRS", value_delimiter = ',', requires = "id")]
    join: Vec<String>,
    /// Join as an observer: it replicates and serves reads, and never votes.
    #[arg(long, requires = "join")]
    observer: bool,
    /// Remove member ID from the group and exit (sent to --leave-via); nothing is opened.
    #[arg(long, value_name = "ID", requires = "leave_via", conflicts_with = "id")]
    leave_id: Option<u64>,
    /// Members to send --leave-id to, tried in turn.
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    leave_via: Vec<String>,
    /// How often the group's leader heartbeats its members, in ms.
    #[arg(long, default_value_t = 100)]
    raft_heartbeat_ms: u64,
    /// The group's shortest election timeout in ms (the longest is twice it); must exceed
    /// --raft-heartbeat-ms.
    #[arg(long, default_value_t = 500)]
    raft_election_ms: u64,
    /// How often replica servers beacon (handed to them in beacon replies).
    #[arg(long, default_value_t = 3000)]
    beacon_interval_ms: u64,
    /// How long an acknowledged beacon keeps a replica server's lease.
    #[arg(long, default_value_t = 20000)]
    lease_ms: u64,
    /// How long without a beacon before a node is UNALIVE; must exceed --lease-ms.
    #[arg(long, default_value_t = 22000)]
    grace_ms: u64,
    /// The meta level at start (the level is not persisted).
    #[arg(long, default_value = "steady", value_parser = parse_level)]
    level_on_start: MetaLevel,
    /// Auto-freeze while fewer nodes than this are ALIVE.
    #[arg(long, default_value_t = 3)]
    min_live_node_count_for_unfreeze: u32,
    /// Auto-freeze while ALIVE*100 < this*(ALIVE+UNALIVE); 0..=100.
    #[arg(long, default_value_t = 65, value_parser = clap::value_parser!(u32).range(0..=100))]
    node_live_percentage_threshold_for_update: u32,
    /// How long to wait for a dropped secondary before re-replicating (meta.lb.assign_delay_ms).
    #[arg(long, default_value_t = 600_000)]
    assign_delay_ms: u64,
    /// How long a dropped table stays recallable when `drop` gives no -r.
    #[arg(long, default_value_t = 604_800)]
    hold_dropped_app_seconds: u64,
    /// Every meta server of the cluster, for cluster_info (default: this one).
    #[arg(long, value_delimiter = ',')]
    meta_servers: Vec<String>,
    /// How often cure and the balancer run.
    #[arg(long, default_value_t = 10_000)]
    lb_interval_ms: u64,
    /// How long adding a replica may take before it is given up and re-planned.
    #[arg(long, default_value_t = 600_000)]
    action_timeout_ms: u64,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// See `WORKER_THREADS_HELP`.
    #[arg(long, value_name = "N", help = ballast::server::WORKER_THREADS_HELP,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    worker_threads: Option<u64>,
}

fn parse_level(s: &str) -> Result<MetaLevel, String> {
    s.parse().map_err(|e: ballast::Error| e.to_string())
}

fn main() -> std::process::ExitCode {
    ballast::server::main_with_args(|args: &Args| args.worker_threads, run)
}

async fn run(args: Args) -> anyhow::Result<()> {
    ballast::server::init_logging(&args.log_level)?;
    if let Some(id) = args.leave_id {
        let request = ballast::meta::raft::network::Request::Leave { id, force: false };
        let done = ballast::meta::raft::client::send(&args.leave_via, request).await?;
        println!("{done}");
        return Ok(());
    }
    if args.id.is_some() && !args.single && args.join.is_empty() {
        anyhow::bail!("--id needs --single (start a new group) or --join ADDRS (join one)");
    }
    let data_dir = args.data_dir.clone().context("--data-dir is required")?;
    let config = MetaConfig {
        beacon_interval: Duration::from_millis(args.beacon_interval_ms),
        lease: Duration::from_millis(args.lease_ms),
        grace: Duration::from_millis(args.grace_ms),
        level_on_start: args.level_on_start,
        min_live_node_count_for_unfreeze: args.min_live_node_count_for_unfreeze,
        node_live_percentage_threshold_for_update: args.node_live_percentage_threshold_for_update,
        assign_delay: Duration::from_millis(args.assign_delay_ms),
        hold_dropped_app: Duration::from_secs(args.hold_dropped_app_seconds),
        meta_servers: args.meta_servers,
        lb_interval: Duration::from_millis(args.lb_interval_ms.max(1)),
        action_timeout: Duration::from_millis(args.action_timeout_ms.max(1)),
    };
    config.validate()?;
    let listener = ballast::server::bind(&args.listen).await?;
    let context = || format!("cannot start the meta server in {}", data_dir.display());
    let handle = match args.id {
        None => {
            ballast::meta::start(config, &data_dir, listener)
                .await
                .with_context(context)?
                .0
        }
        Some(id) => {
            let opts = ballast::meta::GroupOptions {
                id,
                single: args.single,
                join: args.join.clone(),
                observer: args.observer,
                timings: ballast::meta::raft::Timings {
                    heartbeat_ms: args.raft_heartbeat_ms,
                    election_min_ms: args.raft_election_ms,
                    ..Default::default()
                },
            };
            ballast::meta::start_member(config, opts, &data_dir, listener)
                .await
                .with_context(context)?
                .0
        }
    };
    println!("meta server listening on {}", handle.addr());
    std::io::stdout().flush()?;
    ballast::server::wait_for_signal().await;
    handle.shutdown().await;
    Ok(())
}
