//! Malformed requests for every server RPC, for `ballast-bench fuzz-rpc`. Requests are
//! built from the protobuf descriptors of our own contract, so most decode and reach
//! the handlers (random field values: edge integers, unknown enum numbers, empty, long
//! and non-UTF-8 strings, nested and repeated fields), and are then broken in the ways a
//! bad client or a bad network breaks them: truncated, bit-flipped, random bytes, a
//! length prefix that lies, and fields of megabytes. They are sent as raw bytes with a
//! pass-through codec, so the servers' own decoding is exercised.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut};
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::sim::rng::Rng;

const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ballast_descriptor.bin"));

/// One RPC of the contract.
#[derive(Debug, Clone)]
pub struct Rpc {
    /// The service (`Meta`, `Replica`, `Cli`).
    pub service: String,
    /// The method.
    pub method: String,
    /// Its request message, fully qualified (`.ballast.v1.BeaconRequest`).
    pub input: String,
    /// The server streams its answer.
    pub streaming: bool,
}

impl Rpc {
    /// The gRPC path: `/ballast.v1.Service/Method`.
    pub fn path(&self) -> String {
        format!("/ballast.v1.{}/{}", self.service, self.method)
    }
}

/// The contract's messages and RPCs, read from the compiled descriptors.
pub struct Schema {
    messages: HashMap<String, DescriptorProto>,
    /// Every RPC of every service.
    pub rpcs: Vec<Rpc>,
}

impl Schema {
    /// The schema of `proto/ballast/v1/*.proto`.
    pub fn load() -> Schema {
        let fds =
            FileDescriptorSet::decode(DESCRIPTORS).expect("the build wrote valid descriptors");
        let mut messages = HashMap::new();
        let mut rpcs = Vec::new();
        for file in &fds.file {
            let package = format!(".{}", file.package());
            for m in &file.message_type {
                collect(&mut messages, &package, m);
            }
            for s in &file.service {
                for m in &s.method {
                    rpcs.push(Rpc {
                        service: s.name().to_string(),
                        method: m.name().to_string(),
                        input: m.input_type().to_string(),
                        streaming: m.server_streaming(),
                    });
                }
            }
        }
        Schema { messages, rpcs }
    }

    /// A request body for `rpc`: valid for its schema or broken on purpose.
    pub fn case(&self, rng: &mut Rng, rpc: &Rpc) -> Vec<u8> {
        let mut valid = Vec::new();
        self.message(rng, &rpc.input, 0, &mut valid);
        // Fields of megabytes are rare (they are slow to send), the rest even.
        let mode = if rng.chance(0.005) {
            15
        } else {
            rng.range(0, 20)
        };
        match mode {
            0..=6 => valid,
            7..=9 => {
                let cut = rng.range(0, valid.len() as u64 + 1) as usize;
                valid.truncate(cut);
                valid
            }
            10..=12 => {
                for _ in 0..rng.range(1, 6) {
                    if !valid.is_empty() {
                        let at = rng.range(0, valid.len() as u64) as usize;
                        valid[at] ^= 1 << rng.range(0, 8);
                    }
                }
                valid
            }
            13..=14 => (0..rng.range(0, 512))
                .map(|_| rng.next_u64() as u8)
                .collect(),
            15..=16 => {
                // A field of megabytes (over the 4 MB limit about half the time).
                let field = rng.range(1, 16) as u32;
                key(&mut valid, field, 2);
                let len = rng.range(1 << 20, 8 << 20) as usize;
                varint(&mut valid, len as u64);
                valid.resize(valid.len() + len, b'x');
                valid
            }
            17..=18 => {
                // A length prefix longer than what follows.
                key(&mut valid, rng.range(1, 16) as u32, 2);
                varint(
                    &mut valid,
                    *rng.pick(&[u64::MAX, 1 << 40, 1000]).expect("items"),
                );
                valid.extend_from_slice(b"short");
                valid
            }
            _ => Vec::new(),
        }
    }

    fn message(&self, rng: &mut Rng, name: &str, depth: u32, out: &mut Vec<u8>) {
        let Some(m) = self.messages.get(name) else {
            return;
        };
        for f in &m.field {
            if !rng.chance(0.7) {
                continue;
            }
            let n = if f.label() == Label::Repeated {
                rng.range(0, 5)
            } else {
                1
            };
            for _ in 0..n {
                self.field(rng, f, depth, out);
            }
        }
    }

    fn field(&self, rng: &mut Rng, f: &FieldDescriptorProto, depth: u32, out: &mut Vec<u8>) {
        let number = f.number() as u32;
        match f.r#type() {
            Type::Double | Type::Fixed64 | Type::Sfixed64 => {
                key(out, number, 1);
                out.put_u64_le(edge(rng));
            }
            Type::Float | Type::Fixed32 | Type::Sfixed32 => {
                key(out, number, 5);
                out.put_u32_le(edge(rng) as u32);
            }
            Type::String | Type::Bytes => {
                key(out, number, 2);
                let text = text(rng);
                varint(out, text.len() as u64);
                out.extend_from_slice(&text);
            }
            Type::Message => {
                let mut inner = Vec::new();
                if depth < 4 {
                    self.message(rng, f.type_name(), depth + 1, &mut inner);
                }
                key(out, number, 2);
                varint(out, inner.len() as u64);
                out.extend_from_slice(&inner);
            }
            Type::Group => {}
            _ => {
                key(out, number, 0);
                varint(out, edge(rng));
            }
        }
    }
}

fn collect(messages: &mut HashMap<String, DescriptorProto>, scope: &str, m: &DescriptorProto) {
    let name = format!("{scope}.{}", m.name());
    for nested in &m.nested_type {
        collect(messages, &name, nested);
    }
    messages.insert(name, m.clone());
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An integer a handler may not expect: zero, small, the limits of each width, a
/// negative number, or anything.
fn edge(rng: &mut Rng) -> u64 {
    const EDGES: [u64; 10] = [
        0,
        1,
        2,
        7,
        255,
        65_535,
        u32::MAX as u64,
        i64::MAX as u64,
        u64::MAX,
        (-1i64) as u64,
    ];
    if rng.chance(0.7) {
        *rng.pick(&EDGES).expect("edges")
    } else {
        rng.next_u64() >> rng.range(0, 64)
    }
}

/// A string or bytes value: a plausible one, empty, long, or not UTF-8.
fn text(rng: &mut Rng) -> Vec<u8> {
    match rng.range(0, 8) {
        0 => Vec::new(),
        1 => b"127.0.0.1:34801".to_vec(),
        2 => b"temp".to_vec(),
        3 => vec![0xff, 0xfe, b'a', 0x80],
        4 => vec![b'a'; rng.range(1_000, 100_000) as usize],
        5 => b"server-info".to_vec(),
        _ => (0..rng.range(0, 40))
            .map(|_| rng.range(0x20, 0x7f) as u8)
            .collect(),
    }
}

/// A codec that sends and receives message bodies as they are.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; buf.remaining()];
        buf.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// Sends `body` to `rpc` on `channel` and waits up to `timeout` for the answer (for a
/// streaming RPC: its first message). Returns the status the server answered with
/// (`Ok` for a success); an `Err` means no answer came in time.
pub async fn send(
    channel: Channel,
    rpc: &Rpc,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<tonic::Code, tokio::time::error::Elapsed> {
    let path = PathAndQuery::try_from(rpc.path()).expect("a valid path");
    let call = async move {
        let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(64 << 20);
        if let Err(e) = grpc.ready().await {
            return Status::unavailable(e.to_string()).code();
        }
        if rpc.streaming {
            match grpc
                .server_streaming(Request::new(body), path, RawCodec)
                .await
            {
                Ok(mut stream) => match stream.get_mut().message().await {
                    Ok(_) => tonic::Code::Ok,
                    Err(s) => s.code(),
                },
                Err(s) => s.code(),
            }
        } else {
            match grpc.unary(Request::new(body), path, RawCodec).await {
                Ok(_) => tonic::Code::Ok,
                Err(s) => s.code(),
            }
        }
    };
    tokio::time::timeout(timeout, call).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_has_every_rpc_and_most_valid_cases_decode() {
        let schema = Schema::load();
        let count = |proto: &str| {
            proto
                .lines()
                .filter(|l| l.trim_start().starts_with("rpc "))
                .count()
        };
        let declared = count(include_str!("../proto/ballast/v1/meta.proto"))
            + count(include_str!("../proto/ballast/v1/replica.proto"))
            + count(include_str!("../proto/ballast/v1/cli.proto"));
        assert_eq!(schema.rpcs.len(), declared);
        let beacon = schema.rpcs.iter().find(|r| r.method == "Beacon").unwrap();
        assert_eq!(beacon.path(), "/ballast.v1.Meta/Beacon");
        assert!(
            schema
                .rpcs
                .iter()
                .any(|r| r.streaming && r.method == "Learn")
        );
        let mut rng = Rng::new(7);
        let (mut decoded, mut tried) = (0, 0);
        for _ in 0..300 {
            let mut body = Vec::new();
            schema.message(&mut rng, &beacon.input, 0, &mut body);
            tried += 1;
            if crate::pb::BeaconRequest::decode(body.as_slice()).is_ok() {
                decoded += 1;
            }
        }
        assert!(
            decoded * 2 > tried,
            "{decoded} of {tried} valid beacons decode"
        );
    }
}
