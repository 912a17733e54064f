//! `sleep SECONDS`: pauses a script (Pegasus's ops scripts sleep between steps).

use std::time::Duration;

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `sleep` verb.
pub struct Sleep;

#[derive(Args, Debug)]
struct SleepArgs {
    /// How long to pause, in seconds (fractions allowed).
    #[arg(value_name = "SECONDS", value_parser = parse_seconds)]
    seconds: f64,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds in [0, 86400]")),
    }
}

#[tonic::async_trait]
impl Verb for Sleep {
    fn name(&self) -> &'static str {
        "sleep"
    }
    fn about(&self) -> &'static str {
        "Pause for SECONDS"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/sleep.md")
    }
    fn args(&self, cmd: Command) -> Command {
        SleepArgs::augment_args(cmd)
    }
    async fn run(&self, _ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = SleepArgs::from_arg_matches(m)?;
        tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_must_be_a_sane_number() {
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
