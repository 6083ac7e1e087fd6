//! # tachyon-bridge
//!
//! DPDK-free shared-memory bridge between Tachyon clients (Rust, later Python) and the
//! appliance. See `README.md` in this crate for the region layout and the protocols.
//!
//! ## Appliance side (one region, one worker per shard)
//!
//! ```no_run
//! use tachyon_bridge::{Layout, Region, monotonic_ns};
//! let region = Region::create("/dev/shm/tachyon-rte.bridge", Layout::default(), 0o660, None)?;
//! let mut consumer = region.ingress_consumer(0).expect("once per shard"); // move to worker 0
//! let mut fanout = region.fanout(0).expect("once per shard");             // worker 0 too
//! // worker loop, once per poll round:
//! fanout.refresh();
//! consumer.drain(256, monotonic_ns(), |m| fanout.deliver_one(m.topic, m.sender, m.payload));
//! fanout.flush();
//! // control lcore, periodically:
//! region.reap_dead_subscribers()?;
//! let _stats = region.stats();
//! # Ok::<(), tachyon_bridge::BridgeError>(())
//! ```
//!
//! ## Client side
//!
//! ```no_run
//! use tachyon_bridge::Bridge;
//! let bridge = Bridge::connect(Bridge::default_path("rte"))?;
//! let report = bridge.publish_batch(&[7, 8], &[1, 1], b"helloworld", &[0, 5, 10])?;
//! assert!(report.refused_shards.is_empty(), "backpressure on {:?}", report.refused_shards);
//! let mut sub = bridge.subscribe(Some(&[7]))?;
//! if let Some(batch) = sub.poll(Some(std::time::Duration::from_millis(10)))? {
//!     println!("{} messages", batch.len());
//! }
//! # Ok::<(), tachyon_bridge::BridgeError>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// Under loom only the ring core is built; the mapping-side users of some helpers are not.
#![cfg_attr(loom, allow(dead_code))]

pub(crate) mod sync;

#[cfg(not(loom))]
mod client;
#[cfg(not(loom))]
mod egress;
mod error;
#[cfg(not(loom))]
mod layout;
#[cfg(not(loom))]
mod region;
mod ring;
#[cfg(not(loom))]
mod shm;

#[cfg(loom)]
pub mod loom_model;
// The heap ring also backs deterministic unit tests of the ring protocol.
#[cfg(all(test, not(loom)))]
#[allow(dead_code)] // the loom-only helpers
mod loom_model;

#[cfg(not(loom))]
pub use client::{Batch, Bridge, OwnedBatch, PublishReport, Subscription};
pub use error::{BridgeError, LayoutError};
#[cfg(not(loom))]
pub use layout::{Geometry, HEADER_BYTES, Header, LAYOUT_VERSION, Layout, MAGIC, MAX_FILTER_TOPICS};
#[cfg(not(loom))]
pub use region::{
    DEFAULT_UNBLOCK_TIMEOUT, IngressConsumer, Region, RegionStats, ShardStats, SlotStats, SubscriberFanout,
};
pub use ring::{DrainReport, Message};
#[cfg(not(loom))]
pub use shm::monotonic_ns;
