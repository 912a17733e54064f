//! The shell's session: where the cluster is (connected lazily, so `help`, `version` and
//! `exit` work with no cluster), where output goes, whether to colour it, and the
//! embedded cluster when the shell runs one.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use crate::client::{DataClient, MetaClient};
use crate::error::Error;
use crate::shell::error::ShellError;
use crate::shell::output::Report;

/// A forked session's output, kept in memory.
pub type OutputBuffer = Arc<std::sync::Mutex<Vec<u8>>>;

/// Output kept in memory (a forked session's).
struct SharedBuffer(OutputBuffer);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("output buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How long a request may take before the cluster counts as unreachable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A shell session.
pub struct Context {
    meta_addrs: Vec<String>,
    client: Option<MetaClient>,
    out: Box<dyn Write + Send>,
    color: bool,
    timeout: Duration,
    data: Option<Arc<DataClient>>,
    data_timeout: Duration,
    app: Option<String>,
    /// Whether a person at a terminal types the commands (the REPL), who can be asked.
    interactive: bool,
    /// Whether standard output is a terminal (session confirmations are shown there only).
    stdout_terminal: bool,
    /// The embedded cluster of `shell --local`, if any.
    pub local: Option<crate::local::LocalCluster>,
    /// Reads allow a stale answer from any meta server (`--stale-ok`).
    stale_ok: bool,
}

impl Context {
    /// A session against `meta_addrs`, printing to `out`, colouring if `color`.
    pub fn new(meta_addrs: Vec<String>, out: Box<dyn Write + Send>, color: bool) -> Context {
        Context {
            meta_addrs,
            client: None,
            out,
            color,
            timeout: DEFAULT_TIMEOUT,
            data: None,
            data_timeout: DEFAULT_TIMEOUT,
            app: None,
            interactive: false,
            stdout_terminal: false,
            local: None,
            stale_ok: false,
        }
    }

    /// Lets the reads of this session (`nodes`, `ls`, `app`, `cluster_info`) take a stale
    /// answer from any meta server (`--stale-ok`); data verbs still follow the leader.
    pub fn set_stale_ok(&mut self, on: bool) {
        self.stale_ok = on;
        self.client = None;
        self.data = None;
    }

    /// Records whether standard output is a terminal.
    pub fn set_stdout_terminal(&mut self, terminal: bool) {
        self.stdout_terminal = terminal;
    }

    /// Confirms a change to the session only (`use`, `timeout`): printed on a terminal;
    /// in scripts and pipes standard output carries results alone.
    pub fn confirm_session(&mut self, text: &str) -> Result<(), ShellError> {
        if self.stdout_terminal {
            self.println(text)?;
        }
        Ok(())
    }

    /// Marks the session as typed by a person at a terminal (the REPL): destructive
    /// verbs may then ask for confirmation instead of requiring `--yes`.
    pub fn set_interactive(&mut self, interactive: bool) {
        self.interactive = interactive;
    }

    /// The safety rail of a destructive verb that cannot be undone: passes with `yes`;
    /// on a terminal asks `what` and waits for `y`; in a script (or `-e`) refuses with
    /// exit 4 and never reads the answer from the script's own input.
    pub fn confirm(&mut self, what: &str, yes: bool) -> Result<(), ShellError> {
        if yes {
            return Ok(());
        }
        if !self.interactive {
            return Err(Error::Unsafe(format!(
                "{what}: this cannot be undone; add --yes to confirm (scripts are never asked)"
            ))
            .into());
        }
        let mut err = std::io::stderr();
        let _ = write!(err, "{what}: this cannot be undone. Proceed? [y/N] ");
        let _ = err.flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(()),
            _ => Err(Error::Unsafe(format!("{what}: not confirmed; nothing was done")).into()),
        }
    }

    /// The table data verbs work on (`use`).
    pub fn app(&self) -> Result<String, ShellError> {
        self.app
            .clone()
            .ok_or_else(|| ShellError::Usage("no table is in use: run `use TABLE` first".into()))
    }

    /// Sets the table data verbs work on.
    pub fn set_app(&mut self, app: String) {
        self.app = Some(app);
    }

    /// The time budget of one data operation (`timeout`).
    pub fn data_timeout(&self) -> Duration {
        self.data_timeout
    }

    /// Sets the time budget of one data operation.
    pub fn set_data_timeout(&mut self, timeout: Duration) {
        self.data_timeout = timeout;
        self.data = None;
    }

    /// A copy of the session that prints into a buffer of its own and shares this one's
    /// cluster connections (created here first, so every copy multiplexes one), for
    /// running read-only verbs side by side. Returns the copy and its buffer.
    pub fn fork(&mut self) -> Result<(Context, OutputBuffer), ShellError> {
        let meta = self.meta()?;
        let data = self.data()?;
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let copy = Context {
            meta_addrs: self.meta_addrs.clone(),
            client: Some(meta),
            out: Box::new(SharedBuffer(buffer.clone())),
            color: self.color,
            timeout: self.timeout,
            data: Some(data),
            data_timeout: self.data_timeout,
            app: self.app.clone(),
            interactive: false,
            stdout_terminal: self.stdout_terminal,
            local: None,
            stale_ok: self.stale_ok,
        };
        Ok((copy, buffer))
    }

    /// Writes bytes to the session's output as they are.
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ShellError> {
        self.out.write_all(bytes)?;
        self.out.flush()?;
        Ok(())
    }

    /// The data client, created on first use.
    pub fn data(&mut self) -> Result<Arc<DataClient>, ShellError> {
        if let Some(d) = &self.data {
            return Ok(d.clone());
        }
        // Routes come from the leader: a stale one would send requests astray.
        let meta = if self.stale_ok {
            MetaClient::new(&self.meta_addrs, self.timeout)?
        } else {
            self.meta()?
        };
        let client = Arc::new(DataClient::new(meta, self.data_timeout));
        self.data = Some(client.clone());
        Ok(client)
    }

    /// The configured meta addresses.
    pub fn meta_addrs(&self) -> &[String] {
        &self.meta_addrs
    }

    /// How long one request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether output is coloured.
    pub fn color(&self) -> bool {
        self.color
    }

    /// The meta client, created on first use.
    pub fn meta(&mut self) -> Result<MetaClient, ShellError> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        if self.meta_addrs.is_empty() {
            return Err(ShellError::Usage(
                "no meta server given: use --meta host:port[,host:port...], BALLAST_META, or --local"
                    .into(),
            ));
        }
        let client = if self.stale_ok {
            MetaClient::allowing_stale_reads(&self.meta_addrs, self.timeout)?
        } else {
            MetaClient::new(&self.meta_addrs, self.timeout)?
        };
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Prints a line of text to the session's output.
    pub fn println(&mut self, text: impl AsRef<str>) -> Result<(), ShellError> {
        writeln!(self.out, "{}", text.as_ref())?;
        self.out.flush()?;
        Ok(())
    }

    /// Prints a help page: on a terminal rendered (no Markdown marks) and through the
    /// pager; otherwise as written.
    pub fn print_page(&mut self, page: &str) -> Result<(), ShellError> {
        if self.stdout_terminal {
            let text = crate::shell::markdown::render(page, self.color);
            self.out.flush()?;
            if crate::shell::pager::page(&text) {
                return Ok(());
            }
            return self.println(text.trim_end());
        }
        self.println(page.trim_end())
    }

    /// Prints one JSON value (pretty, as reports print).
    pub fn print_json(&mut self, value: &serde_json::Value) -> Result<(), ShellError> {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| ShellError::Failed(e.to_string()))?;
        self.println(text)
    }

    /// Prints a report as text or JSON, to the output or to `file` (never coloured).
    pub fn emit(
        &mut self,
        report: &Report,
        json: bool,
        file: Option<&Path>,
    ) -> Result<(), ShellError> {
        let text = if json {
            let mut s = serde_json::to_string_pretty(&report.to_json())
                .map_err(|e| ShellError::Failed(e.to_string()))?;
            s.push('\n');
            s
        } else {
            let mut text = report.to_text(self.color && file.is_none());
            text.push('\n');
            text
        };
        match file {
            Some(path) => std::fs::write(path, text)
                .map_err(|e| ShellError::Failed(format!("cannot write {}: {e}", path.display()))),
            None => {
                self.out.write_all(text.as_bytes())?;
                self.out.flush()?;
                Ok(())
            }
        }
    }
}
