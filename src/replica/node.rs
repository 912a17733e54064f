//! What every replica of a server shares: its name, its clock, its lease with the meta
//! server, its connections to peers and the meta server, the copy-rate limit, the
//! core's timings, the request counters, the copies waiting for a learner's copy link,
//! injected disk faults (tests), and the last learning's numbers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use crate::client::MetaClient;
use crate::error::Result;
use crate::pb;
use crate::replica::core::CoreConfig;
use crate::replica::faults::Faults;
use crate::replica::lease::Lease;
use crate::replica::limiter::CopyLimiter;
use crate::replica::links::Links;

/// How long a replica server waits on another one to connect.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// A replica server's shared context.
pub struct Node {
    address: String,
    epoch: Instant,
    lease: Mutex<Lease>,
    peers: Mutex<HashMap<String, Channel>>,
    /// Prepares to peers, one stream per peer.
    pub links: Links,
    meta: MetaClient,
    /// The snapshot copy budget (`nfs.max_copy_rate_megabytes_per_disk`).
    pub limiter: CopyLimiter,
    /// Snapshot copies waiting for their learner's copy link.
    pub copy_tickets: std::sync::Arc<crate::replica::copy_link::Tickets>,
    /// Disk faults injected by a test.
    pub faults: std::sync::Arc<Faults>,
    /// The cores' timings.
    pub core_config: CoreConfig,
    /// Requests answered, by table and kind (`server_stat`, `app_stat`).
    pub stats: crate::stats::Stats,
    learned: Mutex<Option<(u64, f64)>>,
    /// Since the server started: (snapshots learned, their bytes, catch-ups from a
    /// primary's log).
    learn_totals: Mutex<LearnTotals>,
}

impl Node {
    /// The context of the server at `address`.
    pub fn new(
        address: String,
        meta: MetaClient,
        faults: std::sync::Arc<Faults>,
        core_config: CoreConfig,
    ) -> Node {
        Node {
            address,
            epoch: Instant::now(),
            lease: Mutex::new(Lease::default()),
            peers: Mutex::new(HashMap::new()),
            links: Links::default(),
            copy_tickets: Default::default(),
            meta,
            limiter: CopyLimiter::default(),
            faults,
            core_config,
            stats: crate::stats::Stats::default(),
            learned: Mutex::new(None),
            learn_totals: Mutex::new(LearnTotals::default()),
        }
    }

    /// The node's address: its name in the cluster.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The cores' clock: milliseconds since the server started (monotonic).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether the lease allows serving now.
    pub fn lease_valid(&self) -> bool {
        self.lease.lock().expect("lease").is_valid(Instant::now())
    }

    /// Renews the lease after an acknowledged beacon sent at `sent`.
    pub fn renew_lease(&self, sent: Instant, length: Duration) {
        self.lease.lock().expect("lease").renew(sent, length);
    }

    /// The meta client for configuration changes.
    pub fn meta(&self) -> &MetaClient {
        &self.meta
    }

    /// A data-plane client of the replica server at `addr` (channels are reused).
    pub fn peer(&self, addr: &str) -> Result<pb::replica_client::ReplicaClient<Channel>> {
        let mut peers = self.peers.lock().expect("peers");
        let channel = match peers.get(addr) {
            Some(c) => c.clone(),
            None => {
                let c = crate::client::channel(addr, PEER_TIMEOUT)?;
                peers.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(pb::replica_client::ReplicaClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }

    /// Records a completed learning (for `server-info`): its bytes, how long until
    /// they were durable, and how they came.
    pub fn record_learned(&self, bytes: u64, elapsed: Duration, came: Came) {
        *self.learned.lock().expect("learned") = Some((bytes, elapsed.as_secs_f64()));
        let mut t = self.learn_totals.lock().expect("learn totals");
        t.snapshots += 1;
        t.bytes += bytes;
        t.base_files += u64::from(came != Came::Records);
        t.copy_links += u64::from(came == Came::FileOnLink);
    }

    /// Records a learning the primary answered from its log (nothing copied).
    pub fn record_learned_from_log(&self) {
        self.learn_totals.lock().expect("learn totals").from_log += 1;
    }

    /// Since the server started.
    pub fn learn_totals(&self) -> LearnTotals {
        *self.learn_totals.lock().expect("learn totals")
    }

    /// (bytes, seconds) of the last snapshot learned.
    pub fn learned(&self) -> Option<(u64, f64)> {
        *self.learned.lock().expect("learned")
    }
}

/// What a replica server learned since it started.
#[derive(Debug, Clone, Copy, Default)]
pub struct LearnTotals {
    /// Snapshots learned.
    pub snapshots: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Catch-ups from a primary's log.
    pub from_log: u64,
    /// Snapshots that came as the primary's base file, byte for byte.
    pub base_files: u64,
    /// Of those, the ones whose file came on a copy link.
    pub copy_links: u64,
}

/// How a snapshot came to a learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Came {
    /// As records.
    Records,
    /// As the primary's base file, in the learning stream.
    File,
    /// As the primary's base file, on a copy link.
    FileOnLink,
}
