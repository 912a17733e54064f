//! `replica-server`: the process that holds replicas. A thin main: flags in,
//! [`ballast::replica::start`] out, until Ctrl-C or SIGTERM, which stop it the planned way
//! (primaries moved first, then it leaves every configuration) within
//! `--shutdown-timeout`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ballast::replica::ReplicaConfig;
use clap::Parser;

/// Ballast's replica server.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Ballast's replica server: holds partition replicas and serves reads and writes",
    long_about = None,
    args_override_self = true
)]
struct Args {
    /// A TOML file of these flags (keys spelled with _ for -); a flag on the command line wins.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on; it is also the node's name in the cluster, so it must be
    /// one the meta server and the shell can reach (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:34801")]
    listen: String,
    /// The meta servers, host:port[,host:port...].
    #[arg(long, env = "BALLAST_META", value_delimiter = ',', required = true)]
    meta: Vec<String>,
    /// Directory of the replica record and replica data.
    #[arg(long)]
    data_dir: PathBuf,
    /// Beacon interval until the meta server hands out its own.
    #[arg(long, default_value_t = 3000)]
    beacon_interval_ms: u64,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// See `WORKER_THREADS_HELP`.
    #[arg(long, value_name = "N", help = ballast::server::WORKER_THREADS_HELP,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    worker_threads: Option<u64>,
    /// On SIGTERM or Ctrl-C, how long a planned stop may take (its primaries move to
    /// secondaries, then it leaves every configuration) before the process exits anyway;
    /// 0 exits at once, like a crash.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    shutdown_timeout: u64,
    /// The page cache each replica's store may keep in memory, in MiB (the host's page
    /// cache holds the rest of its file).
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    store_cache_mb: u64,
}

fn main() -> std::process::ExitCode {
    ballast::server::main_with_args(|args: &Args| args.worker_threads, run)
}

async fn run(args: Args) -> anyhow::Result<()> {
    ballast::server::init_logging(&args.log_level)?;
    let config = ReplicaConfig {
        store_cache_bytes: (args.store_cache_mb << 20) as usize,
        ..ReplicaConfig::new(
            args.meta,
            args.data_dir.clone(),
            Duration::from_millis(args.beacon_interval_ms.max(1)),
        )
    };
    let listener = ballast::server::bind(&args.listen).await?;
    let (handle, replica) = ballast::replica::start(config, listener)
        .await
        .with_context(|| {
            format!(
                "cannot start the replica server in {}",
                args.data_dir.display()
            )
        })?;
    println!("replica server listening on {}", handle.addr());
    std::io::stdout().flush()?;
    ballast::server::wait_for_signal().await;
    if args.shutdown_timeout > 0 {
        let budget = Duration::from_secs(args.shutdown_timeout);
        if tokio::time::timeout(budget, replica.leave(budget))
            .await
            .is_err()
        {
            tracing::warn!("the planned stop took longer than --shutdown-timeout; exiting");
        }
    }
    handle.shutdown().await;
    Ok(())
}
