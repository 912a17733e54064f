//! Ballast: a distributed key-value store run the way Apache Pegasus is run.
//!
//! # Architecture
//!
//! - A **meta server** ([`meta`]) owns membership and partition placement. Replica
//!   servers beacon to it with their data directory's identity (an incarnation: a new
//!   one on a known address is a new, empty node); a node silent for longer than the
//!   grace period is UNALIVE. Tables and partition configurations are durable: a writer
//!   thread writes them through a [`meta::store::MetaStore`], never under the state's
//!   lock, and nothing is acknowledged, assigned or shown before it is durable. The meta
//!   level and runtime settings are not durable, as in Pegasus.
//! - **Replica servers** ([`replica`]) hold replicas: each a redb store and a segmented
//!   prepare log, replicated with PacificA by one synchronous state machine per replica
//!   ([`replica::core`]: inputs in, effects out, one task owns it, one I/O thread does
//!   its disk work). A replica acknowledges only what is durable, serves only data it
//!   verifiably holds (a replica it does not hold learns first), and stops serving when
//!   its lease (renewed by acknowledged beacons) runs out. A partition whose every
//!   replica is lost stays unavailable, and says so, until its last members report or an
//!   operator decides (Pegasus's DDD).
//! - [`sim`] runs the real replica cores and meta state in one process on a seeded
//!   network and disks that drop, delay, duplicate and reorder messages, crash, wipe and
//!   fail, checking invariants after every step.
//! - The **admin shell** ([`shell`]) is a REPL and a script runner over gRPC
//!   ([`client`]: the meta client and the partition-routing data client), with Pegasus's
//!   verbs, flags and output columns.
//! - [`local`] runs a whole cluster in-process for `shell --local`.
//!
//! # Layout
//!
//! - [`error`]: the one error enum, mapped to gRPC statuses and shell exit codes;
//! - [`model`]: levels, statuses, gpids, partition configurations, health rules;
//! - [`remote`]: the remote-command registry both server kinds answer;
//! - [`server`]: serving with a shutdown handle;
//! - [`pb`]: the generated gRPC code from `proto/`.

#![warn(missing_docs)]

pub mod atomic;
pub mod client;
pub mod config_file;
pub mod data;
pub mod error;
pub mod fuzz_rpc;
pub mod local;
pub mod meta;
pub mod model;
pub mod pb;
pub mod remote;
pub mod replica;
pub mod server;
pub mod shell;
pub mod sim;
pub mod stats;
pub mod timeutil;

pub use error::{Error, Result};
