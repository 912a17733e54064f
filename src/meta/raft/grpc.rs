//! The group's messages over gRPC: [`GrpcTransport`] sends them (one lazy channel per
//! member address, kept), and [`GroupService`] is the thin adapter that hands what arrives
//! to the member. Snapshots travel whole, so both sides allow large messages.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::group::Member;
use super::network::{
    Envelope, MemberStatus, Request as GroupRequest, Response as GroupResponse, Transport,
};
use crate::pb;

/// The largest message either side accepts (a snapshot of the whole meta state).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Sends group messages over gRPC.
#[derive(Default)]
pub struct GrpcTransport {
    channels: Mutex<HashMap<String, Channel>>,
}

impl GrpcTransport {
    /// A transport with no channels yet.
    pub fn new() -> GrpcTransport {
        GrpcTransport::default()
    }

    fn channel(&self, to: &str) -> io::Result<Channel> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(to) {
            return Ok(c.clone());
        }
        let c = crate::client::channel(to, Duration::from_secs(10)).map_err(io::Error::other)?;
        channels.insert(to.to_string(), c.clone());
        Ok(c)
    }
}

#[tonic::async_trait]
impl Transport for GrpcTransport {
    async fn send(&self, to: &str, request: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut client = pb::meta_group_client::MetaGroupClient::new(self.channel(to)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let reply = client
            .call(pb::GroupMessage { payload: request })
            .await
            .map_err(|s| {
                io::Error::new(io::ErrorKind::ConnectionRefused, s.message().to_string())
            })?;
        Ok(reply.into_inner().payload)
    }
}

/// Serves `MetaGroup` for one member.
#[derive(Clone)]
pub struct GroupService {
    member: Arc<Member>,
}

impl GroupService {
    /// The service of `member`, ready to add to a router.
    pub fn server(member: Arc<Member>) -> pb::meta_group_server::MetaGroupServer<GroupService> {
        pb::meta_group_server::MetaGroupServer::new(GroupService { member })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

#[tonic::async_trait]
impl pb::meta_group_server::MetaGroup for GroupService {
    async fn call(
        &self,
        req: Request<pb::GroupMessage>,
    ) -> Result<Response<pb::GroupMessage>, Status> {
        let payload = self.member.handle_bytes(&req.into_inner().payload).await;
        Ok(Response::new(pb::GroupMessage { payload }))
    }
}

/// Serves `MetaGroup` for a meta server that runs alone (no `--id`): it is a group of one
/// as far as `meta status` goes (member 0, the leader), and refuses to change membership,
/// saying how to make it the first member of a real group.
#[derive(Clone)]
pub struct AloneService {
    address: String,
}

impl AloneService {
    /// The service of the meta server at `address`.
    pub fn server(address: String) -> pb::meta_group_server::MetaGroupServer<AloneService> {
        pb::meta_group_server::MetaGroupServer::new(AloneService { address })
    }
}

#[tonic::async_trait]
impl pb::meta_group_server::MetaGroup for AloneService {
    async fn call(
        &self,
        req: Request<pb::GroupMessage>,
    ) -> Result<Response<pb::GroupMessage>, Status> {
        let answer = match serde_json::from_slice::<Envelope>(&req.into_inner().payload) {
            Ok(Envelope {
                request: GroupRequest::Status,
                ..
            }) => GroupResponse::Status(MemberStatus {
                id: 0,
                address: self.address.clone(),
                role: "leader".into(),
                term: 0,
                last_log_index: 0,
                applied_index: 0,
                leader: Some(0),
                voters: vec![0],
                learners: vec![],
                lags: vec![],
                addresses: vec![(0, self.address.clone())],
            }),
            Ok(_) => GroupResponse::Refused(format!(
                "the meta server at {} runs alone (started without --id); restart it with \
                 --id 1 --single to make it the first member of a group, then join others",
                self.address
            )),
            Err(e) => GroupResponse::Failed(format!("malformed request: {e}")),
        };
        let payload = serde_json::to_vec(&answer).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::GroupMessage { payload }))
    }
}
