//! The admin shell: an interactive REPL (`>>> `), a script runner (`shell < ops.txt`,
//! `shell -e "cmd; cmd"`) and a one-shot runner (`shell nodes -d`), all over one verb
//! registry.
//!
//! - [`registry`] and [`commands`]: the verbs, one per file;
//! - [`lexer`]: POSIX-like splitting of lines;
//! - [`context`]: the session (lazy cluster connection, output);
//! - [`output`]: Pegasus-shaped tables and typed JSON; [`progress`]: bars on a terminal;
//! - [`repl`] and [`completer`]: the interactive session;
//! - [`cli`]: the binary's own flags and modes.

pub mod bytes;
pub mod cli;
pub mod commands;
pub mod completer;
pub mod context;
pub mod error;
pub mod fuzz;
pub mod lexer;
pub mod markdown;
pub mod output;
pub mod pager;
pub mod pipeline;
pub mod progress;
pub mod registry;
pub mod repl;

use std::io::Write;

use context::Context;
use error::ShellError;
use registry::{Flow, command, find, one_line_error};

/// A shell session: the context plus where errors go.
pub struct Shell {
    /// The session's context.
    pub ctx: Context,
    err: Box<dyn Write + Send>,
    err_color: bool,
}

impl Shell {
    /// A shell over `ctx`, printing errors to `err` (in bold red if `err_color`).
    pub fn new(ctx: Context, err: Box<dyn Write + Send>, err_color: bool) -> Shell {
        Shell {
            ctx,
            err,
            err_color,
        }
    }

    /// Runs one statement, already split into words.
    pub async fn run_words(&mut self, words: &[String]) -> Result<Flow, ShellError> {
        run_words(&mut self.ctx, words).await
    }

    /// Runs every statement of a line in order, stopping at the first failure.
    pub async fn run_line(&mut self, line: &str) -> Result<Flow, ShellError> {
        let statements = lexer::split_statements(line).map_err(|e| ShellError::Usage(e.0))?;
        for words in statements {
            if self.run_words(&words).await? == Flow::Exit {
                return Ok(Flow::Exit);
            }
        }
        Ok(Flow::Continue)
    }

    /// Prints one error line: `ERROR: <message>`, with any over-long word in it (a
    /// 100 KB name, a pasted blob) cut to its start and its length.
    pub fn report_error(&mut self, err: &ShellError) {
        let line = format!("ERROR: {}", cut_long_words(&err.to_string()));
        let line = if self.err_color {
            nu_ansi_term::Color::Red.bold().paint(line).to_string()
        } else {
            line
        };
        let _ = writeln!(self.err, "{line}");
        let _ = self.err.flush();
    }
}

/// Runs one statement, already split into words, on `ctx`.
pub async fn run_words(ctx: &mut Context, words: &[String]) -> Result<Flow, ShellError> {
    let Some(first) = words.first() else {
        return Ok(Flow::Continue);
    };
    let verb = find(first).ok_or_else(|| {
        ShellError::Usage(format!(
            "unknown command '{first}'; type \"help\" for the list"
        ))
    })?;
    let cmd = command(verb);
    let wants_help = words[1..].iter().any(|w| w == "-h" || w == "--help");
    match cmd.clone().try_get_matches_from(words) {
        Ok(m) if m.get_flag("help") => {
            ctx.print_page(verb.page())?;
            Ok(Flow::Continue)
        }
        Ok(m) => verb.run(ctx, &m).await,
        Err(_) if wants_help => {
            ctx.print_page(verb.page())?;
            Ok(Flow::Continue)
        }
        Err(e) => Err(ShellError::Usage(one_line_error(&e, &cmd))),
    }
}

/// Cuts every word longer than 200 characters to its first 40 and its length.
fn cut_long_words(text: &str) -> String {
    const MAX: usize = 200;
    text.split(' ')
        .map(|word| match word.char_indices().nth(MAX) {
            None => word.to_string(),
            Some(_) => {
                let (cut, _) = word.char_indices().nth(40).expect("longer than 40");
                format!("{}...({} bytes)", &word[..cut], word.len())
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::cut_long_words;

    #[test]
    fn long_words_in_errors_are_cut() {
        let long = "a".repeat(100_000);
        let cut = cut_long_words(&format!("table name '{long}' is too long"));
        assert!(cut.len() < 200, "{cut}");
        assert!(
            cut.ends_with("is too long") && cut.contains("(100002 bytes)"),
            "{cut}"
        );
        assert_eq!(cut_long_words("short words stay"), "short words stay");
    }
}
