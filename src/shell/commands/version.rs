//! `version`: prints the shell's version.

use clap::{ArgMatches, Command};

use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `version` verb.
pub struct Version;

/// The line `version` and `shell --version` print.
pub fn version_line() -> String {
    format!("Ballast Shell {}", env!("CARGO_PKG_VERSION"))
}

#[tonic::async_trait]
impl Verb for Version {
    fn name(&self) -> &'static str {
        "version"
    }
    fn about(&self) -> &'static str {
        "Print the shell's version"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/version.md")
    }
    fn args(&self, cmd: Command) -> Command {
        cmd
    }
    async fn run(&self, ctx: &mut Context, _m: &ArgMatches) -> Result<Flow, ShellError> {
        ctx.println(version_line())?;
        Ok(Flow::Continue)
    }
}
