//! A cluster of real server processes for the benchmarks: one meta-server (or a group of
//! them, which can be killed and restarted) and replica servers, spawned from the binaries beside this one, each on a loopback port it chose
//! (`127.0.0.1:0`, read back from its first line). Replica servers can be killed
//! (SIGKILL) and restarted under the same address and data. Everything is killed and
//! reaped on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// One server process.
struct Proc {
    child: Option<Child>,
    addr: String,
    data_dir: PathBuf,
}

/// Meta server timings: short, so failures are noticed within about a second.
pub const BEACON_MS: u64 = 100;
const LEASE_MS: u64 = 800;
const GRACE_MS: u64 = 1000;

/// The processes of one cluster.
pub struct ProcCluster {
    bin_dir: PathBuf,
    root: PathBuf,
    meta: Proc,
    /// The other members when the meta servers are a group (member 1 is `meta`).
    members: Vec<Proc>,
    meta_args: Vec<String>,
    nodes: Vec<Proc>,
}

fn spawn(bin: &Path, args: &[String], log: &Path) -> Result<(Child, String)> {
    let log_file = std::fs::File::create(log)?;
    let mut child = Command::new(bin)
        .args(args)
        .env_remove("BALLAST_META")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(addr) = line.trim().rsplit(' ').next().filter(|a| a.contains(':')) else {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "{} did not start (see {}): {line:?}",
            bin.display(),
            log.display()
        );
    };
    Ok((child, addr.to_string()))
}

impl ProcCluster {
    /// Starts a meta server and `n` replica servers under `root`.
    pub fn start(root: &Path, n: usize, meta_args: &[&str]) -> Result<ProcCluster> {
        ProcCluster::start_group(root, n, 1, meta_args)
    }

    /// Starts `metas` meta servers (more than one: a group, member 1 starting it and the
    /// others joining) and `n` replica servers under `root`.
    pub fn start_group(
        root: &Path,
        n: usize,
        metas: usize,
        meta_args: &[&str],
    ) -> Result<ProcCluster> {
        let exe = std::env::current_exe()?;
        let bin_dir = exe.parent().context("no binary directory")?.to_path_buf();
        let meta_dir = root.join("meta");
        let mut args: Vec<String> = meta_args.iter().map(|s| s.to_string()).collect();
        if metas > 1 {
            args.extend(
                ["--raft-heartbeat-ms", "50", "--raft-election-ms", "300"].map(String::from),
            );
        }
        let member_args = args.clone();
        if metas > 1 {
            args.extend(["--id", "1", "--single"].map(String::from));
        }
        let mut args = ProcCluster::meta_flags(&meta_dir, "127.0.0.1:0", &args)?;
        std::fs::create_dir_all(root)?;
        let (child, addr) = spawn(
            &bin_dir.join("meta-server"),
            &std::mem::take(&mut args),
            &root.join("meta.log"),
        )?;
        let mut cluster = ProcCluster {
            bin_dir,
            root: root.to_path_buf(),
            meta: Proc {
                child: Some(child),
                addr,
                data_dir: meta_dir,
            },
            members: Vec::new(),
            meta_args: member_args,
            nodes: Vec::new(),
        };
        for id in 2..=metas {
            let data_dir = root.join(format!("meta-{id}"));
            let (child, addr) = cluster.spawn_member(id, "127.0.0.1:0", &data_dir)?;
            cluster.members.push(Proc {
                child: Some(child),
                addr,
                data_dir,
            });
        }
        for _ in 0..n {
            cluster.add_node()?;
        }
        Ok(cluster)
    }

    /// The meta server flags: the caller's, then short defaults for those not given.
    fn meta_flags(data_dir: &Path, listen: &str, given: &[String]) -> Result<Vec<String>> {
        let mut args: Vec<String> = [
            "--listen",
            listen,
            "--data-dir",
            data_dir.to_str().context("path")?,
            "--log-level",
            "info",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (flag, value) in [
            ("--beacon-interval-ms", BEACON_MS),
            ("--lease-ms", LEASE_MS),
            ("--grace-ms", GRACE_MS),
            ("--lb-interval-ms", 200),
            ("--action-timeout-ms", 120_000),
        ] {
            // A flag the caller passes overrides the default.
            if !given.iter().any(|g| g == flag) {
                args.push(flag.into());
                args.push(value.to_string());
            }
        }
        args.extend(given.iter().cloned());
        Ok(args)
    }

    /// Spawns group member `id` (2 and up), joining through every other member.
    fn spawn_member(&self, id: usize, listen: &str, data_dir: &Path) -> Result<(Child, String)> {
        let mut given = self.meta_args.clone();
        let join: Vec<String> = self.meta_addrs();
        given.extend([
            "--id".to_string(),
            id.to_string(),
            "--join".into(),
            join.join(","),
        ]);
        let args = ProcCluster::meta_flags(data_dir, listen, &given)?;
        let log = self.root.join(format!("meta-{id}.log"));
        spawn(&self.bin_dir.join("meta-server"), &args, &log)
    }

    /// Every meta server's address (member 1 first).
    pub fn meta_addrs(&self) -> Vec<String> {
        std::iter::once(&self.meta)
            .chain(&self.members)
            .map(|p| p.addr.clone())
            .collect()
    }

    /// Kills (SIGKILL) group member `id` (1 is the first).
    pub fn kill_meta(&mut self, id: usize) -> Result<()> {
        let p = self.member(id)?;
        if let Some(mut child) = p.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Restarts killed group member `id` on its address and data (it does not join again:
    /// the group still holds it).
    pub fn restart_meta(&mut self, id: usize) -> Result<()> {
        let (addr, data_dir) = {
            let p = self.member(id)?;
            (p.addr.clone(), p.data_dir.clone())
        };
        let mut given = self.meta_args.clone();
        let others: Vec<String> = self
            .meta_addrs()
            .into_iter()
            .filter(|a| *a != addr)
            .collect();
        given.extend([
            "--id".to_string(),
            id.to_string(),
            "--join".into(),
            others.join(","),
        ]);
        let args = ProcCluster::meta_flags(&data_dir, &addr, &given)?;
        let log = self.root.join(format!("meta-{id}.restart.log"));
        let (child, _) = spawn(&self.bin_dir.join("meta-server"), &args, &log)?;
        self.member(id)?.child = Some(child);
        Ok(())
    }

    /// Group members running now, by id.
    pub fn metas_running(&self) -> Vec<usize> {
        std::iter::once(&self.meta)
            .chain(&self.members)
            .enumerate()
            .filter(|(_, p)| p.child.is_some())
            .map(|(i, _)| i + 1)
            .collect()
    }

    fn member(&mut self, id: usize) -> Result<&mut Proc> {
        match id {
            1 => Ok(&mut self.meta),
            _ => self.members.get_mut(id - 2).context("no such meta server"),
        }
    }

    /// The (first) meta server's process id, while it runs.
    pub fn meta_pid(&self) -> Option<u32> {
        self.meta.child.as_ref().map(Child::id)
    }

    /// A replica server's process id, while it runs.
    pub fn node_pid(&self, addr: &str) -> Option<u32> {
        let node = self.nodes.iter().find(|n| n.addr == addr)?;
        node.child.as_ref().map(Child::id)
    }

    /// Replica server `addr`'s data directory (running or not).
    pub fn node_dir(&self, addr: &str) -> Option<PathBuf> {
        let node = self.nodes.iter().find(|n| n.addr == addr)?;
        Some(node.data_dir.clone())
    }

    /// Every replica server's data directory (running or not).
    pub fn node_dirs(&self) -> Vec<PathBuf> {
        self.nodes.iter().map(|n| n.data_dir.clone()).collect()
    }

    /// The meta server's address.
    pub fn meta_addr(&self) -> &str {
        &self.meta.addr
    }

    /// Addresses of the replica servers that run now.
    pub fn running(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.addr.clone())
            .collect()
    }

    fn spawn_replica(&self, listen: &str, data_dir: &Path, log: &Path) -> Result<(Child, String)> {
        let args: Vec<String> = [
            "--listen",
            listen,
            "--meta",
            &self.meta_addrs().join(","),
            "--data-dir",
            data_dir.to_str().context("path")?,
            "--beacon-interval-ms",
            &BEACON_MS.to_string(),
            "--log-level",
            "info",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        spawn(&self.bin_dir.join("replica-server"), &args, log)
    }

    /// Starts one more replica server; returns its address.
    pub fn add_node(&mut self) -> Result<String> {
        let i = self.nodes.len() + 1;
        let data_dir = self.root.join(format!("replica-{i}"));
        let log = self.root.join(format!("replica-{i}.log"));
        let (child, addr) = self.spawn_replica("127.0.0.1:0", &data_dir, &log)?;
        self.nodes.push(Proc {
            child: Some(child),
            addr: addr.clone(),
            data_dir,
        });
        Ok(addr)
    }

    fn node(&mut self, addr: &str) -> Result<&mut Proc> {
        self.nodes
            .iter_mut()
            .find(|n| n.addr == addr)
            .with_context(|| format!("{addr} is not a node of this cluster"))
    }

    /// Kills (SIGKILL) a replica server and reaps it.
    pub fn kill(&mut self, addr: &str) -> Result<()> {
        let node = self.node(addr)?;
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Stops a replica server the planned way (SIGTERM) and waits for it to exit.
    pub fn terminate(&mut self, addr: &str) -> Result<()> {
        let node = self.node(addr)?;
        let Some(mut child) = node.child.take() else {
            bail!("{addr} is not running");
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed for {addr}");
        }
        child.wait()?;
        Ok(())
    }

    /// Deletes a killed replica server's data directory (a replaced disk, an unmounted
    /// volume, an `rm -rf` of the wrong node).
    pub fn wipe(&mut self, addr: &str) -> Result<()> {
        let node = self.node(addr)?;
        if node.child.is_some() {
            bail!("{addr} is running");
        }
        std::fs::remove_dir_all(&node.data_dir)
            .with_context(|| format!("wiping {}", node.data_dir.display()))
    }

    /// Restarts a killed replica server on its address and data.
    pub fn restart(&mut self, addr: &str) -> Result<()> {
        let (data_dir, log) = {
            let node = self.node(addr)?;
            if node.child.is_some() {
                bail!("{addr} is running");
            }
            let log = node.data_dir.with_extension("restart.log");
            (node.data_dir.clone(), log)
        };
        // The port was just released; binding it again may need a moment.
        let mut last = None;
        for _ in 0..50 {
            match self.spawn_replica(addr, &data_dir, &log) {
                Ok((child, _)) => {
                    self.node(addr)?.child = Some(child);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.expect("tried"))
    }
}

impl ProcCluster {
    /// The servers whose process has exited, by address (the meta server's first).
    pub fn exited(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for p in std::iter::once(&mut self.meta).chain(self.nodes.iter_mut()) {
            if let Some(child) = p.child.as_mut()
                && !matches!(child.try_wait(), Ok(None))
            {
                out.push(p.addr.clone());
            }
        }
        out
    }

    /// The servers' log files.
    pub fn logs(&self) -> Vec<PathBuf> {
        let mut logs = vec![self.root.join("meta.log")];
        logs.extend((1..=self.nodes.len()).map(|i| self.root.join(format!("replica-{i}.log"))));
        logs
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for p in self
            .nodes
            .iter_mut()
            .chain(std::iter::once(&mut self.meta))
            .chain(self.members.iter_mut())
        {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
