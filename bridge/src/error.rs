//! Error types.

use std::path::PathBuf;

/// A [`crate::Layout`] field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid layout field `{field}`: {reason}")]
pub struct LayoutError {
    /// Name of the offending field.
    pub field: &'static str,
    /// Why it is invalid.
    pub reason: String,
}

/// Everything that can go wrong talking to the bridge.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// No bridge file at the path.
    #[error("no appliance bridge at {}: is tachyon running?", path.display())]
    NotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The bridge file exists but no appliance holds its liveness lock.
    #[error("the appliance that created the bridge is gone (no liveness lock held)")]
    ApplianceGone,
    /// The file was written by a different layout version.
    #[error("bridge layout version {found}, this library speaks {expected}")]
    LayoutVersion {
        /// Version found in the header.
        found: u32,
        /// Version this library implements.
        expected: u32,
    },
    /// The header is not a valid bridge header.
    #[error("bad bridge header: {0}")]
    BadHeader(String),
    /// Another live appliance owns the region.
    #[error("another appliance holds {}", path.display())]
    AlreadyOwned {
        /// The contested path.
        path: PathBuf,
    },
    /// The layout requested by the creator is invalid.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A batch was rejected before anything was published.
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// Every subscriber slot is taken.
    #[error("no free subscriber slot ({slots} slots, all in use)")]
    NoFreeSlot {
        /// Number of slots in the region.
        slots: u32,
    },
    /// Too many topics in a subscription filter.
    #[error("a subscription filter holds at most {max} topics, got {got}")]
    TooManyTopics {
        /// Topics requested.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// An operating system call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl BridgeError {
    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        BridgeError::Io { op: op.into(), source }
    }
    pub(crate) fn last_os(op: impl Into<String>) -> Self {
        Self::io(op, std::io::Error::last_os_error())
    }
}
