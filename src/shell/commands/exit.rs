//! `exit` (and `quit`): leaves the shell.

use clap::{ArgMatches, Command};

use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `exit` verb.
pub struct Exit;

#[tonic::async_trait]
impl Verb for Exit {
    fn name(&self) -> &'static str {
        "exit"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["quit"]
    }
    fn about(&self) -> &'static str {
        "Leave the shell"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/exit.md")
    }
    fn args(&self, cmd: Command) -> Command {
        cmd
    }
    async fn run(&self, _ctx: &mut Context, _m: &ArgMatches) -> Result<Flow, ShellError> {
        Ok(Flow::Exit)
    }
}
