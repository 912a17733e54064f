//! `get_meta_level`: prints the stored meta level in Pegasus's words
//! (`current meta level is fl_steady`) and, only while auto-freeze holds, the level in
//! force and why.

use clap::{ArgMatches, Command};

use crate::model::MetaLevel;
use crate::pb;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `get_meta_level` verb.
pub struct GetMetaLevel;

/// The lines describing a level reply: the stored level is `current`, per Pegasus; a
/// second line appears only while the level in force is lower.
pub fn effective_line(reply: &pb::ControlMetaReply) -> Option<String> {
    let effective = MetaLevel::from_pb(reply.effective_level).ok().flatten()?;
    (reply.effective_level != reply.stored_level).then(|| {
        format!(
            "effective meta level is {} ({})",
            effective.fl_name(),
            reply.freeze_reason
        )
    })
}

/// `fl_<name>` for a wire level.
pub fn fl_name(value: i32) -> String {
    MetaLevel::from_pb(value)
        .ok()
        .flatten()
        .map_or("fl_invalid".into(), MetaLevel::fl_name)
}

#[tonic::async_trait]
impl Verb for GetMetaLevel {
    fn name(&self) -> &'static str {
        "get_meta_level"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Print the meta level (and the level in force while auto-frozen)"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/get_meta_level.md")
    }
    fn args(&self, cmd: Command) -> Command {
        cmd
    }
    async fn run(&self, ctx: &mut Context, _m: &ArgMatches) -> Result<Flow, ShellError> {
        let reply = ctx.meta()?.control_meta(pb::MetaLevel::Unspecified).await?;
        ctx.println(format!(
            "current meta level is {}",
            fl_name(reply.stored_level)
        ))?;
        if let Some(line) = effective_line(&reply) {
            ctx.println(line)?;
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_line_only_while_frozen() {
        let mut reply = pb::ControlMetaReply {
            old_level: pb::MetaLevel::Steady as i32,
            stored_level: pb::MetaLevel::Lively as i32,
            effective_level: pb::MetaLevel::Lively as i32,
            freeze_reason: String::new(),
        };
        assert_eq!(effective_line(&reply), None);
        reply.effective_level = pb::MetaLevel::Freezed as i32;
        reply.freeze_reason = "alive_node_count 1 < min_live_node_count_for_unfreeze 3".into();
        assert_eq!(
            effective_line(&reply).unwrap(),
            "effective meta level is fl_freezed (alive_node_count 1 < min_live_node_count_for_unfreeze 3)"
        );
        assert_eq!(fl_name(pb::MetaLevel::Steady as i32), "fl_steady");
    }
}
