//! An in-process transport for tests of the group: members register under their address,
//! and each member sends through its own view of the router, so a member can be cut off in
//! both directions. A seeded generator drops, delays (and so reorders) and duplicates
//! messages on demand.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::network::Transport;

/// Whatever answers a member's messages.
#[tonic::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Answers one encoded request.
    async fn handle(&self, request: Vec<u8>) -> Vec<u8>;
}

#[derive(Default)]
struct Faults {
    cut: BTreeSet<String>,
    drop_percent: u64,
    duplicate_percent: u64,
    max_delay_ms: u64,
    rng: u64,
}

impl Faults {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic from the seed.
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The router every member of an in-process group registers with.
#[derive(Default)]
pub struct MemRouter {
    handlers: Mutex<HashMap<String, Arc<dyn Handler>>>,
    faults: Mutex<Faults>,
}

impl MemRouter {
    /// A router without faults whose generator starts from `seed`.
    pub fn new(seed: u64) -> Arc<MemRouter> {
        let router = MemRouter::default();
        router.faults.lock().unwrap().rng = seed;
        Arc::new(router)
    }

    /// Routes messages for `address` to `handler` (replacing a previous one: a restart).
    pub fn register(&self, address: &str, handler: Arc<dyn Handler>) {
        self.handlers
            .lock()
            .unwrap()
            .insert(address.to_string(), handler);
    }

    /// Stops routing to `address` (the member is down).
    pub fn unregister(&self, address: &str) {
        self.handlers.lock().unwrap().remove(address);
    }

    /// Cuts `address` off from everyone, both ways, until [`MemRouter::heal`].
    pub fn cut(&self, address: &str) {
        self.faults.lock().unwrap().cut.insert(address.to_string());
    }

    /// Reconnects every member that was cut off.
    pub fn heal(&self) {
        self.faults.lock().unwrap().cut.clear();
    }

    /// Drops `drop_percent`% and duplicates `duplicate_percent`% of messages, and delays each
    /// by up to `max_delay_ms` (so later messages may overtake earlier ones).
    pub fn set_faults(&self, drop_percent: u64, duplicate_percent: u64, max_delay_ms: u64) {
        let mut f = self.faults.lock().unwrap();
        f.drop_percent = drop_percent;
        f.duplicate_percent = duplicate_percent;
        f.max_delay_ms = max_delay_ms;
    }

    /// The transport member `from` sends through.
    pub fn transport(self: &Arc<MemRouter>, from: &str) -> Arc<dyn Transport> {
        Arc::new(MemTransport {
            router: self.clone(),
            from: from.to_string(),
        })
    }
}

struct MemTransport {
    router: Arc<MemRouter>,
    from: String,
}

#[tonic::async_trait]
impl Transport for MemTransport {
    async fn send(&self, to: &str, request: Vec<u8>) -> io::Result<Vec<u8>> {
        let (dropped, duplicate, delay) = {
            let mut f = self.router.faults.lock().unwrap();
            if f.cut.contains(&self.from) || f.cut.contains(to) {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("{} is cut off from {to}", self.from),
                ));
            }
            let dropped = f.next() % 100 < f.drop_percent;
            let duplicate = f.next() % 100 < f.duplicate_percent;
            let delay = if f.max_delay_ms == 0 {
                0
            } else {
                f.next() % (f.max_delay_ms + 1)
            };
            (dropped, duplicate, delay)
        };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if dropped {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("a message to {to} was dropped"),
            ));
        }
        let handler = self.router.handlers.lock().unwrap().get(to).cloned();
        let Some(handler) = handler else {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("nothing listens at {to}"),
            ));
        };
        if duplicate {
            let _ = handler.handle(request.clone()).await;
        }
        Ok(handler.handle(request).await)
    }
}
