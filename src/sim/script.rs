//! Scenario scripts for the simulation, as golden transcripts (toydb's testscripts): a
//! header (`# nodes: 3`, `# partitions: 1`, `# seed: 7`) and `> command` lines, each
//! followed by what it printed. [`run_script`] replays the commands and returns the
//! transcript; a test compares it with the file.
//!
//! Commands (nodes are `n1`, `n2`, …; keys are clients' keys `cIkJ`):
//! `write KEY`, `read KEY`, `run MS`, `wait-healthy [MS]`, `crash NODE`,
//! `restart NODE`, `wipe NODE` (crash and delete its data; `restart` brings it back
//! empty), `kill NODE` (replica.kill_partition of every replica it holds), `cut A B`,
//! `heal`, `stall NODE MS`, `fail-sync NODE`, `move PIDX NODE`, `meta down|up`,
//! `meta-store fail|ok`, `force PIDX NODE`, `status`, `ddd`, `check`, `verify`.

use crate::model::Gpid;
use crate::replica::core::Input;
use crate::sim::client::version_of;
use crate::sim::{Sim, SimConfig};

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
        let words: Vec<String> = line
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| {
                let takes_node = matches!(
                    (words_first(line), i),
                    (
                        "crash" | "restart" | "wipe" | "kill" | "stall" | "fail-sync",
                        1
                    ) | ("cut", 1 | 2)
                        | ("move" | "force", 2)
                );
                if takes_node {
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
                self.net.cut(arg(1), arg(2));
                String::new()
            }
            "heal" => {
                self.net.heal();
                String::new()
            }
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
            "move" => self.script_move(num(1, 0) as u32, arg(2)),
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
                self.meta
                    .store
                    .failing
                    .store(failing, std::sync::atomic::Ordering::Relaxed);
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

    fn script_move(&mut self, pidx: u32, to: &str) -> String {
        let gpid = Gpid::new(self.app_id, pidx);
        let now = self.meta.at(self.now);
        let Ok(config) = self.meta.state.partition(gpid).cloned() else {
            return format!("no partition {gpid}");
        };
        let Some(from) = config.primary else {
            return format!("{gpid} has no primary");
        };
        let action = crate::meta::snapshot::Action::MovePrimary {
            gpid,
            from,
            to: to.to_string(),
        };
        match self.meta.state.propose(action.clone(), true, now) {
            Ok(_) => format!("proposed {action}"),
            Err(e) => format!("error: {e}"),
        }
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
