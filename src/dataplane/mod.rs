//! The data plane: what runs on worker lcores, once per packet or per burst.
//!
//! - [`worker`]: the poll loop (RX burst → classify → govern → L2 rewrite → TX);
//! - [`classify`]: one PROTOCOL.md drop reason per rejected packet, or a frame to govern;
//! - [`routes`]: a worker's route table (default hop per ingress port, TX slot and MAC per egress port);
//! - [`control_flags`]: the stop and link-state flags the control lcore sets for the workers;
//! - [`counters`]: per-worker counters, published every 100 µs while busy;
//! - [`reason`]: the stable names of the drop reasons.

pub mod classify;
pub mod control_flags;
pub mod counters;
pub mod reason;
pub mod routes;
pub mod worker;
