//! `check_and_set HASH_KEY -t CHECK_TYPE [-c SORT_KEY] [-o OPERAND] [-s SORT_KEY] -v VALUE
//! [-l TTL] [-r] [-j]`: Pegasus's compare-and-set within one hash key. If the record at
//! the check sort key passes the check, the record at the set sort key is set — both in
//! one atomic step on every replica. Retried under one request id, so applied once.

use clap::builder::PossibleValuesParser;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::json;

use crate::atomic::{CHECK_TYPES, check_type, is_int_check, parse_int};
use crate::error::Error;
use crate::pb;
use crate::pb::atomic::Op;
use crate::pb::atomic_result::Outcome;
use crate::shell::bytes::{arg_bytes, escape, json_text};
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `check_and_set` verb.
pub struct CheckAndSet;

#[derive(Args, Debug)]
struct CasArgs {
    /// The hash key (both records are under it).
    #[arg(value_name = "HASH_KEY")]
    hash_key: String,
    /// The sort key of the record checked.
    #[arg(
        short = 'c',
        long = "check_sort_key",
        value_name = "SORT_KEY",
        default_value = ""
    )]
    check_sort_key: String,
    /// The check (Pegasus's check types).
    #[arg(short = 't', long = "check_type", value_name = "TYPE", required = true,
          hide_possible_values = true, value_parser = PossibleValuesParser::new(CHECK_TYPES))]
    check_type: String,
    /// The operand of the check (an integer for the int_ checks).
    #[arg(
        short = 'o',
        long = "check_operand",
        value_name = "OPERAND",
        default_value = "",
        allow_hyphen_values = true
    )]
    check_operand: String,
    /// The sort key of the record set (default: the checked one).
    #[arg(short = 's', long = "set_sort_key", value_name = "SORT_KEY")]
    set_sort_key: Option<String>,
    /// The value set.
    #[arg(
        short = 'v',
        long = "set_value",
        value_name = "VALUE",
        required = true,
        allow_hyphen_values = true
    )]
    set_value: String,
    /// The TTL of the value set, in seconds (0 = never).
    #[arg(
        short = 'l',
        long = "set_value_ttl_seconds",
        value_name = "SECONDS",
        default_value_t = 0
    )]
    ttl: u32,
    /// Also print the checked record's value.
    #[arg(short = 'r', long = "return_check_value")]
    return_check_value: bool,
    /// Print JSON: {"set_succeed", "check_value_returned", "check_value_exist",
    /// "check_value"}.
    #[arg(short = 'j', long = "json")]
    json: bool,
}

/// The lines Pegasus's shell prints for an outcome.
fn text(out: &pb::CheckAndSetResult) -> String {
    let mut s = String::from(if out.set_succeed {
        "Set succeed."
    } else {
        "Set failed, because check not passed."
    });
    if out.check_value_returned {
        s.push_str("\n\n");
        if out.check_value_exist {
            s.push_str(&format!("Check value: {}", escape(&out.check_value)));
        } else {
            s.push_str("Check value not exist.");
        }
    }
    s
}

fn to_json(out: &pb::CheckAndSetResult) -> serde_json::Value {
    let value =
        (out.check_value_returned && out.check_value_exist).then(|| json_text(&out.check_value));
    json!({
        "set_succeed": out.set_succeed,
        "check_value_returned": out.check_value_returned,
        "check_value_exist": out.check_value_returned && out.check_value_exist,
        "check_value": value,
    })
}

#[tonic::async_trait]
impl Verb for CheckAndSet {
    fn name(&self) -> &'static str {
        "check_and_set"
    }
    fn about(&self) -> &'static str {
        "Set a record if another (or the same) passes a check, atomically"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/check_and_set.md")
    }
    fn args(&self, cmd: Command) -> Command {
        CasArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = CasArgs::from_arg_matches(m)?;
        let kind = check_type(&args.check_type).expect("clap checked the name");
        let operand = arg_bytes(&args.check_operand);
        if is_int_check(kind) && (operand.is_empty() || parse_int(&operand).is_none()) {
            return Err(ShellError::Usage(format!(
                "check type {} needs an integer operand (-o), not {}",
                args.check_type,
                escape(&operand)
            )));
        }
        let app = ctx.app()?;
        let check_sort_key = arg_bytes(&args.check_sort_key);
        let set_sort_key = args
            .set_sort_key
            .as_deref()
            .map_or_else(|| check_sort_key.clone(), arg_bytes);
        let cas = pb::CheckAndSet {
            check_sort_key,
            check_type: kind,
            check_operand: operand,
            set_sort_key,
            set_value: arg_bytes(&args.set_value),
            set_ttl_seconds: args.ttl,
            return_check_value: args.return_check_value,
        };
        let hash_key = arg_bytes(&args.hash_key);
        let outcome = ctx
            .data()?
            .atomic(&app, &hash_key, b"", Op::CheckAndSet(cas))
            .await?;
        let Outcome::CheckAndSet(out) = outcome else {
            return Err(Error::Internal(format!("check_and_set answered with {outcome:?}")).into());
        };
        if args.json {
            ctx.print_json(&to_json(&out))?;
        } else {
            ctx.println(text(&out))?;
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_pegasus_does() {
        let mut out = pb::CheckAndSetResult {
            set_succeed: true,
            ..Default::default()
        };
        assert_eq!(text(&out), "Set succeed.");
        out.set_succeed = false;
        out.check_value_returned = true;
        assert_eq!(
            text(&out),
            "Set failed, because check not passed.\n\nCheck value not exist."
        );
        out.check_value_exist = true;
        out.check_value = b"v\xff".to_vec();
        assert!(text(&out).ends_with("Check value: \"v\\xFF\""));
        assert_eq!(to_json(&out)["check_value"], json!("v\\xFF"));
        out.check_value_returned = false;
        assert_eq!(to_json(&out)["check_value"], json!(null));
    }
}
