//! The group's admin client, shared by `meta-server --leave-id/--leave-via` and the shell's
//! `meta` verb: sends a request to the first of the given members that answers (a follower
//! forwards join, leave and transfer to the leader), and gathers every member's status.

use std::time::Duration;

use super::grpc::GrpcTransport;
use super::network::{MemberStatus, Request, Response, call};
use crate::error::{Error, Result};

/// How long one admin request may take (a leave may transfer leadership first).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a status request to one member may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `request` to each of `via` in turn until one answers. A refusal (a safety check)
/// is [`Error::Unsafe`]; a failure everywhere is [`Error::Unavailable`].
pub async fn send(via: &[String], request: Request) -> Result<String> {
    let transport = GrpcTransport::new();
    let mut last = String::from("no meta server address given");
    for addr in via {
        match call(&transport, addr, request.clone(), ADMIN_TIMEOUT).await {
            Ok(Response::Done(what)) => return Ok(what),
            Ok(Response::Refused(why)) => return Err(Error::Unsafe(why)),
            Ok(Response::Failed(why)) => last = format!("{addr}: {why}"),
            Ok(other) => last = format!("{addr}: unexpected answer {other:?}"),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(Error::Unavailable(last))
}

/// The status of the member at `addr`.
pub async fn status_of(addr: &str) -> Result<MemberStatus> {
    let transport = GrpcTransport::new();
    match call(&transport, addr, Request::Status, STATUS_TIMEOUT).await {
        Ok(Response::Status(s)) => Ok(s),
        Ok(Response::Failed(why)) | Ok(Response::Refused(why)) => {
            Err(Error::Refused(format!("{addr}: {why}")))
        }
        Ok(other) => Err(Error::Internal(format!(
            "{addr}: unexpected answer {other:?}"
        ))),
        Err(e) => Err(Error::Unavailable(format!("{addr}: {e}"))),
    }
}

/// The group as seen from the first of `via` that answers, then every member's own status
/// (a member that does not answer is `Err`, in membership order).
pub async fn status_all(
    via: &[String],
) -> Result<(MemberStatus, Vec<(u64, String, Result<MemberStatus>)>)> {
    let mut first = None;
    let mut last = Error::Unavailable("no meta server address given".into());
    for addr in via {
        match status_of(addr).await {
            Ok(s) => {
                first = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let Some(first) = first else {
        return Err(last);
    };
    // Ask the leader (if the first knows one) for the membership with addresses.
    let mut members = Vec::new();
    for id in first.voters.iter().chain(&first.learners) {
        let address = first
            .addresses
            .iter()
            .find(|(m, _)| m == id)
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
        let status = status_of(&address).await;
        members.push((*id, address, status));
    }
    Ok((first, members))
}
