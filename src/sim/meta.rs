//! The simulation's meta server: the real [`MetaState`] over a store that survives its
//! restarts and can be made to fail, driven on the simulation's clock.

use std::time::{Duration, Instant};

use crate::meta::config::MetaConfig;
use crate::meta::faulty_store::FaultyStore;
use crate::meta::state::MetaState;
use crate::model::MetaLevel;

/// The simulated meta server.
pub struct SimMeta {
    /// Its state.
    pub state: MetaState,
    /// Running.
    pub up: bool,
    /// Its store.
    pub store: FaultyStore,
    /// The instant the simulation's time 0 maps to.
    base: Instant,
}

/// The simulation's meta configuration: 100 ms beacons, 800 ms leases, 1 s grace, cure
/// every 200 ms; replicas dropped for 500 ms are replaced.
pub fn sim_config() -> MetaConfig {
    MetaConfig {
        beacon_interval: Duration::from_millis(100),
        lease: Duration::from_millis(800),
        grace: Duration::from_millis(1000),
        lb_interval: Duration::from_millis(200),
        action_timeout: Duration::from_secs(10),
        assign_delay: Duration::from_millis(500),
        level_on_start: MetaLevel::Lively,
        min_live_node_count_for_unfreeze: 2,
        ..MetaConfig::default()
    }
}

impl Default for SimMeta {
    fn default() -> SimMeta {
        SimMeta::new()
    }
}

impl SimMeta {
    /// A fresh meta server at simulated time 0.
    pub fn new() -> SimMeta {
        let store = FaultyStore::new();
        let base = Instant::now();
        let state = MetaState::open(sim_config(), Box::new(store.clone()), base).expect("opens");
        SimMeta {
            state,
            up: true,
            store,
            base,
        }
    }

    /// The instant of simulated time `ms`.
    pub fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// Restarts the meta server at `ms` on its store (its level and settings reset).
    pub fn restart(&mut self, ms: u64) {
        let now = self.at(ms);
        match MetaState::open(sim_config(), Box::new(self.store.clone()), now) {
            Ok(state) => {
                self.state = state;
                self.up = true;
            }
            Err(e) => tracing::warn!("simulated meta server cannot restart: {e}"),
        }
    }
}
