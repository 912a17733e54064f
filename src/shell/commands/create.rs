//! `create NAME [-p N] [-r N] [-f] [-e k=v,...]`: creates a table; the meta server places
//! every partition's replicas on distinct ALIVE nodes at once, so the table is ready
//! when the command returns. Without `-f` an existing table counts as success.

use std::collections::HashMap;

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::pb;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `create` verb.
pub struct Create;

#[derive(Args, Debug)]
struct CreateArgs {
    /// The new table's name: letters, digits, '_', '.', ':' and '-'.
    #[arg(value_name = "APP", value_parser = parse_name)]
    name: String,
    /// Number of partitions.
    #[arg(short = 'p', long = "partition_count", value_name = "NUM", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    partition_count: u32,
    /// Replicas per partition.
    #[arg(short = 'r', long = "replica_count", value_name = "NUM", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    replica_count: u32,
    /// Fail if the table already exists.
    #[arg(short = 'f', long = "fail_if_exist")]
    fail_if_exist: bool,
    /// Table environment variables.
    #[arg(short = 'e', long = "envs", value_name = "k1=v1,k2=v2...", value_parser = parse_envs)]
    envs: Option<HashMap<String, String>>,
}

/// Checks a table name on the client side, so that bad names are bad usage (exit 2).
pub fn parse_name(s: &str) -> Result<String, String> {
    crate::model::validate_app_name(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_envs(s: &str) -> Result<HashMap<String, String>, String> {
    s.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("'{kv}' is not key=value")),
        })
        .collect()
}

#[tonic::async_trait]
impl Verb for Create {
    fn name(&self) -> &'static str {
        "create"
    }
    fn about(&self) -> &'static str {
        "Create a table and place its replicas on ALIVE nodes"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/create.md")
    }
    fn args(&self, cmd: Command) -> Command {
        CreateArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = CreateArgs::from_arg_matches(m)?;
        let reply = ctx
            .meta()?
            .create_app(pb::CreateAppRequest {
                app_name: args.name.clone(),
                partition_count: args.partition_count,
                replica_count: args.replica_count,
                fail_if_exist: args.fail_if_exist,
                envs: args.envs.unwrap_or_default(),
            })
            .await?;
        if reply.existed {
            ctx.println(format!(
                "app \"{}\" already exists, app_id = {}",
                args.name, reply.app_id
            ))?;
        } else {
            ctx.println(format!(
                "create app \"{}\" succeed, app_id = {}, partition_count = {}, replica_count = {}",
                args.name, reply.app_id, args.partition_count, args.replica_count
            ))?;
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envs_and_names_are_checked() {
        let envs = parse_envs("a=1,b=x=y").unwrap();
        assert_eq!(envs["b"], "x=y");
        assert!(parse_envs("novalue").is_err());
        assert!(parse_envs("=1").is_err());
        assert!(parse_name("").is_err());
        assert!(parse_name("ok_name").is_ok());
    }
}
