//! Scenario scripts for the simulation, as golden transcripts (toydb's testscripts): a
//! header (`# nodes: 3`, `# partitions: 1`, `# seed: 7`) and `> command` lines, each
//! followed by what it printed. [`run_script`] replays the commands and returns the
//! transcript; a test compares it with the file.
//!
//! Commands (nodes are `n1`, `n2`, …; keys are clients' keys `cIkJ`):
//! `write KEY`, `read KEY`, `run MS`, `wait-healthy [MS]`, `crash NODE`,
//! `restart NODE`, `wipe NODE` (crash and delete its data; `restart` brings it back
//! empty), `kill NODE` (replica.kill_partition of every replica it holds), `cut A B`,
//! `block FROM TO KIND` (lose that kind of message on that link, e.g. `Answer`),
//! `heal` (every link and block), `stall NODE MS`, `fail-sync NODE`,
//! `move PIDX NODE` / `copy-primary PIDX NODE` / `copy-secondary PIDX FROM TO`,
//! `meta down|up`, `meta-store fail|ok`, `actions`, `force PIDX NODE`,
//! `read-via NODE KEY` (a client with a stale route), `status`, `ddd`, `check`,
//! `verify`.

use crate::model::Gpid;
use crate::replica::core::Input;
use crate::sim::client::version_of;
use crate::sim::{Sim, SimConfig};

/// Which arguments of a command name nodes (`n1` stands for `n1:1`).
fn node_args(command: &str) -> &'static [usize] {
    match command {
        "crash" | "restart" | "wipe" | "kill" | "stall" | "fail-sync" | "read-via" => &[1],
        "cut" | "block" => &[1, 2],
        "move" | "force" | "copy-primary" => &[2],
        "copy-secondary" => &[2, 3],
        _ => &[],
    }
}

fn words_first(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

/// Replays a script's commands; returns the transcript (header, commands, output).
pub fn run_script(script: &str) -> String {
    let header: Vec<&str> = script.lines().take_while(|l| l.starts_with('#')).collect();
    let value = |name: &str, default: u64| {
        header
            .iter()
            .find_map(|l| l.strip_prefix(&format!("# {name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    let cfg = SimConfig {
        nodes: value("nodes", 3) as usize,
        partitions: value("partitions", 1) as u32,
        replicas: value("replicas", 3) as u32,
        clients: 2,
        keys_per_client: 4,
    };
    let mut sim = Sim::new(cfg, value("seed", 1));
    for c in &mut sim.clients {
        c.active = false;
    }
    let mut out = header.join("\n");
    out.push('\n');
    for command in script.lines().filter_map(|l| l.strip_prefix("> ")) {
        out.push_str(&format!("\n> {command}\n"));
        let printed = sim.command(command);
        for line in printed.lines() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

impl Sim {
    /// Runs one script command; returns what it prints.
    pub fn command(&mut self, line: &str) -> String {
        let command = words_first(line);
        let words: Vec<String> = line
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| {
                if node_args(command).contains(&i) {
                    super::node_name(w)
                } else {
                    w.to_string()
                }
            })
            .collect();
        let arg = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        let num = |i: usize, default: u64| arg(i).parse().unwrap_or(default);
        match arg(0) {
            "write" => self.script_write(arg(1)),
            "read" => self.script_read(arg(1)),
            "run" => {
                self.run_for(num(1, 1000));
                String::new()
            }
            "wait-healthy" => {
                let ms = num(1, 30_000);
                if self.run_until(ms, Sim::healthy) {
                    "healthy".into()
                } else {
                    format!("not healthy after {ms} ms")
                }
            }
            "crash" => {
                self.crash(arg(1));
                String::new()
            }
            "restart" => {
                self.restart(arg(1), false);
                String::new()
            }
            "wipe" => {
                self.wipe(arg(1));
                String::new()
            }
            "kill" => {
                let node = arg(1).to_string();
                let gpids: Vec<Gpid> = self
                    .nodes
                    .get(&node)
                    .map(|n| n.replicas.keys().copied().collect())
                    .unwrap_or_default();
                for g in gpids {
                    self.step_core(&node, g, Input::Kill);
                }
                String::new()
            }
            "cut" => {
                let name = |n: &str| n.replace("meta:1", "meta");
                self.net.cut(&name(arg(1)), &name(arg(2)));
                String::new()
            }
            "block" => {
                let name = |n: &str| n.replace("meta:1", "meta");
                self.net.block(&name(arg(1)), &name(arg(2)), arg(3));
                String::new()
            }
            "heal" => {
                self.net.heal();
                String::new()
            }
            "read-via" => self.script_read_via(arg(1), arg(2)),
            "actions" => format!("actions in flight: {}", self.meta.state.actions_in_flight()),
            "copy-primary" => self.script_action(num(1, 0) as u32, "copy_pri", "", arg(2)),
            "copy-secondary" => self.script_action(num(1, 0) as u32, "copy_sec", arg(2), arg(3)),
            "stall" => {
                let until = self.now + num(2, 1000);
                if let Some(n) = self.nodes.get_mut(arg(1)) {
                    for r in n.replicas.values_mut() {
                        r.stall_until = until;
                    }
                }
                String::new()
            }
            "fail-sync" => {
                if let Some(n) = self.nodes.get_mut(arg(1)) {
                    for r in n.replicas.values_mut() {
                        r.fail_sync = true;
                    }
                }
                String::new()
            }
            "move" => self.script_action(num(1, 0) as u32, "move_pri", "", arg(2)),
            "meta" => {
                match arg(1) {
                    "down" => self.meta.up = false,
                    _ => {
                        let now = self.now;
                        self.meta.restart(now);
                    }
                }
                String::new()
            }
            "meta-store" => {
                let failing = arg(1) == "fail";
                self.meta.store.fail(failing);
                String::new()
            }
            "force" => {
                let gpid = Gpid::new(self.app_id, num(1, 0) as u32);
                let now = self.meta.at(self.now);
                match self.meta.state.force_primary(gpid, arg(2), now) {
                    Ok(lost) => lost,
                    Err(e) => format!("error: {e}"),
                }
            }
            "status" => self.describe(),
            "ddd" => self.script_ddd(),
            "check" => match self.violations.as_slice() {
                [] => "ok".into(),
                v => v.join("\n"),
            },
            "verify" => {
                self.finish();
                match self.violations.as_slice() {
                    [] => "ok: every acknowledged write is on every replica".into(),
                    v => v.join("\n"),
                }
            }
            other => format!("unknown command {other:?}"),
        }
    }

    fn client_of(&self, key: &str) -> Option<(usize, usize)> {
        self.clients.iter().enumerate().find_map(|(c, client)| {
            let k = client.keys.iter().position(|k| k == key.as_bytes())?;
            Some((c, k))
        })
    }

    fn wait_op(&mut self, c: usize) -> bool {
        self.run_until(30_000, |s| s.clients[c].op.is_none())
    }

    fn script_write(&mut self, key: &str) -> String {
        let Some((c, k)) = self.client_of(key) else {
            return format!("no client writes {key}");
        };
        self.begin_write(c, k);
        let version = self.clients[c].versions[k];
        if !self.wait_op(c) {
            return format!("{key} = v{version}: no answer within 30 s");
        }
        let acked = self.history.acked_by(key.as_bytes(), self.now);
        if acked >= version {
            format!("{key} = v{version} acknowledged")
        } else {
            format!("{key} = v{version} given up")
        }
    }

    fn script_read(&mut self, key: &str) -> String {
        let Some((c, _)) = self.client_of(key) else {
            return format!("no client reads {key}");
        };
        self.begin_read(c, key.as_bytes().to_vec());
        let before = self.history.reads;
        let id = self.clients[c].op.as_ref().map(|o| o.id);
        self.last_read = None;
        if !self.wait_op(c) {
            return format!("{key}: no answer within 30 s");
        }
        match (&self.last_read, self.history.reads > before) {
            (Some((op, value)), true) if Some(*op) == id => match value {
                Some(v) => format!("{key} = v{}", version_of(v).unwrap_or(0)),
                None => format!("{key} not found"),
            },
            _ => format!(
                "{key}: read failed ({})",
                self.last_error.clone().unwrap_or_default()
            ),
        }
    }

    /// Proposes a balancer action (`move_pri`, `copy_pri` from the primary; `copy_sec`
    /// from `from`) on partition `pidx`, carried out at once.
    fn script_action(&mut self, pidx: u32, kind: &str, from: &str, to: &str) -> String {
        let gpid = Gpid::new(self.app_id, pidx);
        let now = self.meta.at(self.now);
        let Ok(config) = self.meta.state.partition(gpid).cloned() else {
            return format!("no partition {gpid}");
        };
        let Some(primary) = config.primary.clone() else {
            return format!("{gpid} has no primary");
        };
        let from = if from.is_empty() {
            primary
        } else {
            from.to_string()
        };
        let action = match crate::meta::proposal::proposal_action(kind, gpid, &from, to, &config) {
            Ok(a) => a,
            Err(e) => return format!("error: {e}"),
        };
        match self.meta.state.propose(action.clone(), true, now) {
            Ok(_) => format!("proposed {action}"),
            Err(e) => format!("error: {e}"),
        }
    }

    /// Reads `key` directly from `node`, as a client whose route still names it.
    fn script_read_via(&mut self, node: &str, key: &str) -> String {
        let gpid = self.gpid_of(key.as_bytes());
        let Some(n) = self.nodes.get(node).filter(|n| n.up) else {
            return format!("{node} is down");
        };
        let lease = self.now < n.lease_until;
        let Some(r) = n.replicas.get(&gpid) else {
            return format!("{node} holds no replica of {gpid}");
        };
        if !lease {
            return format!("{node} refuses: its lease ran out");
        }
        if !r.core.serving() {
            return format!("{node} refuses: not the serving primary of {gpid}");
        }
        let value = r
            .disk
            .volatile
            .records
            .get(&crate::sim::client::store_key(key.as_bytes()))
            .and_then(|v| version_of(v))
            .unwrap_or(0);
        let now = self.now;
        if let Err(v) = self.history.check_read(key.as_bytes(), value, now, now) {
            self.violation(v);
        }
        format!("{node} serves {key} = v{value}")
    }

    fn script_ddd(&mut self) -> String {
        let now = self.meta.at(self.now);
        let parts = self.meta.state.ddd_partitions(now);
        if parts.is_empty() {
            return "no partition lost every replica".into();
        }
        let mut out = Vec::new();
        for p in parts {
            out.push(format!("{} ballot {}: {}", p.gpid, p.ballot, p.decision));
            for m in p.members {
                let report = m.report.map_or("holds nothing".to_string(), |r| {
                    format!(
                        "{} ballot {} committed {} prepared {}",
                        r.data.name(),
                        r.ballot,
                        r.committed,
                        r.prepared
                    )
                });
                out.push(format!(
                    "  {} {}: {report}",
                    m.node,
                    if m.alive { "ALIVE" } else { "UNALIVE" }
                ));
            }
        }
        out.join("\n")
    }
}
