//! The interactive session: banner, `>>> ` prompt, history in the user's data directory,
//! completion and hints from [`crate::shell::completer`]. Ctrl-C drops the line (or
//! interrupts a running command); Ctrl-D, `exit` or `quit` leave. Errors are printed
//! and the session goes on. Pasted lines (bracketed or not) and lines typed ahead while
//! a command runs are kept and run one by one, in order.

use std::path::PathBuf;

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config, Editor};

use crate::shell::Shell;
use crate::shell::commands::version::version_line;
use crate::shell::completer::ShellHelper;
use crate::shell::error::{ShellError, exit_code};
use crate::shell::registry::Flow;

/// Where history is kept: `<data dir>/ballast/history` (XDG_DATA_HOME on Linux).
pub fn history_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("ballast").join("history"))
}

/// Runs the interactive loop until exit; returns the exit code.
pub fn run(shell: &mut Shell, runtime: &tokio::runtime::Runtime) -> i32 {
    shell.ctx.set_interactive(true);
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .max_history_size(1000)
        .and_then(|b| {
            Ok(b.history_ignore_dups(true)?
                .history_ignore_space(true)
                .build())
        });
    let config = match config {
        Ok(config) => config,
        Err(e) => return fail(shell, &format!("cannot configure the line editor: {e}")),
    };
    let mut editor: Editor<ShellHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(editor) => editor,
        Err(e) => return fail(shell, &format!("cannot start the line editor: {e}")),
    };
    let helper = ShellHelper::new(
        shell.ctx.meta_addrs().to_vec(),
        runtime.handle().clone(),
        shell.ctx.color(),
    );
    editor.set_helper(Some(helper));
    let history = history_path();
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.load_history(path);
    }
    let banner = format!(
        "{}\nType \"help\" for more information, \"exit\" or Ctrl-D to leave.\nThe cluster meta list is: {}",
        version_line(),
        if shell.ctx.meta_addrs().is_empty() {
            "(none)".to_string()
        } else {
            shell.ctx.meta_addrs().join(",")
        }
    );
    let _ = shell.ctx.println(banner);
    loop {
        match editor.readline(">>> ") {
            Ok(edit) => {
                // A bracketed paste arrives as one edit holding newlines: its lines run
                // one by one, in order, as if typed (a plain paste arrives line by line;
                // the editor keeps the rest buffered for the next prompt).
                for line in edit.split(['\n', '\r']) {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line);
                        if let Some(path) = &history {
                            let _ = editor.append_history(path);
                        }
                    }
                    let result = runtime.block_on(async {
                        tokio::select! {
                            r = shell.run_line(line) => r,
                            _ = tokio::signal::ctrl_c() => Err(ShellError::Failed("interrupted".into())),
                        }
                    });
                    match result {
                        Ok(Flow::Exit) => return exit_code::OK,
                        Ok(Flow::Continue) => {}
                        Err(e) => shell.report_error(&e),
                    }
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return exit_code::OK,
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                // A byte that is not UTF-8 was typed or pasted: drop the line, go on.
                shell.report_error(&ShellError::Usage(
                    "the line held a byte that is not UTF-8 and was dropped; type binary \
                     bytes as \\xHH inside double quotes"
                        .into(),
                ));
            }
            Err(e) => return fail(shell, &format!("cannot read the terminal: {e}")),
        }
    }
}

fn fail(shell: &mut Shell, msg: &str) -> i32 {
    shell.report_error(&ShellError::Failed(msg.to_string()));
    exit_code::FAILED
}
