//! `timeout [MS]`: prints, or sets, how long one data operation may take, retries on
//! a moved primary included (Pegasus's default: 5000 ms).

use std::time::Duration;

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `timeout` verb.
pub struct Timeout;

#[derive(Args, Debug)]
struct TimeoutArgs {
    /// The new timeout in milliseconds (1 to 3600000).
    #[arg(value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    ms: Option<u64>,
}

#[tonic::async_trait]
impl Verb for Timeout {
    fn name(&self) -> &'static str {
        "timeout"
    }
    fn about(&self) -> &'static str {
        "Print or set the data operation timeout"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/timeout.md")
    }
    fn args(&self, cmd: Command) -> Command {
        TimeoutArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = TimeoutArgs::from_arg_matches(m)?;
        match args.ms {
            None => {
                let ms = ctx.data_timeout().as_millis();
                ctx.println(format!("Current timeout: {ms} ms"))?;
            }
            Some(ms) => {
                ctx.set_data_timeout(Duration::from_millis(ms));
                ctx.confirm_session("OK")?;
            }
        }
        Ok(Flow::Continue)
    }
}
