//! The data plane: what runs on worker lcores, once per packet or per burst.
//!
//! - [`worker`]: the poll loop (RX burst → classify → govern → L2 rewrite → TX);
//! - [`classify`]: one PROTOCOL.md drop reason per rejected packet, or a frame to govern;
//! - [`counters`]: per-worker counters, published once per burst;
//! - [`reason`]: the stable names of the drop reasons.

pub mod classify;
pub mod counters;
pub mod reason;
pub mod worker;
