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

/// How often a connection with streams open pings its server, and how long it waits
/// for the answer before it counts the connection dead. Writes, reads and prepares travel
/// on long-lived streams: without pings a connection whose peer vanished (a host gone, a
/// network that drops packets) would take every call sent on it until TCP gave up,
/// minutes later; with them its streams fail within 20 s and the next call reconnects.
pub const KEEPALIVE: Duration = Duration::from_secs(10);

/// A lazily connecting channel to `addr` whose connects and requests give up after
/// `timeout`, and whose connection is pinged every [`KEEPALIVE`] while it has streams.
pub fn channel(addr: &str, timeout: Duration) -> Result<Channel> {
    channel_with_keepalive(addr, timeout, KEEPALIVE)
}

/// [`channel`], pinging every `keepalive` (and waiting as long for the answer).
pub fn channel_with_keepalive(
    addr: &str,
    timeout: Duration,
    keepalive: Duration,
) -> Result<Channel> {
    validate_address(addr)?;
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Error::InvalidInput(format!("bad address '{addr}': {e}")))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .http2_keep_alive_interval(keepalive)
        .keep_alive_timeout(keepalive)
        .keep_alive_while_idle(false);
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
