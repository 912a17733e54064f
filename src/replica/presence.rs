//! The presence stream: for as long as this process runs, it holds a stream to the meta
//! server open, so that the meta server sees the process end (a crash, `kill -9`) the
//! moment its connection closes and stops counting this node's replicas as serving,
//! long before the grace period lets it declare the node dead. If the stream breaks
//! while the process lives (a meta server restart), it is opened again. On it the meta
//! server asks for a beacon now when this node's configuration changed.

use std::sync::Arc;
use std::time::Duration;

use crate::client::MetaClient;
use crate::pb;
use crate::replica::Replica;
use crate::server::{ShutdownSignal, stopped};

/// How long to wait before opening a broken stream again.
const RETRY: Duration = Duration::from_millis(200);

/// Runs until shutdown.
pub async fn run(replica: Arc<Replica>, client: MetaClient, signal: ShutdownSignal) {
    let stop = stopped(signal);
    tokio::pin!(stop);
    loop {
        let request = pb::PresenceRequest {
            address: replica.address().to_string(),
            incarnation: replica.incarnation().to_string(),
        };
        let opened = tokio::select! {
            _ = &mut stop => return,
            opened = client.presence(request) => opened,
        };
        match opened {
            Ok(mut stream) => loop {
                let event = tokio::select! {
                    _ = &mut stop => return,
                    event = stream.message() => event,
                };
                match event {
                    Ok(Some(event)) => {
                        if event.beacon_now {
                            replica.beacon_control().kick.notify_one();
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!("presence stream broke: {e}");
                        break;
                    }
                }
            },
            Err(e) => tracing::debug!("cannot open the presence stream: {e}"),
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}
