//! `ttl HASH_KEY SORT_KEY`: the seconds a record of the table in use has left, or
//! `Infinite` if it never expires (`Not found` if absent or expired), as Pegasus prints.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::shell::bytes::arg_bytes;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};
use crate::timeutil::now_ms;

/// The `ttl` verb.
pub struct Ttl;

#[derive(Args, Debug)]
struct TtlArgs {
    /// The hash key.
    #[arg(value_name = "HASH_KEY")]
    hash_key: String,
    /// The sort key.
    #[arg(value_name = "SORT_KEY")]
    sort_key: String,
    /// Print JSON: {"found": bool, "ttl_seconds": N or null (never expires)}.
    #[arg(short = 'j', long = "json")]
    json: bool,
}

/// What `ttl` prints for a record expiring at `expire_ts` (Unix seconds, 0 = never),
/// read at `now_ms`.
fn ttl_line(expire_ts: u32, now_ms: u64) -> String {
    if expire_ts == 0 {
        return "Infinite".into();
    }
    ((u64::from(expire_ts) * 1000).saturating_sub(now_ms) / 1000).to_string()
}

#[tonic::async_trait]
impl Verb for Ttl {
    fn name(&self) -> &'static str {
        "ttl"
    }
    fn reads_only(&self) -> bool {
        true
    }
    fn about(&self) -> &'static str {
        "Seconds a record has left, or Infinite"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/ttl.md")
    }
    fn args(&self, cmd: Command) -> Command {
        TtlArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = TtlArgs::from_arg_matches(m)?;
        let app = ctx.app()?;
        let found = ctx
            .data()?
            .get(
                &app,
                &arg_bytes(&args.hash_key),
                &[arg_bytes(&args.sort_key)],
            )
            .await?;
        let line = found.first().map(|r| ttl_line(r.expire_ts, now_ms()));
        if args.json {
            let seconds = line.as_deref().and_then(|l| l.parse::<u64>().ok());
            ctx.print_json(
                &serde_json::json!({ "found": line.is_some(), "ttl_seconds": seconds }),
            )?;
        } else {
            ctx.println(line.as_deref().unwrap_or("Not found"))?;
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_left_or_infinite() {
        assert_eq!(ttl_line(0, 5_000), "Infinite");
        assert_eq!(ttl_line(100, 40_500), "59", "whole seconds left");
        assert_eq!(ttl_line(100, 40_000), "60");
        assert_eq!(ttl_line(100, 200_000), "0");
    }
}
