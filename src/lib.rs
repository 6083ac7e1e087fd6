//! Tachyon: a DPDK data plane that governs a message bus at the packet level.
//!
//! The crate is laid out by plane (the module map is in README.md, "How it is built"):
//!
//! - [`dataplane`]: the worker lcores' loop, classification, counters, drop reasons;
//! - [`governance`]: rules, topic buckets and sender quotas (pure Rust, per-worker shards);
//! - [`control`]: the control lcore: reconciliation, reloads, metrics, telemetry, report;
//! - [`bridge`]: the appliance's side of the shared-memory bridge (local publishers and subscribers);
//! - [`wire`]: the one owner of the wire format (Ethernet, IPv4, UDP, Tachyon frame);
//! - [`dpdk`]: the only FFI: safe types over EAL, ports, mbufs, mempools, RCU, telemetry;
//! - [`topology`]: the host's cores and NUMA nodes, and the placement plan;
//! - [`traffic`]: the traffic model of `tachyon-gen` (frames, mixes, malformed packets);
//! - the shell: [`cli`], [`config`] and [`startup`] (the steps from arguments to a running appliance).
//!
//! `unsafe` code is denied everywhere but in [`dpdk`].
#![deny(unsafe_code)]
// The crate's docs are for the people who work on it (`cargo doc
// --document-private-items`): module overviews link the private steps and
// constants they describe.
#![allow(rustdoc::private_intra_doc_links)]

pub mod bridge;
pub mod cli;
pub mod config;
pub mod control;
pub mod dataplane;
#[allow(unsafe_code)]
pub mod dpdk;
pub mod governance;
pub mod startup;
pub mod topology;
pub mod traffic;
pub mod wire;
