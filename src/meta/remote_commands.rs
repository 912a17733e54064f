//! The meta server's remote commands, with Pegasus's names and signatures: no argument
//! queries, `DEFAULT` restores the configured value, and a bad argument is an error reply
//! that changes nothing.

use serde_json::{Value, json};

use crate::meta::Meta;
use crate::meta::state::Settings;
use crate::model::validate_address;
use crate::remote::{
    CommandResult, Registry, RemoteCommand, SetterArg, bool_setter_arg, int_setter_arg,
};

/// The meta server's command registry.
pub static META_COMMANDS: Registry<Meta> = Registry::new(&[
    RemoteCommand {
        name: "server-info",
        args: "",
        help: "version, role, address and start time of this process",
        run: server_info,
    },
    RemoteCommand {
        name: "meta.live_percentage",
        args: "[num|DEFAULT]",
        help: "node_live_percentage_threshold_for_update: auto-freeze below this % ALIVE",
        run: live_percentage,
    },
    RemoteCommand {
        name: "meta.lb.assign_delay_ms",
        args: "[num|DEFAULT]",
        help: "replica_assign_delay_ms_for_dropouts: wait this long for a dropped secondary",
        run: assign_delay_ms,
    },
    RemoteCommand {
        name: "meta.lb.assign_secondary_black_list",
        args: "[host:port,host:port...|clear]",
        help: "nodes that never receive new replicas; a drop from them is an emergency",
        run: assign_secondary_black_list,
    },
    RemoteCommand {
        name: "meta.lb.add_secondary_max_count_for_one_node",
        args: "[num|DEFAULT]",
        help: "at most this many new secondaries per node per round (DEFAULT: no limit)",
        run: add_secondary_max_count,
    },
    RemoteCommand {
        name: "meta.lb.only_move_primary",
        args: "[true|false]",
        help: "the balancer only moves primaries (never copies data)",
        run: only_move_primary,
    },
    RemoteCommand {
        name: "meta.lb.only_primary_balancer",
        args: "[true|false]",
        help: "the balancer only balances primaries",
        run: only_primary_balancer,
    },
    RemoteCommand {
        name: "meta.lb.balancer_in_turn",
        args: "[true|false]",
        help: "the balancer works on one table per round",
        run: balancer_in_turn,
    },
    RemoteCommand {
        name: "meta.lb.ignored_app_list",
        args: "<get|set|clear> [app_id,app_id...]",
        help: "tables the balancer leaves alone",
        run: ignored_app_list,
    },
    RemoteCommand {
        name: "meta.lb.get_balance_operation_count",
        args: "[total|move_pri|copy_pri|copy_sec|detail]",
        help: "what the balancer plans this round (-1 while replica reports are collected)",
        run: get_balance_operation_count,
    },
]);

fn add_secondary_max_count(meta: &Meta, args: &[String]) -> CommandResult {
    const NAME: &str = "add_secondary_max_count_for_one_node";
    let arg = int_setter_arg(args, 0..=u64::from(u32::MAX))?;
    let mut state = meta.lock();
    let slot = &mut state.settings_mut().add_secondary_max_count_for_one_node;
    match arg {
        SetterArg::Query => {}
        SetterArg::Default => *slot = None,
        SetterArg::Set(v) => *slot = Some(v as u32),
    }
    let value = slot.map_or(Value::String("unlimited".into()), Value::from);
    Ok(json!({ "error": "ok", NAME: value }))
}

/// A boolean `meta.lb.*` switch: query, set, or DEFAULT (false).
fn bool_switch(
    meta: &Meta,
    args: &[String],
    name: &str,
    pick: fn(&mut Settings) -> &mut bool,
) -> CommandResult {
    let arg = bool_setter_arg(args)?;
    let mut state = meta.lock();
    let slot = pick(state.settings_mut());
    match arg {
        SetterArg::Query => {}
        SetterArg::Default => *slot = false,
        SetterArg::Set(v) => *slot = v,
    }
    Ok(json!({ "error": "ok", name: *slot }))
}

fn only_move_primary(meta: &Meta, args: &[String]) -> CommandResult {
    bool_switch(meta, args, "only_move_primary", |s| {
        &mut s.only_move_primary
    })
}

fn only_primary_balancer(meta: &Meta, args: &[String]) -> CommandResult {
    bool_switch(meta, args, "only_primary_balancer", |s| {
        &mut s.only_primary_balancer
    })
}

fn balancer_in_turn(meta: &Meta, args: &[String]) -> CommandResult {
    bool_switch(meta, args, "balancer_in_turn", |s| &mut s.balancer_in_turn)
}

fn ignored_app_list(meta: &Meta, args: &[String]) -> CommandResult {
    let new_list: Option<std::collections::BTreeSet<u32>> = match args {
        [] => None,
        [op] if op == "get" => None,
        [op] if op == "clear" => Some(Default::default()),
        [op, ids] if op == "set" => Some(
            ids.split(',')
                .filter(|s| !s.is_empty())
                .map(|id| {
                    id.parse::<u32>()
                        .map_err(|_| format!("invalid argument: '{id}' is not an app id"))
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err("expected get, clear, or set app_id,app_id...".into()),
    };
    let mut state = meta.lock();
    let list = &mut state.settings_mut().ignored_apps;
    if let Some(new_list) = new_list {
        *list = new_list;
    }
    let ids: Vec<String> = list.iter().map(ToString::to_string).collect();
    Ok(json!({ "error": "ok", "ignored_app_list": ids.join(",") }))
}

fn get_balance_operation_count(meta: &Meta, args: &[String]) -> CommandResult {
    let counts = meta.lock().balance_operation_count();
    let field = |f: fn(&crate::meta::balancer::OperationCount) -> u32| {
        counts.as_ref().map_or(-1, |c| i64::from(f(c)))
    };
    let detail = json!({
        "move_pri": field(|c| c.move_pri),
        "copy_pri": field(|c| c.copy_pri),
        "copy_sec": field(|c| c.copy_sec),
        "total": field(|c| c.total()),
    });
    match args.first().map(String::as_str) {
        None | Some("detail") => Ok(json!({ "error": "ok", "balance_operation_count": detail })),
        Some(k @ ("total" | "move_pri" | "copy_pri" | "copy_sec")) => {
            Ok(json!({ "error": "ok", k: detail[k] }))
        }
        Some(other) => Err(format!(
            "invalid argument '{other}': expected total, move_pri, copy_pri, copy_sec or detail"
        )),
    }
}

fn server_info(meta: &Meta, _args: &[String]) -> CommandResult {
    Ok(meta.server_info())
}

fn live_percentage(meta: &Meta, args: &[String]) -> CommandResult {
    const NAME: &str = "node_live_percentage_threshold_for_update";
    let arg = int_setter_arg(args, 0..=100)?;
    let mut state = meta.lock();
    let configured = u64::from(state.config().node_live_percentage_threshold_for_update);
    let s = state.settings_mut();
    Ok(match arg {
        SetterArg::Query => return Ok(json!({ "error": "ok", NAME: s.live_percentage })),
        SetterArg::Default => set_reply(NAME, &mut s.live_percentage, configured as u32),
        SetterArg::Set(v) => set_reply(NAME, &mut s.live_percentage, v as u32),
    })
}

fn assign_delay_ms(meta: &Meta, args: &[String]) -> CommandResult {
    const NAME: &str = "replica_assign_delay_ms_for_dropouts";
    let arg = int_setter_arg(args, 0..=u64::from(u32::MAX) * 1000)?;
    let mut state = meta.lock();
    let configured = state.config().assign_delay.as_millis() as u64;
    let s = state.settings_mut();
    Ok(match arg {
        SetterArg::Query => return Ok(json!({ "error": "ok", NAME: s.assign_delay_ms })),
        SetterArg::Default => set_reply(NAME, &mut s.assign_delay_ms, configured),
        SetterArg::Set(v) => set_reply(NAME, &mut s.assign_delay_ms, v),
    })
}

/// Sets `slot` and replies with the old and new values.
fn set_reply<T: Copy + Into<Value>>(name: &str, slot: &mut T, value: T) -> Value {
    let old = std::mem::replace(slot, value);
    json!({ "error": "ok", name: value.into(), "old": old.into() })
}

fn assign_secondary_black_list(meta: &Meta, args: &[String]) -> CommandResult {
    const NAME: &str = "assign_secondary_black_list";
    let new_list = match args {
        [] => None,
        [a] if a == "clear" => Some(Default::default()),
        [a] => {
            let addrs: std::collections::BTreeSet<String> = a
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            for addr in &addrs {
                validate_address(addr).map_err(|e| format!("invalid argument: {e}"))?;
            }
            if addrs.is_empty() {
                return Err(format!(
                    "invalid argument '{a}': expected host:port,... or clear"
                ));
            }
            Some(addrs)
        }
        _ => {
            return Err(format!(
                "expected one comma-separated list, got {} arguments",
                args.len()
            ));
        }
    };
    let mut state = meta.lock();
    // An address that is not a known node is kept (it may be about to join) but said.
    let unknown: Vec<String> = new_list
        .iter()
        .flatten()
        .filter(|a| !state.knows_node(a))
        .cloned()
        .collect();
    let list = &mut state.settings_mut().black_list;
    if let Some(new_list) = new_list {
        *list = new_list;
    }
    let joined = list.iter().cloned().collect::<Vec<_>>().join(",");
    if unknown.is_empty() {
        return Ok(json!({ "error": "ok", NAME: joined }));
    }
    let warning = format!("not a known node: {}", unknown.join(","));
    Ok(json!({ "error": "ok", NAME: joined, "warning": warning }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::config::MetaConfig;
    use crate::meta::store::MemStore;

    fn meta() -> Meta {
        Meta::new(
            MetaConfig::fast(),
            Box::new(MemStore::new()),
            "127.0.0.1:34601".into(),
        )
        .unwrap()
    }

    fn call(meta: &Meta, cmd: &str, args: &[&str]) -> (bool, Value) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        META_COMMANDS.call(meta, cmd, &args)
    }

    #[test]
    fn live_percentage_query_set_default_refuse() {
        let m = meta();
        assert_eq!(
            call(&m, "meta.live_percentage", &[]).1["node_live_percentage_threshold_for_update"],
            65
        );
        let (ok, reply) = call(&m, "meta.live_percentage", &["0"]);
        assert!(ok);
        assert_eq!(
            (
                reply["old"].as_u64(),
                reply["node_live_percentage_threshold_for_update"].as_u64()
            ),
            (Some(65), Some(0))
        );
        assert!(!call(&m, "meta.live_percentage", &["101"]).0);
        assert!(!call(&m, "meta.live_percentage", &["x"]).0);
        assert_eq!(
            m.lock().settings().live_percentage,
            0,
            "refused arguments change nothing"
        );
        assert!(call(&m, "meta.live_percentage", &["DEFAULT"]).0);
        assert_eq!(m.lock().settings().live_percentage, 65);
    }

    #[test]
    fn assign_delay_and_black_list() {
        let m = meta();
        assert!(call(&m, "meta.lb.assign_delay_ms", &["10"]).0);
        assert_eq!(m.lock().settings().assign_delay_ms, 10);
        assert!(call(&m, "meta.lb.assign_delay_ms", &["DEFAULT"]).0);
        assert_eq!(m.lock().settings().assign_delay_ms, 600_000);
        let (ok, reply) = call(
            &m,
            "meta.lb.assign_secondary_black_list",
            &["127.0.0.1:34802,127.0.0.1:34801"],
        );
        assert!(ok);
        assert_eq!(
            reply["assign_secondary_black_list"],
            "127.0.0.1:34801,127.0.0.1:34802"
        );
        let (ok, reply) = call(&m, "meta.lb.assign_secondary_black_list", &["nonsense"]);
        assert!(!ok, "{reply}");
        assert_eq!(
            m.lock().settings().black_list.len(),
            2,
            "a bad list changes nothing"
        );
        assert!(call(&m, "meta.lb.assign_secondary_black_list", &["clear"]).0);
        assert!(m.lock().settings().black_list.is_empty());
    }

    #[test]
    fn balancer_switches_and_lists() {
        let m = meta();
        assert_eq!(
            call(&m, "meta.lb.only_move_primary", &["true"]).1["only_move_primary"],
            true
        );
        assert!(m.lock().settings().only_move_primary);
        assert!(!call(&m, "meta.lb.only_move_primary", &["yes"]).0);
        assert!(call(&m, "meta.lb.only_move_primary", &["DEFAULT"]).0);
        assert!(!m.lock().settings().only_move_primary);
        assert!(call(&m, "meta.lb.ignored_app_list", &["set", "3,1"]).0);
        assert_eq!(
            call(&m, "meta.lb.ignored_app_list", &["get"]).1["ignored_app_list"],
            "1,3"
        );
        assert!(!call(&m, "meta.lb.ignored_app_list", &["set", "x"]).0);
        assert_eq!(
            m.lock().settings().ignored_apps.len(),
            2,
            "a bad list changes nothing"
        );
        assert!(call(&m, "meta.lb.add_secondary_max_count_for_one_node", &["2"]).0);
        assert_eq!(
            m.lock().settings().add_secondary_max_count_for_one_node,
            Some(2)
        );
        let (ok, count) = call(&m, "meta.lb.get_balance_operation_count", &["total"]);
        assert!(ok);
        assert_eq!(count["total"], -1, "no round yet: still collecting");
    }

    #[test]
    fn server_info_and_help() {
        let m = meta();
        let (ok, info) = call(&m, "server-info", &[]);
        assert!(ok);
        assert_eq!(info["role"], "meta-server");
        let (ok, help) = call(&m, "help", &[]);
        assert!(ok);
        assert_eq!(help["commands"].as_array().unwrap().len(), 10);
    }
}
