//! Typed errors of the DPDK wrappers. Each message reads as before (one line a
//! person can act on); the variants let a caller tell the cases apart.
//! Callers that still speak `String` convert with `?` (`From<…> for String`).

use super::LcoreId;
use thiserror::Error;

/// Why EAL did not start, or an lcore could not be launched.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EalError {
    #[error("EAL argument {0:?} contains NUL")]
    ArgumentNul(String),
    #[error("EAL initialisation failed: {0}")]
    Init(String),
    #[error("cannot launch on lcore {lcore}: {reason}")]
    Launch { lcore: LcoreId, reason: String },
}

/// Why a port could not be opened, configured or started.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortError {
    #[error("port {id} does not exist (EAL probed {probed} port(s))")]
    NotProbed { id: u16, probed: u16 },
    #[error("port {id}: cannot read device info: {reason}")]
    DeviceInfo { id: u16, reason: String },
    #[error(
        "port {id} ({name}) cannot do {rx} RX / {tx} TX queue(s): it supports at most {max_rx} RX and {max_tx} TX \
         (one queue per worker; use fewer workers or a device with more queues)"
    )]
    TooManyQueues { id: u16, name: String, rx: u16, tx: u16, max_rx: u16, max_tx: u16 },
    #[error("port {id}: configure with {rx} RX / {tx} TX queue(s) and MTU {mtu} failed: {reason}")]
    Configure { id: u16, rx: u16, tx: u16, mtu: u16, reason: String },
    #[error("port {id}: descriptor counts rejected: {reason}")]
    Descriptors { id: u16, reason: String },
    #[error("port {id}: RX queue {queue} has no mempool (given {pools} for {queues} queue(s))")]
    NoRxPool { id: u16, queue: u16, pools: usize, queues: u16 },
    #[error("port {id}: RX queue {queue} setup failed: {reason}")]
    RxQueueSetup { id: u16, queue: u16, reason: String },
    #[error("port {id}: TX queue {queue} setup failed: {reason}")]
    TxQueueSetup { id: u16, queue: u16, reason: String },
    #[error("port {id}: start failed: {reason}")]
    Start { id: u16, reason: String },
}

/// Why a packet-buffer pool could not be created.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MempoolError {
    #[error("mempool name {0:?} contains NUL")]
    NameNul(String),
    #[error("cannot create mempool {name} ({size} mbufs on socket {socket}): {reason}")]
    Create { name: String, size: u32, socket: i32, reason: String },
}

/// Why the RCU variable or a reader could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RcuError {
    #[error("cannot allocate the RCU variable ({size} bytes)")]
    Alloc { size: usize },
    #[error("rte_rcu_qsbr_init failed: {0}")]
    Init(String),
    #[error("RCU reader id {id} out of range (max {max})")]
    ReaderOutOfRange { id: u32, max: u32 },
    #[error("cannot register RCU reader {id}: {reason}")]
    Register { id: u32, reason: String },
}

/// Why a telemetry command could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TelemetryError {
    #[error("telemetry command {command:?}: want '/' then letters, digits, '_' or '/', at most {max} characters")]
    InvalidName { command: String, max: usize },
    #[error("telemetry command {command}: registration failed: {reason}")]
    Registration { command: String, reason: String },
}

macro_rules! into_string {
    ($($t:ty),*) => {$(
        impl From<$t> for String {
            fn from(e: $t) -> String {
                e.to_string()
            }
        }
    )*};
}
into_string!(EalError, PortError, MempoolError, RcuError, TelemetryError);
