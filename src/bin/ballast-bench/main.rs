//! `ballast-bench`: the data plane's proof and measurements, against real server
//! processes it starts itself (or, with `--meta`, an existing cluster).
//!
//! - `kill-test`: no acknowledged write lost while nodes are killed and the cluster
//!   scales out and in ([`kill_test`]);
//! - `load`: set/get throughput and latency percentiles with N clients ([`load`]);
//! - `learn`: how fast a new replica copies a few hundred MB, beside `dd` ([`learn`]);
//! - `catch-up`: what a node copies when it comes back after being down under writes
//!   ([`catch_up`]);
//! - `move-pri`: the longest write stall while a primary moves ([`move_pri`]);
//! - `failover`: the write stall when a primary's node is stopped or killed, beside a
//!   primary move ([`failover`]);
//! - `sim`: the deterministic simulation's randomized fault runs ([`sim`]);
//! - `fuzz-shell`: random lines through the shell's lexer and parsers ([`fuzz_shell`]);
//! - `shell-speed`: the shell's one-shot and piped speed beside baselines ([`shell_speed`]);
//! - `fuzz-rpc`: malformed requests to every server RPC of real processes ([`fuzz_rpc`]);
//! - `meta-bench`: DDL and configuration-change latency through Raft ([`meta_bench`]);
//! - `meta-scale`: the meta server under many simulated replica servers ([`meta_scale`]).

mod catch_up;
mod failover;
mod fuzz_rpc;
mod fuzz_shell;
mod kill_test;
mod learn;
mod load;
mod meta_bench;
mod meta_scale;
mod move_pri;
mod ops;
mod proc_stats;
mod procs;
mod shell_speed;
mod sim;
mod sim_nodes;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ballast's benchmarks and kill test.
#[derive(Parser, Debug)]
#[command(
    name = "ballast-bench",
    version,
    about = "Ballast's benchmarks, kill test and simulation, beside baselines measured in the same run"
)]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Write and verify while killing and scaling; exit 0 only if nothing was lost.
    KillTest(kill_test::KillTestArgs),
    /// Set/get load: QPS and latency percentiles, against an fsync baseline.
    Load(load::LoadArgs),
    /// Copy speed of a new replica (learning), against dd's sequential write speed.
    Learn(learn::LearnArgs),
    /// What a replica server copies when it comes back after being down under writes.
    CatchUp(catch_up::CatchUpArgs),
    /// Longest window in which writes to a partition fail or stall while its primary moves.
    MovePri(move_pri::MovePriArgs),
    /// Longest write stall when a primary's node is stopped (SIGTERM) or killed, beside a move.
    Failover(failover::FailoverArgs),
    /// Deterministic simulation with random faults; exit 1 on a broken invariant.
    Sim(sim::SimArgs),
    /// Random lines through the shell's lexer and parsers; exit 1 on any crash.
    FuzzShell(fuzz_shell::FuzzShellArgs),
    /// Malformed requests to every server RPC; exit 0 only if no server crashed.
    FuzzRpc(fuzz_rpc::FuzzRpcArgs),
    /// The shell's own speed: one-shot beside a hello-world process, and piped verbs/s.
    ShellSpeed(shell_speed::ShellSpeedArgs),
    /// DDL and configuration-change latency through a Raft group of meta servers, beside
    /// a single meta server in the same run.
    #[command(name = "meta-bench")]
    MetaLatency(meta_bench::MetaBenchArgs),
    /// The meta server under many simulated replica servers: CPU per beacon, memory,
    /// `nodes -d`/`ls -d` latency and failover time.
    MetaScale(meta_scale::MetaScaleArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Bench::Sim(args) = cli.command {
        return if sim::run(args) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    if let Bench::FuzzShell(args) = cli.command {
        return if fuzz_shell::run(args) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Bench::KillTest(args) => {
                // A hang is a failure too: give up well after the run should have ended.
                let limit = args.duration() + std::time::Duration::from_secs(300);
                match tokio::time::timeout(limit, kill_test::run(args)).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        println!("kill-test FAILED: did not finish within {limit:?}");
                        Ok(false)
                    }
                }
            }
            Bench::Load(args) => load::run(args).await.map(|()| true),
            Bench::Learn(args) => learn::run(args).await.map(|()| true),
            Bench::CatchUp(args) => catch_up::run(args).await.map(|()| true),
            Bench::MovePri(args) => move_pri::run(args).await,
            Bench::Failover(args) => failover::run(args).await,
            Bench::ShellSpeed(args) => shell_speed::run(args).await.map(|()| true),
            Bench::FuzzRpc(args) => fuzz_rpc::run(args).await,
            Bench::MetaLatency(args) => meta_bench::run(args).await.map(|()| true),
            Bench::MetaScale(args) => meta_scale::run(args).await.map(|()| true),
            Bench::Sim(_) | Bench::FuzzShell(_) => unreachable!("run before the runtime"),
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::from(1)
        }
    }
}
