//! `use [APP]`: chooses the table the data verbs (`set`, `get`, `full_scan`, ...) work
//! on, after checking it exists; without APP, prints the table in use.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::commands::create::parse_name;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `use` verb.
pub struct Use;

#[derive(Args, Debug)]
struct UseArgs {
    /// The table to use.
    #[arg(value_name = "APP", value_parser = parse_name)]
    name: Option<String>,
}

#[tonic::async_trait]
impl Verb for Use {
    fn name(&self) -> &'static str {
        "use"
    }
    fn about(&self) -> &'static str {
        "Choose the table data verbs work on"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/use.md")
    }
    fn args(&self, cmd: Command) -> Command {
        UseArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = UseArgs::from_arg_matches(m)?;
        match args.name {
            None => {
                let app = ctx.app()?;
                ctx.println(app)?;
            }
            Some(name) => {
                ctx.data()?.table(&name).await?;
                ctx.set_app(name);
                ctx.confirm_session("OK")?;
            }
        }
        Ok(Flow::Continue)
    }
}
