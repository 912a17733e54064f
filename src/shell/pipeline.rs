//! Scripts run consecutive read-only lines side by side, as `redis-cli --pipe` sends
//! ahead: a line whose one statement is a verb that only reads ([`Verb::reads_only`],
//! and no `-o FILE`) joins a batch; the batch runs at once on copies of the session that
//! share its connections and print into buffers; then each line's output is printed in
//! order, and at the first failure the rest of the batch is dropped unprinted — what a
//! script prints and how it exits are as if the lines ran one by one. Only lines that
//! have already arrived are batched: a script fed line by line (waiting for answers)
//! is never read ahead of.
//!
//! [`Verb::reads_only`]: crate::shell::registry::Verb::reads_only

use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, find};
use crate::shell::{Shell, lexer, run_words};

/// The most lines run side by side.
pub const WINDOW: usize = 64;

/// A script line waiting in a batch: its number, text and words.
pub struct Pending {
    /// The line number (from 1).
    pub number: usize,
    /// The line as written.
    pub line: String,
    /// Its one statement's words.
    pub words: Vec<String>,
}

/// The words of `line` if it may join a batch: one statement of a read-only verb that
/// writes no file.
pub fn batchable(line: &str) -> Option<Vec<String>> {
    let mut statements = lexer::split_statements(line).ok()?;
    if statements.len() != 1 {
        return None;
    }
    let words = statements.pop()?;
    let verb = find(words.first()?)?;
    let writes_file = words.iter().any(|w| {
        w == "-o" || w.starts_with("--output") || (w.starts_with("-o") && !w.starts_with("--"))
    });
    (verb.reads_only() && !writes_file).then_some(words)
}

/// What running a batch came to: the exit code of the failure that stops the script
/// (`None`: go on), and the first failure's code with `keep_going`.
pub struct Outcome {
    /// Stop with this code.
    pub stop: Option<i32>,
    /// The first failure's code (all failures are reported).
    pub first_failure: Option<i32>,
}

/// Runs `batch` side by side and prints each line's output (and error) in order.
pub async fn run_batch(shell: &mut Shell, batch: Vec<Pending>, keep_going: bool) -> Outcome {
    let mut outcome = Outcome {
        stop: None,
        first_failure: None,
    };
    if let [p] = batch.as_slice() {
        // One line runs on the session itself.
        if let Err(e) = run_words(&mut shell.ctx, &p.words).await {
            let e = e.at(p.number, &p.line);
            shell.report_error(&e);
            outcome.first_failure = Some(e.exit_code());
            outcome.stop = (!keep_going).then_some(e.exit_code());
        }
        return outcome;
    }
    let mut tasks = tokio::task::JoinSet::new();
    let mut ids = std::collections::HashMap::new();
    let mut buffers = Vec::with_capacity(batch.len());
    for (i, p) in batch.iter().enumerate() {
        match shell.ctx.fork() {
            Ok((mut ctx, buffer)) => {
                let words = p.words.clone();
                let task = tasks.spawn(async move { (i, run_words(&mut ctx, &words).await) });
                ids.insert(task.id(), i);
                buffers.push(buffer);
            }
            Err(e) => {
                // No cluster to share: run this line alone, where its error is said.
                tasks.abort_all();
                let code = e.exit_code();
                shell.report_error(&e.at(p.number, &p.line));
                outcome.stop = (!keep_going).then_some(code);
                outcome.first_failure = Some(code);
                return outcome;
            }
        }
    }
    let mut results: Vec<Option<Result<Flow, ShellError>>> =
        (0..batch.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, r)) => results[i] = Some(r),
            Err(e) => {
                if let Some(i) = ids.get(&e.id()) {
                    results[*i] =
                        Some(Err(ShellError::Failed(format!("the command stopped: {e}"))));
                }
            }
        }
    }
    for ((p, buffer), result) in batch.iter().zip(buffers).zip(results) {
        let printed = std::mem::take(&mut *buffer.lock().unwrap_or_else(|e| e.into_inner()));
        if let Err(e) = shell.ctx.write_raw(&printed) {
            shell.report_error(&e);
        }
        if let Some(Err(e)) = result {
            let e = e.at(p.number, &p.line);
            shell.report_error(&e);
            outcome.first_failure.get_or_insert(e.exit_code());
            if !keep_going {
                outcome.stop = Some(e.exit_code());
                return outcome;
            }
        }
    }
    outcome
}
