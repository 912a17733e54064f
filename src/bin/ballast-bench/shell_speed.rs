//! `shell-speed`: how fast the shell itself is, against baselines in the same run: a
//! one-shot `shell --meta ADDR get_meta_level` beside a hello-world process (`echo`), and
//! `get_meta_level` piped `--verbs` times through `shell < file` (verbs per second), once as
//! one verb per line (run side by side) and once two per line (run one after the other).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct ShellSpeedArgs {
    /// One-shot runs of each (the median is reported).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Verbs piped through one shell.
    #[arg(long, default_value_t = 10_000)]
    verbs: usize,
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The median wall time of `runs` runs of `program args`, which must succeed.
fn time_runs(program: &std::path::Path, args: &[&str], runs: usize) -> Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let out = Command::new(program)
            .args(args)
            .env_remove("BALLAST_META")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", program.display()))?;
        times.push(start.elapsed());
        if !out.status.success() {
            bail!(
                "{} {args:?} failed: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(median(times))
}

/// Runs it against a cluster of its own.
pub async fn run(args: ShellSpeedArgs) -> Result<()> {
    if args.runs == 0 || args.verbs == 0 {
        bail!("--runs and --verbs must be at least 1");
    }
    let dir = tempfile::Builder::new().prefix("shell-speed").tempdir()?;
    let cluster = crate::procs::ProcCluster::start(dir.path(), 1, &[])?;
    let meta = cluster.meta_addr().to_string();
    let shell = std::env::current_exe()?
        .parent()
        .context("no binary directory")?
        .join("shell");
    let echo = which_echo();
    let hello = time_runs(&echo, &["hello"], args.runs)?;
    let one_shot = time_runs(&shell, &["--meta", &meta, "get_meta_level"], args.runs)?;
    let piped = time_script(&shell, &meta, &"get_meta_level\n".repeat(args.verbs))?;
    // Two statements on a line run one after the other: the rate without pipelining.
    let pairs = args.verbs.div_ceil(2);
    let serial = time_script(
        &shell,
        &meta,
        &"get_meta_level; get_meta_level\n".repeat(pairs),
    )?;
    drop(cluster);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "shell-speed: median of {} runs, {} piped verbs, {} shell",
        args.runs,
        args.verbs,
        linkage(&shell)
    );
    println!(
        "one-shot get_meta_level {:.1} ms, hello-world (echo) {:.1} ms = {:.1}x",
        ms(one_shot),
        ms(hello),
        ms(one_shot) / ms(hello).max(0.001)
    );
    println!(
        "piped get_meta_level: {} verbs in {:.2} s = {:.0} verbs/s",
        args.verbs,
        piped.as_secs_f64(),
        args.verbs as f64 / piped.as_secs_f64()
    );
    println!(
        "one by one (two per line): {} verbs in {:.2} s = {:.0} verbs/s",
        pairs * 2,
        serial.as_secs_f64(),
        (pairs * 2) as f64 / serial.as_secs_f64()
    );
    Ok(())
}

/// The wall time of `script` piped through one shell, which must succeed.
fn time_script(shell: &std::path::Path, meta: &str, script: &str) -> Result<Duration> {
    let start = Instant::now();
    let mut child = Command::new(shell)
        .args(["--meta", meta])
        .env_remove("BALLAST_META")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "the piped script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

/// Whether `binary` is linked dynamically (names a dynamic loader) or statically
/// (`cargo build-shell`).
fn linkage(binary: &std::path::Path) -> &'static str {
    let head = std::fs::read(binary).unwrap_or_default();
    let head = &head[..head.len().min(4096)];
    if head.windows(7).any(|w| w == b"ld-linu") {
        "dynamic"
    } else {
        "static"
    }
}

/// A hello-world binary to compare with: `echo` from the system.
fn which_echo() -> std::path::PathBuf {
    ["/bin/echo", "/usr/bin/echo"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| "echo".into())
}
