//! The flags the control lcore raises for the workers (stop, link state),
//! read by each worker once per poll round.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// State the control lcore writes and workers read once per poll round.
#[derive(Default)]
pub struct ControlFlags {
    stop: AtomicBool,
    /// Bit p set when port p's link is up.
    links_up: AtomicU64,
}

impl ControlFlags {
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub fn set_links_up(&self, mask: u64) {
        self.links_up.store(mask, Ordering::Relaxed);
    }

    pub fn links_up(&self) -> u64 {
        self.links_up.load(Ordering::Relaxed)
    }
}
