//! Simulated clients and the history checker. Each client owns some keys and writes
//! them in turn, each write a new version (`v1`, `v2`, …) under a request id that a
//! retry keeps; it also reads any key. A write is retried until acknowledged (an
//! unknown outcome is retried with the same id, so it is applied once). The history
//! checker confirms every read saw a version at least as new as the last one
//! acknowledged before the read began, and no newer than the last one begun before it
//! ended.

use std::collections::BTreeMap;

use crate::data::{encode_key, partition_index};
use crate::error::Error;
use crate::model::Gpid;
use crate::pb;
use crate::replica::core::Write;
use crate::sim::Sim;
use crate::sim::net::Body;

/// A client gives up on an operation after this long (ms).
const GIVE_UP_MS: u64 = 30_000;
/// An attempt without an answer is retried after this long (ms).
const ATTEMPT_MS: u64 = 300;
/// A refused attempt is retried after this long (ms).
const RETRY_MS: u64 = 20;

/// One key's writes: when each version was begun and acknowledged.
#[derive(Debug, Clone, Default)]
struct KeyLog {
    invoked: Vec<u64>,
    acked: Vec<Option<u64>>,
}

/// Every write and read the clients made, for the linearizability check.
#[derive(Debug, Clone, Default)]
pub struct History {
    keys: BTreeMap<Vec<u8>, KeyLog>,
    /// Reads checked.
    pub reads: u64,
    /// Writes acknowledged.
    pub acked: u64,
    /// Writes given up (outcome never learned).
    pub abandoned: u64,
}

/// The value a version is written as.
pub fn value_of(version: u64) -> Vec<u8> {
    format!("v{version}").into_bytes()
}

/// The version a value holds.
pub fn version_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value)
        .ok()?
        .strip_prefix('v')?
        .parse()
        .ok()
}

impl History {
    /// Version `version` of `key` was begun at `t`.
    pub fn invoke(&mut self, key: &[u8], version: u64, t: u64) {
        let log = self.keys.entry(key.to_vec()).or_default();
        while log.invoked.len() < version as usize {
            log.invoked.push(t);
            log.acked.push(None);
        }
    }

    /// Version `version` of `key` was acknowledged at `t`.
    pub fn ack(&mut self, key: &[u8], version: u64, t: u64) {
        if let Some(slot) = self
            .keys
            .get_mut(key)
            .and_then(|l| l.acked.get_mut(version as usize - 1))
            && slot.is_none()
        {
            *slot = Some(t);
            self.acked += 1;
        }
    }

    /// The last version of `key` acknowledged at or before `t`.
    pub fn acked_by(&self, key: &[u8], t: u64) -> u64 {
        self.keys.get(key).map_or(0, |l| {
            l.acked
                .iter()
                .enumerate()
                .filter(|(_, a)| a.is_some_and(|a| a <= t))
                .map(|(i, _)| i as u64 + 1)
                .max()
                .unwrap_or(0)
        })
    }

    fn invoked_by(&self, key: &[u8], t: u64) -> u64 {
        self.keys
            .get(key)
            .map_or(0, |l| l.invoked.iter().filter(|i| **i <= t).count() as u64)
    }

    /// Checks a read of `key` begun at `begun` that saw version `got` (0: absent) at
    /// `ended`.
    pub fn check_read(
        &mut self,
        key: &[u8],
        got: u64,
        begun: u64,
        ended: u64,
    ) -> Result<(), String> {
        self.reads += 1;
        let floor = self.acked_by(key, begun);
        let ceil = self.invoked_by(key, ended);
        if got < floor || got > ceil {
            return Err(format!(
                "read of {} begun at {begun} ms saw version {got}, but version {floor} was acknowledged before and {ceil} was the newest begun",
                String::from_utf8_lossy(key)
            ));
        }
        Ok(())
    }

    /// Every key with its last acknowledged version.
    pub fn last_acked(&self) -> Vec<(Vec<u8>, u64)> {
        self.keys
            .keys()
            .map(|k| (k.clone(), self.acked_by(k, u64::MAX)))
            .collect()
    }
}

/// What a client is doing.
#[derive(Debug, Clone)]
pub enum OpKind {
    /// Writing version `version` of its key `key`, as write `seq`.
    Write {
        /// Index into the client's keys.
        key: usize,
        /// The version written.
        version: u64,
        /// The request's sequence number.
        seq: u64,
    },
    /// Reading a key (hash key).
    Read(Vec<u8>),
}

/// A client's operation in progress.
#[derive(Debug, Clone)]
pub struct Op {
    /// Its number.
    pub id: u64,
    /// What it does.
    pub kind: OpKind,
    /// When it began.
    pub begun: u64,
    /// When the last attempt was sent.
    pub sent: u64,
}

/// A simulated client.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its name on the network.
    pub name: String,
    /// Its request-id client number.
    pub id: u64,
    /// The hash keys it writes.
    pub keys: Vec<Vec<u8>>,
    /// The version last written to each.
    pub versions: Vec<u64>,
    /// The next request sequence number.
    pub next_seq: u64,
    /// The operation in progress.
    pub op: Option<Op>,
    /// The next operation number.
    pub next_op: u64,
    /// Whether it starts new operations.
    pub active: bool,
    /// Each partition's primary as last looked up (refreshed only after a failure, as
    /// a real client's cached route).
    routes: BTreeMap<Gpid, String>,
}

impl Client {
    /// Client `i` with `keys` keys of its own.
    pub fn new(i: usize, keys: usize) -> Client {
        Client {
            name: format!("c{i}"),
            id: 1000 + i as u64,
            keys: (0..keys)
                .map(|k| format!("c{i}k{k}").into_bytes())
                .collect(),
            versions: vec![0; keys],
            next_seq: 1,
            op: None,
            next_op: 1,
            active: true,
            routes: BTreeMap::new(),
        }
    }
}

/// The store key of a client's hash key.
pub fn store_key(hash_key: &[u8]) -> Vec<u8> {
    encode_key(hash_key, b"s").unwrap_or_default()
}

impl Sim {
    pub(super) fn gpid_of(&self, hash_key: &[u8]) -> Gpid {
        Gpid::new(
            self.app_id,
            partition_index(hash_key, b"", self.cfg.partitions),
        )
    }

    /// Starts a write of the next version of the client's key `key`.
    pub(super) fn begin_write(&mut self, c: usize, key: usize) {
        let now = self.now;
        let client = &mut self.clients[c];
        client.versions[key] += 1;
        let version = client.versions[key];
        let seq = client.next_seq;
        client.next_seq += 1;
        let id = client.next_op;
        client.next_op += 1;
        let hash_key = client.keys[key].clone();
        client.op = Some(Op {
            id,
            kind: OpKind::Write { key, version, seq },
            begun: now,
            sent: now,
        });
        self.history.invoke(&hash_key, version, now);
        self.send_op(c);
    }

    /// Starts a read of `hash_key`.
    pub(super) fn begin_read(&mut self, c: usize, hash_key: Vec<u8>) {
        let now = self.now;
        let client = &mut self.clients[c];
        let id = client.next_op;
        client.next_op += 1;
        client.op = Some(Op {
            id,
            kind: OpKind::Read(hash_key),
            begun: now,
            sent: now,
        });
        self.send_op(c);
    }

    /// Sends (or sends again) the client's operation to its partition's primary.
    pub(super) fn send_op(&mut self, c: usize) {
        let now = self.now;
        let Some(op) = self.clients[c].op.clone() else {
            return;
        };
        self.clients[c].op.as_mut().expect("op").sent = now;
        let client = self.clients[c].clone();
        let hash_key = match &op.kind {
            OpKind::Write { key, .. } => client.keys[*key].clone(),
            OpKind::Read(k) => k.clone(),
        };
        let gpid = self.gpid_of(&hash_key);
        let primary = match self.clients[c].routes.get(&gpid).cloned() {
            Some(p) => p,
            None => match self.route(gpid) {
                Ok(p) => {
                    self.clients[c].routes.insert(gpid, p.clone());
                    p
                }
                Err(e) => {
                    self.op_failed(c, e);
                    return;
                }
            },
        };
        let body = match op.kind {
            OpKind::Write { key, version, seq } => Body::Write(
                gpid,
                Write {
                    mutations: vec![pb::Mutation {
                        hash_key: client.keys[key].clone(),
                        sort_key: b"s".to_vec(),
                        value: value_of(version),
                        ..Default::default()
                    }],
                    request: Some(pb::RequestId {
                        client: client.id,
                        seq,
                        acked_below: seq,
                    }),
                },
                op.id,
            ),
            OpKind::Read(k) => Body::Read(gpid, store_key(&k), op.id),
        };
        self.send(&client.name, &primary, body);
    }

    /// Where the client sends requests for `gpid`: its primary as the meta server sees
    /// it now (a client's refreshed route).
    fn route(&self, gpid: Gpid) -> Result<String, Error> {
        if !self.meta.up {
            return Err(Error::Unavailable("meta server down".into()));
        }
        if self.meta.state.ddd_pidxs(gpid.app_id).contains(&gpid.pidx) {
            return Err(Error::PartitionLost(format!(
                "partition {gpid} lost every replica"
            )));
        }
        let config = self
            .meta
            .state
            .partition(gpid)
            .map_err(|e| Error::NotFound(e.to_string()))?;
        config
            .primary
            .clone()
            .ok_or_else(|| Error::NotPrimary(format!("{gpid} has no primary")))
    }

    /// An attempt failed: the operation is retried later, or given up.
    fn op_failed(&mut self, c: usize, e: Error) {
        let now = self.now;
        self.last_error = Some(e.to_string());
        let Some(op) = self.clients[c].op.clone() else {
            return;
        };
        // Any failure may mean the route is stale: look it up again next time.
        self.clients[c].routes.clear();
        let give_up = matches!(e, Error::PartitionLost(_)) || now >= op.begun + GIVE_UP_MS;
        if give_up {
            if let OpKind::Write { .. } = op.kind {
                self.history.abandoned += 1;
            }
            self.trace(format!(
                "{}: op {} given up: {e}",
                self.clients[c].name, op.id
            ));
            self.clients[c].op = None;
        } else if let Some(op) = self.clients[c].op.as_mut() {
            // Retried soon (the next wake after this), with the same request id.
            op.sent = (now + RETRY_MS).saturating_sub(ATTEMPT_MS);
        }
    }

    /// A client's answer arrived.
    pub(super) fn on_client_reply(&mut self, name: &str, body: Body) {
        let now = self.now;
        let Some(c) = self.clients.iter().position(|x| x.name == name) else {
            return;
        };
        let Some(op) = self.clients[c].op.clone() else {
            return;
        };
        match (body, &op.kind) {
            (Body::WriteReply(id, result), OpKind::Write { key, version, .. }) if id == op.id => {
                let hash_key = self.clients[c].keys[*key].clone();
                match result {
                    Ok(decree) => {
                        self.history.ack(&hash_key, *version, now);
                        let gpid = self.gpid_of(&hash_key);
                        let top = self.acked_decree.entry(gpid).or_default();
                        *top = (*top).max(decree);
                        self.clients[c].op = None;
                    }
                    Err(e) => self.op_failed(c, e),
                }
            }
            (Body::ReadReply(id, result), OpKind::Read(k)) if id == op.id => match result {
                Ok(value) => {
                    self.last_read = Some((id, value.clone()));
                    let got = value.as_deref().map_or(Some(0), version_of);
                    let verdict = match got {
                        Some(v) => self.history.check_read(k, v, op.begun, now),
                        None => Err(format!(
                            "read of {} saw a value no client wrote",
                            String::from_utf8_lossy(k)
                        )),
                    };
                    if let Err(v) = verdict {
                        self.violation(v);
                    }
                    self.clients[c].op = None;
                }
                Err(e) => self.op_failed(c, e),
            },
            _ => {}
        }
    }

    /// A client's turn: start an operation, or retry one that went unanswered.
    pub(super) fn client_wake(&mut self, c: usize) {
        let now = self.now;
        match self.clients[c].op.clone() {
            Some(op) if now >= op.sent + ATTEMPT_MS => {
                self.clients[c].routes.clear();
                if now >= op.begun + GIVE_UP_MS {
                    self.op_failed(c, Error::Timeout("no answer".into()));
                } else {
                    self.send_op(c);
                }
            }
            Some(_) => {}
            None if self.clients[c].active => {
                if self.rng.chance(0.6) {
                    let key = self.rng.range(0, self.clients[c].keys.len() as u64) as usize;
                    self.begin_write(c, key);
                } else {
                    let all: Vec<Vec<u8>> =
                        self.clients.iter().flat_map(|x| x.keys.clone()).collect();
                    if let Some(k) = self.rng.pick(&all).cloned() {
                        self.begin_read(c, k);
                    }
                }
            }
            None => {}
        }
    }
}
