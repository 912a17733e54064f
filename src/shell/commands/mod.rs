//! Every shell verb, one per file, and the one list that registers them. Each file owns
//! its arguments (clap derive), execution, rendering and unit tests; its help page is
//! `commands/<verb>.md` at the top of the repository.

mod app;
mod app_stat;
mod balance;
mod cancel_decommission;
mod check_and_set;
mod clear_app_envs;
mod cluster_info;
mod count_data;
mod create;
mod ddd_diagnose;
mod decommission;
mod decommission_status;
mod del;
mod del_app_envs;
mod drop;
mod drop_node;
mod exist;
mod exit;
mod full_scan;
mod get;
mod get_app_envs;
mod get_meta_level;
mod hash_scan;
mod help;
mod incr;
mod local;
mod ls;
mod meta;
mod multi_del;
mod multi_get;
mod multi_set;
mod nodes;
mod propose;
mod recall;
mod remote_command;
mod rename;
mod server_info;
mod server_stat;
mod set;
mod set_app_envs;
mod set_meta_level;
mod sleep;
mod timeout;
mod ttl;
mod use_app;
pub mod version;
mod wait;

use std::path::PathBuf;

use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::output::{Cell, Report};
use crate::shell::registry::{Flow, Verb};

/// The registry: every verb, in the order `help` lists them.
pub static VERBS: &[&dyn Verb] = &[
    &help::Help,
    &version::Version,
    &exit::Exit,
    &cluster_info::ClusterInfo,
    &nodes::Nodes,
    &ls::Ls,
    &app::App,
    &create::Create,
    &drop::Drop,
    &recall::Recall,
    &rename::Rename,
    &get_app_envs::GetAppEnvs,
    &set_app_envs::SetAppEnvs,
    &del_app_envs::DelAppEnvs,
    &clear_app_envs::ClearAppEnvs,
    &get_meta_level::GetMetaLevel,
    &set_meta_level::SetMetaLevel,
    &balance::Balance,
    &propose::Propose,
    &ddd_diagnose::DddDiagnose,
    &decommission::Decommission,
    &decommission_status::DecommissionStatus,
    &cancel_decommission::CancelDecommission,
    &drop_node::DropNode,
    &wait::Wait,
    &remote_command::RemoteCommand,
    &server_info::ServerInfo,
    &meta::MetaVerb,
    &server_stat::ServerStat,
    &app_stat::AppStat,
    &local::Local,
    &sleep::Sleep,
    &use_app::Use,
    &timeout::Timeout,
    &set::Set,
    &get::Get,
    &exist::Exist,
    &ttl::Ttl,
    &incr::Incr,
    &check_and_set::CheckAndSet,
    &del::Del,
    &multi_set::MultiSet,
    &multi_get::MultiGet,
    &multi_del::MultiDel,
    &hash_scan::HashScan,
    &full_scan::FullScan,
    &count_data::CountData,
];

/// The output flags most listing verbs share: `-j` and `-o FILE`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Print JSON (typed values, documented shape) instead of tables.
    #[arg(short = 'j', long = "json")]
    pub json: bool,
    /// Write the output to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl OutputArgs {
    /// Prints `report` as these flags ask: text or JSON, to stdout or to the file.
    pub fn emit(&self, ctx: &mut Context, report: &Report) -> Result<Flow, ShellError> {
        ctx.emit(report, self.json, self.output.as_deref())?;
        Ok(Flow::Continue)
    }
}

/// Ends a report with `[stale_read]` when a follower answered from its own copy of the
/// state (`--stale-ok`): who answered, as of which log index, the leader it knows, and
/// that liveness is unknown there.
pub fn mark_stale(report: Report, stale: Option<&crate::pb::StaleRead>) -> Report {
    let Some(stale) = stale else {
        return report;
    };
    report.pairs(
        "stale_read",
        vec![
            ("member_id", Cell::num(stale.member_id as i64)),
            ("applied_index", Cell::num(stale.applied_index as i64)),
            (
                "leader",
                Cell::opt((!stale.leader.is_empty()).then(|| stale.leader.clone())),
            ),
            ("liveness", Cell::unknown()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::registry::command;
    use std::collections::BTreeSet;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = BTreeSet::new();
        for verb in VERBS {
            for name in std::iter::once(verb.name()).chain(verb.aliases().iter().copied()) {
                assert!(seen.insert(name), "'{name}' is registered twice");
            }
        }
    }

    #[test]
    fn every_verb_has_an_about_and_a_page_that_names_it() {
        for verb in VERBS {
            assert!(!verb.about().is_empty(), "{} has no about", verb.name());
            let page = verb.page();
            assert!(
                page.starts_with(&format!("# {}", verb.name())),
                "{}'s page title",
                verb.name()
            );
            assert!(
                page.contains("## Synopsis"),
                "{}'s page has no synopsis",
                verb.name()
            );
            assert!(
                page.contains("## Examples"),
                "{}'s page has no examples",
                verb.name()
            );
            command(*verb).debug_assert();
        }
    }

    #[test]
    fn every_page_has_a_verb() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("commands");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                VERBS.iter().any(|v| v.name() == stem),
                "commands/{stem}.md has no verb"
            );
        }
    }
}
