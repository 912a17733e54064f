//! How a shell command fails, and the exit code each failure gives a script: 0 ok, 1 the
//! command failed or the cluster refused it, 2 bad usage, 3 the cluster cannot be
//! reached, 4 a safety check refused, 5 timed out.

use crate::error::Error;

/// A shell command's failure.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The line itself is wrong: unknown verb, bad flag or value, unbalanced quote.
    #[error("{0}")]
    Usage(String),
    /// The command ran and failed, or the cluster answered with an error.
    #[error("{0}")]
    Cluster(#[from] Error),
    /// The command failed locally (e.g. writing `-o FILE`).
    #[error("{0}")]
    Failed(String),
    /// A failure in a script, with the line and the command it came from.
    #[error("line {line}: {command}: {source}")]
    At {
        /// The script's line number (from 1).
        line: usize,
        /// The command as written (cut when long).
        command: String,
        /// What failed.
        source: Box<ShellError>,
    },
}

impl ShellError {
    /// This failure, said to come from `command` on script line `line`.
    pub fn at(self, line: usize, command: &str) -> ShellError {
        const MAX: usize = 60;
        let trimmed = command.trim();
        let command = match trimmed.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}...", &trimmed[..cut]),
            None => trimmed.to_string(),
        };
        ShellError::At {
            line,
            command,
            source: Box::new(self),
        }
    }
}

/// Exit codes, as documented in the README and `help`.
pub mod exit_code {
    /// Success.
    pub const OK: i32 = 0;
    /// The command failed or the cluster refused it.
    pub const FAILED: i32 = 1;
    /// Bad usage.
    pub const USAGE: i32 = 2;
    /// The cluster cannot be reached.
    pub const UNREACHABLE: i32 = 3;
    /// A safety check refused a risky operation.
    pub const UNSAFE: i32 = 4;
    /// A wait timed out.
    pub const TIMEOUT: i32 = 5;
}

impl ShellError {
    /// The exit code a script gets for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ShellError::At { source, .. } => source.exit_code(),
            ShellError::Usage(_) => exit_code::USAGE,
            ShellError::Failed(_) => exit_code::FAILED,
            ShellError::Cluster(e) => match e {
                Error::Unavailable(_) | Error::NotLeader { .. } => exit_code::UNREACHABLE,
                Error::Unsafe(_) => exit_code::UNSAFE,
                Error::Timeout(_) | Error::OutcomeUnknown(_) => exit_code::TIMEOUT,
                _ => exit_code::FAILED,
            },
        }
    }
}

impl From<clap::Error> for ShellError {
    fn from(e: clap::Error) -> ShellError {
        ShellError::Usage(e.to_string())
    }
}

impl From<std::io::Error> for ShellError {
    fn from(e: std::io::Error) -> ShellError {
        ShellError::Failed(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(ShellError::Usage("x".into()).exit_code(), 2);
        assert_eq!(
            ShellError::Cluster(Error::NotFound("t".into())).exit_code(),
            1
        );
        assert_eq!(
            ShellError::Cluster(Error::Refused("freezed".into())).exit_code(),
            1
        );
        assert_eq!(
            ShellError::Cluster(Error::Unavailable("down".into())).exit_code(),
            3
        );
        assert_eq!(
            ShellError::Cluster(Error::Unsafe("risky".into())).exit_code(),
            4
        );
        assert_eq!(
            ShellError::Cluster(Error::Timeout("slow".into())).exit_code(),
            5
        );
        assert_eq!(ShellError::Failed("disk".into()).exit_code(), 1);
        assert_eq!(
            ShellError::Cluster(Error::OutcomeUnknown("sent".into())).exit_code(),
            5,
            "a write that timed out after it was sent is a timeout"
        );
        assert_eq!(
            ShellError::Cluster(Error::PartitionLost("ddd".into())).exit_code(),
            1
        );
    }
}
