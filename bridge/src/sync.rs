//! Atomics shim: `loom`'s model-checked atomics under `cfg(loom)`, `std`'s otherwise.
//!
//! The ring protocol code in [`crate::ring`] only uses the types re-exported here, so
//! the loom model (`tests/loom.rs`) checks the very code path the appliance runs.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicI32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

pub(crate) use std::sync::atomic::Ordering;
