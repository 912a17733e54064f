//! The simulated network: messages between nodes, the meta server and clients, each
//! delivered after a random delay (so they reorder), or dropped, duplicated, or cut off
//! by a partition between two endpoints.

use std::collections::BTreeSet;

use crate::error::Error;
use crate::model::Gpid;
use crate::pb;
use crate::replica::core::sessions::Sessions;
use crate::replica::core::{
    Chunk, ConfigRequest, ConfigView, LearnPlan, LearnRequest, Prepare, PrepareReply, Write,
};

/// What a message carries.
#[derive(Debug, Clone)]
pub enum Body {
    /// Primary to replica.
    Prepare(Gpid, Prepare),
    /// Replica to primary (`None`: the replica does not hold the partition).
    PrepareReply(Gpid, Option<PrepareReply>),
    /// Learner to primary.
    Learn(Gpid, LearnRequest),
    /// Primary to learner, for its attempt: the plan, and a snapshot's records and
    /// sessions if any.
    LearnAnswer(
        Gpid,
        u64,
        Result<LearnPlan, Error>,
        Option<(Chunk, Sessions)>,
    ),
    /// Node to meta server, with the time it was sent.
    Beacon(pb::BeaconRequest, u64),
    /// Meta server to node, for the beacon sent at that time.
    BeaconReply(pb::BeaconReply, u64),
    /// Primary to meta server: a configuration change at a ballot.
    Ask(Gpid, i64, ConfigRequest),
    /// Meta server to primary.
    Answer(Gpid, Result<(bool, ConfigView), Error>),
    /// Client to primary: a write, tagged with the client's operation number.
    Write(Gpid, Write, u64),
    /// Client to primary: a read of one key.
    Read(Gpid, Vec<u8>, u64),
    /// Primary to client.
    WriteReply(u64, Result<u64, Error>),
    /// Primary to client: the value, if any.
    ReadReply(u64, Result<Option<Vec<u8>>, Error>),
}

impl Body {
    /// The message's kind, as scripts name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Prepare(..) => "Prepare",
            Body::PrepareReply(..) => "PrepareReply",
            Body::Learn(..) => "Learn",
            Body::LearnAnswer(..) => "LearnAnswer",
            Body::Beacon(..) => "Beacon",
            Body::BeaconReply(..) => "BeaconReply",
            Body::Ask(..) => "Ask",
            Body::Answer(..) => "Answer",
            Body::Write(..) => "Write",
            Body::Read(..) => "Read",
            Body::WriteReply(..) => "WriteReply",
            Body::ReadReply(..) => "ReadReply",
        }
    }
}

/// A message in flight.
#[derive(Debug, Clone)]
pub struct Msg {
    /// The sender.
    pub from: String,
    /// The receiver.
    pub to: String,
    /// What it carries.
    pub body: Body,
}

/// The network's faults.
#[derive(Debug, Clone, Default)]
pub struct Net {
    /// Probability a message is lost.
    pub drop: f64,
    /// Probability a message arrives twice.
    pub dup: f64,
    /// Delivery delay range, ms.
    pub min_delay: u64,
    /// See `min_delay`.
    pub max_delay: u64,
    cut: BTreeSet<(String, String)>,
    /// (from, to, kind): messages of this kind on this link are lost.
    blocked: BTreeSet<(String, String, String)>,
}

impl Net {
    /// A network delivering everything within 1–5 ms.
    pub fn new() -> Net {
        Net {
            min_delay: 1,
            max_delay: 5,
            ..Net::default()
        }
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&mut self, a: &str, b: &str) {
        self.cut.insert((a.to_string(), b.to_string()));
        self.cut.insert((b.to_string(), a.to_string()));
    }

    /// Loses every message of `kind` (e.g. `Answer`) from `from` to `to`.
    pub fn block(&mut self, from: &str, to: &str, kind: &str) {
        self.blocked
            .insert((from.to_string(), to.to_string(), kind.to_string()));
    }

    /// Whether a message of `kind` from `from` to `to` is blocked.
    pub fn is_blocked(&self, from: &str, to: &str, kind: &str) -> bool {
        self.blocked
            .contains(&(from.to_string(), to.to_string(), kind.to_string()))
    }

    /// Restores every link, and stops dropping and duplicating.
    pub fn heal(&mut self) {
        self.cut.clear();
        self.blocked.clear();
        self.drop = 0.0;
        self.dup = 0.0;
    }

    /// Whether `from` cannot reach `to`.
    pub fn is_cut(&self, from: &str, to: &str) -> bool {
        self.cut.contains(&(from.to_string(), to.to_string()))
    }

    /// The cut links, one line each (for status output).
    pub fn describe(&self) -> Vec<String> {
        self.cut
            .iter()
            .filter(|(a, b)| a < b)
            .map(|(a, b)| format!("{a} x {b}"))
            .collect()
    }
}
