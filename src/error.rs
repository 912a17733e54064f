//! The crate's one error type. Variants are semantic (what went wrong, not where), so
//! that the gRPC edge maps them to status codes, the client maps status codes back, and
//! the shell maps them to exit codes without string matching.

use tonic::{Code, Status};

/// Everything that can go wrong in Ballast, by kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed: a bad name, a bad value, a missing field.
    #[error("{0}")]
    InvalidInput(String),
    /// The named thing (table, node, command) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The cluster's state forbids the request now: the meta level, too few ALIVE
    /// nodes, a table in the wrong status.
    #[error("{0}")]
    Refused(String),
    /// A safety check refused a risky operation (the operator may override it).
    #[error("{0}")]
    Unsafe(String),
    /// This node is not the serving primary of the partition: refresh the route.
    #[error("{0}")]
    NotPrimary(String),
    /// The request carries an older ballot than the replica has seen: refresh the route.
    #[error("{0}")]
    StaleBallot(String),
    /// The node's lease with the meta server ran out: it serves nothing until renewed.
    #[error("{0}")]
    LeaseExpired(String),
    /// The replica's data is not loaded (it is learning, or was lost): ask elsewhere.
    #[error("{0}")]
    NotLoaded(String),
    /// A write was sent but its outcome is not known (it may yet commit). Retrying it
    /// with the same request id is safe: it is applied once.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// Every replica of the partition was lost (Pegasus's DDD): it serves nothing until
    /// its last members report or an operator decides.
    #[error("{0}")]
    PartitionLost(String),
    /// The server asked is not the meta leader; `leader` is where to go, if known.
    #[error("not the meta leader{}", .leader.as_deref().map(|l| format!(", the leader is {l}")).unwrap_or_default())]
    NotLeader {
        /// The leader's address, if the server knows it.
        leader: Option<String>,
    },
    /// The server cannot be reached or cannot serve right now.
    #[error("{0}")]
    Unavailable(String),
    /// A wait ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// Durable storage failed.
    #[error("storage: {0}")]
    Storage(String),
    /// A bug or an unexpected condition.
    #[error("internal: {0}")]
    Internal(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether trying the same request again (later, or at another server) may succeed.
    /// An unknown outcome is not: only a write with a request id may be sent again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::NotLeader { .. } | Error::Unavailable(_))
    }

    /// Whether the caller should refresh its view of the partition's configuration and
    /// try its primary again (the data client's rule).
    pub fn needs_reroute(&self) -> bool {
        matches!(
            self,
            Error::NotPrimary(_)
                | Error::StaleBallot(_)
                | Error::LeaseExpired(_)
                | Error::NotLoaded(_)
                | Error::NotFound(_)
                | Error::Unavailable(_)
        )
    }
}

/// Builds an [`Error::InvalidInput`] from a format string.
#[macro_export]
macro_rules! errinput {
    ($($arg:tt)*) => { $crate::error::Error::InvalidInput(format!($($arg)*)) };
}

/// Builds an [`Error::Refused`] from a format string.
#[macro_export]
macro_rules! errrefused {
    ($($arg:tt)*) => { $crate::error::Error::Refused(format!($($arg)*)) };
}

/// Metadata key carrying the leader's address on a NotLeader status.
const LEADER_KEY: &str = "ballast-leader";
/// Metadata key telling a refusal for safety apart from other refusals.
const UNSAFE_KEY: &str = "ballast-unsafe";
/// Metadata key naming why a data-plane request was refused (see [`Error::reason`]).
const REASON_KEY: &str = "ballast-reason";

impl Error {
    /// The reason a FAILED_PRECONDITION or UNKNOWN status carries, for the kinds that
    /// share a gRPC code.
    fn reason(&self) -> Option<&'static str> {
        Some(match self {
            Error::NotPrimary(_) => "not-primary",
            Error::StaleBallot(_) => "stale-ballot",
            Error::LeaseExpired(_) => "lease-expired",
            Error::NotLoaded(_) => "not-loaded",
            Error::OutcomeUnknown(_) => "outcome-unknown",
            Error::PartitionLost(_) => "partition-lost",
            _ => return None,
        })
    }

    fn from_reason(reason: &str, msg: String) -> Option<Error> {
        Some(match reason {
            "not-primary" => Error::NotPrimary(msg),
            "stale-ballot" => Error::StaleBallot(msg),
            "lease-expired" => Error::LeaseExpired(msg),
            "not-loaded" => Error::NotLoaded(msg),
            "outcome-unknown" => {
                let msg = msg.strip_prefix("outcome unknown: ").unwrap_or(&msg);
                Error::OutcomeUnknown(msg.to_string())
            }
            "partition-lost" => Error::PartitionLost(msg),
            _ => return None,
        })
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let msg = err.to_string();
        if let Some(reason) = err.reason() {
            let mut status = match err {
                Error::OutcomeUnknown(_) => Status::unknown(msg),
                _ => Status::failed_precondition(msg),
            };
            status
                .metadata_mut()
                .insert(REASON_KEY, reason.parse().expect("ascii"));
            return status;
        }
        match err {
            Error::InvalidInput(_) => Status::invalid_argument(msg),
            Error::NotFound(_) => Status::not_found(msg),
            Error::AlreadyExists(_) => Status::already_exists(msg),
            Error::Refused(_) => Status::failed_precondition(msg),
            Error::Unsafe(_) => {
                let mut status = Status::failed_precondition(msg);
                status
                    .metadata_mut()
                    .insert(UNSAFE_KEY, "1".parse().expect("ascii"));
                status
            }
            Error::NotLeader { leader } => {
                let mut status = Status::unavailable(msg);
                let value = leader.unwrap_or_default();
                if let Ok(value) = value.parse() {
                    status.metadata_mut().insert(LEADER_KEY, value);
                }
                status
            }
            Error::Unavailable(_) => Status::unavailable(msg),
            Error::Timeout(_) => Status::deadline_exceeded(msg),
            Error::Storage(_) | Error::Internal(_) => Status::internal(msg),
            Error::NotPrimary(_)
            | Error::StaleBallot(_)
            | Error::LeaseExpired(_)
            | Error::NotLoaded(_)
            | Error::OutcomeUnknown(_)
            | Error::PartitionLost(_) => unreachable!("carried as a reason above"),
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Error {
        let msg = status.message().to_string();
        if let Some(err) = status
            .metadata()
            .get(REASON_KEY)
            .and_then(|r| r.to_str().ok())
            .and_then(|r| Error::from_reason(r, msg.clone()))
        {
            return err;
        }
        if let Some(leader) = status.metadata().get(LEADER_KEY) {
            let leader = leader.to_str().unwrap_or_default().to_string();
            return Error::NotLeader {
                leader: (!leader.is_empty()).then_some(leader),
            };
        }
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Error::InvalidInput(msg),
            Code::NotFound => Error::NotFound(msg),
            Code::AlreadyExists => Error::AlreadyExists(msg),
            Code::FailedPrecondition if status.metadata().get(UNSAFE_KEY).is_some() => {
                Error::Unsafe(msg)
            }
            Code::FailedPrecondition | Code::PermissionDenied | Code::Aborted => {
                Error::Refused(msg)
            }
            Code::DeadlineExceeded => Error::Timeout(msg),
            Code::Unavailable | Code::Cancelled | Code::Unknown if transport_like(&msg) => {
                Error::Unavailable(msg)
            }
            Code::Unavailable => Error::Unavailable(msg),
            _ => Error::Internal(msg),
        }
    }
}

/// Whether a status message describes a transport failure rather than a server answer.
fn transport_like(msg: &str) -> bool {
    let msg = msg.to_ascii_lowercase();
    [
        "transport",
        "connect",
        "connection",
        "broken pipe",
        "timed out",
    ]
    .iter()
    .any(|needle| msg.contains(needle))
}

impl From<redb::Error> for Error {
    fn from(err: redb::Error) -> Error {
        Error::Storage(err.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        Error::Storage(err.to_string())
    }
}

/// A status as a `Calls` stream carries it: code, message and ASCII metadata (the
/// reason, a leader's address), so the client rebuilds the unary call's status.
pub fn status_to_pb(status: &Status) -> crate::pb::CallError {
    let metadata = status
        .metadata()
        .iter()
        .filter_map(|entry| match entry {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))
            }
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        })
        .collect();
    crate::pb::CallError {
        code: status.code() as i32,
        message: status.message().to_string(),
        metadata,
    }
}

/// The status a `Calls` stream's error stands for (see [`status_to_pb`]).
pub fn status_from_pb(err: crate::pb::CallError) -> Status {
    let mut map = tonic::metadata::MetadataMap::new();
    for (k, v) in err.metadata {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::AsciiMetadataKey::from_bytes(k.as_bytes()),
            v.parse(),
        ) {
            map.insert(k, v);
        }
    }
    Status::with_metadata(Code::from_i32(err.code), err.message, map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip_keeps_the_kind() {
        let cases = [
            Error::InvalidInput("bad".into()),
            Error::NotFound("no such table".into()),
            Error::AlreadyExists("exists".into()),
            Error::Refused("freezed".into()),
            Error::Unsafe("would lose data".into()),
            Error::NotLeader {
                leader: Some("127.0.0.1:34601".into()),
            },
            Error::NotLeader { leader: None },
            Error::Unavailable("down".into()),
            Error::Timeout("slow".into()),
            Error::Storage("disk".into()),
            Error::Internal("bug".into()),
            Error::NotPrimary("moved".into()),
            Error::StaleBallot("old".into()),
            Error::LeaseExpired("lease".into()),
            Error::NotLoaded("learning".into()),
            Error::OutcomeUnknown("timed out".into()),
            Error::PartitionLost("all gone".into()),
        ];
        for err in cases {
            let status = Status::from(err.clone());
            // As a unary call returns it, and as a Calls stream carries it.
            let streamed = Error::from(status_from_pb(status_to_pb(&status)));
            let back = Error::from(status);
            let same = std::mem::discriminant(&back) == std::mem::discriminant(&err)
                || matches!((&err, &back), (Error::Storage(_), Error::Internal(_)));
            assert!(same, "{err:?} came back as {back:?}");
            assert_eq!(streamed, back, "a streamed error is the call's");
            if err.reason().is_some() {
                assert_eq!(back, err, "the message survives");
            }
        }
        let back = Error::from(Status::from(Error::NotLeader {
            leader: Some("a:1".into()),
        }));
        assert_eq!(
            back,
            Error::NotLeader {
                leader: Some("a:1".into())
            }
        );
    }

    #[test]
    fn only_leader_and_availability_errors_are_retryable() {
        assert!(Error::Unavailable("x".into()).is_retryable());
        assert!(Error::NotLeader { leader: None }.is_retryable());
        assert!(!Error::NotFound("x".into()).is_retryable());
        assert!(!Error::Refused("x".into()).is_retryable());
    }
}
