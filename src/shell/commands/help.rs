//! `help [VERB]`: lists every verb with its synopsis, or prints one verb's help page.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::commands::VERBS;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb, command, find, usage};

/// The `help` verb.
pub struct Help;

#[derive(Args, Debug)]
struct HelpArgs {
    /// The verb to explain.
    #[arg(value_name = "VERB")]
    verb: Option<String>,
}

/// The verb list `help` prints: every synopsis, then the exit codes.
pub fn overview() -> String {
    let mut out = String::from("Usage:\n");
    for verb in VERBS {
        out.push_str(&format!("  {}\n", usage(&command(*verb))));
    }
    out.push_str(
        "\nType \"help VERB\" or \"VERB -h\" for a verb's page.\n\
         Exit codes in scripts: 0 ok, 1 failed or refused, 2 bad usage, \
         3 cluster unreachable, 4 safety check refused, 5 timed out.",
    );
    out
}

#[tonic::async_trait]
impl Verb for Help {
    fn name(&self) -> &'static str {
        "help"
    }
    fn about(&self) -> &'static str {
        "List the verbs, or print one verb's help page"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/help.md")
    }
    fn args(&self, cmd: Command) -> Command {
        HelpArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = HelpArgs::from_arg_matches(m)?;
        match args.verb {
            None => ctx.println(overview())?,
            Some(name) => match find(&name) {
                Some(verb) => ctx.print_page(verb.page())?,
                None => {
                    return Err(ShellError::Usage(format!(
                        "unknown command '{name}'; type \"help\" for the list"
                    )));
                }
            },
        }
        Ok(Flow::Continue)
    }
}
