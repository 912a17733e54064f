//! `set_meta_level LEVEL`: sets the stored meta level (`stopped`, `blind`, `freezed`,
//! `steady`, `lively`). Prints Pegasus's `control meta level ok, the old level is
//! fl_<old>`, which ops scripts grep for.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::model::MetaLevel;
use crate::shell::commands::get_meta_level::{effective_line, fl_name};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `set_meta_level` verb.
pub struct SetMetaLevel;

#[derive(Args, Debug)]
struct SetMetaLevelArgs {
    /// The new level.
    #[arg(value_name = "LEVEL", value_parser = level_values(), ignore_case = true)]
    level: String,
}

/// The five levels (as [`MetaLevel::ALL`]), each also accepted in Pegasus's `fl_` spelling.
fn level_values() -> clap::builder::PossibleValuesParser {
    const LEVELS: [(&str, &str); 5] = [
        ("stopped", "fl_stopped"),
        ("blind", "fl_blind"),
        ("freezed", "fl_freezed"),
        ("steady", "fl_steady"),
        ("lively", "fl_lively"),
    ];
    LEVELS
        .map(|(name, fl)| clap::builder::PossibleValue::new(name).alias(fl))
        .into()
}

#[tonic::async_trait]
impl Verb for SetMetaLevel {
    fn name(&self) -> &'static str {
        "set_meta_level"
    }
    fn about(&self) -> &'static str {
        "Set the meta level: what the meta server may change"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/set_meta_level.md")
    }
    fn args(&self, cmd: Command) -> Command {
        SetMetaLevelArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = SetMetaLevelArgs::from_arg_matches(m)?;
        let level: MetaLevel = args.level.parse()?;
        let reply = ctx.meta()?.control_meta(level.to_pb()).await?;
        ctx.println(format!(
            "control meta level ok, the old level is {}",
            fl_name(reply.old_level)
        ))?;
        if let Some(line) = effective_line(&reply) {
            ctx.println(line)?;
        }
        Ok(Flow::Continue)
    }
}
