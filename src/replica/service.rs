//! The replica server's gRPC services, as thin adapters.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::pb;
use crate::replica::Replica;
use crate::replica::remote_commands::REPLICA_COMMANDS;

/// Serves the `Cli` service over one shared [`Replica`].
#[derive(Clone)]
pub struct ReplicaService {
    replica: Arc<Replica>,
}

impl ReplicaService {
    /// Wraps the shared replica server.
    pub fn new(replica: Arc<Replica>) -> ReplicaService {
        ReplicaService { replica }
    }
}

#[tonic::async_trait]
impl pb::cli_server::Cli for ReplicaService {
    async fn call(&self, req: Request<pb::CliRequest>) -> Result<Response<pb::CliReply>, Status> {
        let req = req.into_inner();
        let (ok, output) = REPLICA_COMMANDS.call(&self.replica, &req.command, &req.args);
        Ok(Response::new(pb::CliReply {
            ok,
            output: output.to_string(),
        }))
    }
}
