//! Clients of the cluster: [`MetaClient`] (leader redirect, failover across the
//! configured meta servers, one deadline per request), [`DataClient`] (reads and writes
//! routed to partition primaries) and [`call_remote`] for remote commands on any server
//! process.

mod calls;
mod data;
mod meta;

pub use data::DataClient;
pub use meta::MetaClient;

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};
use crate::model::validate_address;
use crate::pb;

/// A lazily connecting channel to `addr` whose connects and requests give up after
/// `timeout`.
pub fn channel(addr: &str, timeout: Duration) -> Result<Channel> {
    validate_address(addr)?;
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Error::InvalidInput(format!("bad address '{addr}': {e}")))?
        .connect_timeout(timeout)
        .timeout(timeout);
    Ok(endpoint.connect_lazy())
}

/// Runs remote command `command` on the server at `addr`. Returns whether the command
/// succeeded and its JSON reply; an unreachable server is an `Err`.
pub async fn call_remote(
    addr: &str,
    command: &str,
    args: &[String],
    timeout: Duration,
) -> Result<(bool, serde_json::Value)> {
    let mut client = pb::cli_client::CliClient::new(channel(addr, timeout)?);
    let request = pb::CliRequest {
        command: command.to_string(),
        args: args.to_vec(),
    };
    let reply = tokio::time::timeout(timeout, client.call(request))
        .await
        .map_err(|_| Error::Unavailable(format!("{addr} did not answer within {timeout:?}")))?
        .map_err(|status| match Error::from(status) {
            Error::Internal(msg) | Error::Unavailable(msg) => {
                Error::Unavailable(format!("cannot reach {addr}: {msg}"))
            }
            other => other,
        })?
        .into_inner();
    let output =
        serde_json::from_str(&reply.output).unwrap_or(serde_json::Value::String(reply.output));
    Ok((reply.ok, output))
}
