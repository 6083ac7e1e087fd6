//! The bridge plane: local programs publish into the workers' shards and
//! subscribe to what the appliance admits, through one shared-memory region.
//!
//! The ring protocol, the region's layout and the client live in the
//! DPDK-free `tachyon-bridge` crate (`bridge/`), shared with the Rust client
//! and the Python package. This module is the appliance's side of it:
//!
//! - [`config`]: the `[bridge]` section and the region's default path;
//! - [`stage`]: the worker's bridge stage (drain, frame, govern, send, fan out);
//! - [`host`]: the region's creation at start-up and what the control lcore
//!   does with it (reaping dead subscribers, stats for metrics and telemetry).

pub mod config;
pub mod host;
pub mod stage;

pub use config::{BridgeConfig, BridgeSettings, default_path};
pub use host::BridgeHost;
pub use stage::{BridgeEgress, BridgeStage, RoundContext};
