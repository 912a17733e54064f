//! Ballast: a distributed key-value store run the way Apache Pegasus is run.
//!
//! # Architecture
//!
//! - A **meta server** ([`meta`]) owns membership and partition placement. Replica
//!   servers beacon to it; a node silent for longer than the grace period is UNALIVE.
//!   Tables and partition configurations are durable (written through a
//!   [`meta::store::MetaStore`] before a change is acknowledged); the meta level and
//!   runtime settings are not, as in Pegasus.
//! - **Replica servers** ([`replica`]) hold replicas: each a redb store and a durable
//!   prepare log, replicated with PacificA (the primary orders, logs and prepares writes;
//!   it commits when every secondary has logged them; new replicas learn a snapshot and
//!   the log after it). They learn their assignments from beacon replies and stop serving
//!   when their lease (renewed by acknowledged beacons) runs out.
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

pub mod client;
pub mod data;
pub mod error;
pub mod local;
pub mod meta;
pub mod model;
pub mod pb;
pub mod remote;
pub mod replica;
pub mod server;
pub mod shell;
pub mod sim;
pub mod timeutil;

pub use error::{Error, Result};
