//! `tachyon._testing.Appliance`: an in-process stand-in for the appliance, for unit tests.
//!
//! It creates a bridge region and runs one background thread that, for every shard,
//! drains the ingress ring and fans every message out to the subscribers (what the real
//! appliance's workers do, minus governance and the wire). A shard can be paused to fill
//! its ring and provoke backpressure.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use numpy::PyArray1;
use pyo3::prelude::*;
use tachyon_bridge::{Layout, Region, monotonic_ns};

use crate::to_py;

struct Shared {
    stop: AtomicBool,
    paused: Vec<AtomicBool>,
    drained: Vec<AtomicU64>,
}

/// In-process test appliance: `Appliance(path, shards=1, ingress_ring_bytes=1<<20,
/// subscriber_slots=8, subscriber_ring_bytes=1<<20, max_message_bytes=65535)`.
///
/// Creates the bridge region at `path` and a thread draining every shard and delivering
/// every message to every matching subscriber. For tests only. `pause(shard)` stops
/// draining a shard (its ring fills up), `resume(shard)` restarts it. `close()` (or
/// leaving the `with` block) stops the thread and removes the region file.
#[pyclass(module = "tachyon._tachyon", name = "_Appliance", frozen)]
pub struct Appliance {
    path: PathBuf,
    shards: u32,
    shared: Arc<Shared>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

#[pymethods]
impl Appliance {
    #[new]
    #[pyo3(signature = (path, shards=1, ingress_ring_bytes=1<<20, subscriber_slots=8, subscriber_ring_bytes=1<<20, max_message_bytes=65535))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        shards: u32,
        ingress_ring_bytes: u32,
        subscriber_slots: u32,
        subscriber_ring_bytes: u32,
        max_message_bytes: u32,
    ) -> PyResult<Self> {
        let layout = Layout { shards, ingress_ring_bytes, subscriber_slots, subscriber_ring_bytes, max_message_bytes };
        let p = path.clone();
        let region = py.detach(move || Region::create(&p, layout, 0o600, None)).map_err(to_py)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            paused: (0..shards).map(|_| AtomicBool::new(false)).collect(),
            drained: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        });
        let mut consumers: Vec<_> = (0..shards).map(|s| region.ingress_consumer(s).expect("fresh region")).collect();
        let mut fanouts: Vec<_> = (0..shards).map(|s| region.fanout(s).expect("fresh region")).collect();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tachyon-test-appliance".into())
            .spawn(move || {
                let mut idle = Duration::from_micros(20);
                let mut last_reap = Instant::now();
                while !sh.stop.load(Ordering::Acquire) {
                    let mut work = 0usize;
                    for s in 0..shards as usize {
                        if sh.paused[s].load(Ordering::Acquire) {
                            continue;
                        }
                        let f = &mut fanouts[s];
                        // Re-read the subscribers only once the drain has read a message, as
                        // the appliance does: a subscriber that published right after
                        // subscribing is then already in the table. Refreshing before the
                        // drain lost such a shard's messages when the two calls fell between.
                        let mut refreshed = false;
                        let r = consumers[s].drain(4096, monotonic_ns(), |m| {
                            if !refreshed {
                                f.refresh();
                                refreshed = true;
                            }
                            f.deliver_one(m.topic, m.sender, m.payload)
                        });
                        if !refreshed {
                            // Still acknowledge reclaimed slots on an idle round.
                            f.refresh();
                        }
                        f.flush();
                        sh.drained[s].fetch_add(r.delivered as u64, Ordering::Relaxed);
                        work += r.delivered;
                    }
                    if last_reap.elapsed() > Duration::from_millis(10) {
                        let _ = region.reap_dead_subscribers();
                        last_reap = Instant::now();
                    }
                    if work == 0 {
                        std::thread::sleep(idle);
                        idle = (idle * 2).min(Duration::from_millis(1));
                    } else {
                        idle = Duration::from_micros(20);
                    }
                }
                drop(consumers);
                drop(fanouts);
                drop(region); // unlinks the file
            })
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("spawn appliance thread: {e}")))?;
        Ok(Appliance { path, shards, shared, thread: std::sync::Mutex::new(Some(thread)) })
    }

    /// Path of the region file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Number of shards.
    #[getter]
    fn shards(&self) -> u32 {
        self.shards
    }

    /// Stop draining `shard` (its ingress ring fills; publishers see backpressure).
    fn pause(&self, shard: u32) -> PyResult<()> {
        self.flag(shard)?.store(true, Ordering::Release);
        Ok(())
    }

    /// Resume draining `shard`.
    fn resume(&self, shard: u32) -> PyResult<()> {
        self.flag(shard)?.store(false, Ordering::Release);
        Ok(())
    }

    /// Messages drained so far, per shard (uint64 array).
    fn drained<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        PyArray1::from_vec(py, self.shared.drained.iter().map(|d| d.load(Ordering::Relaxed)).collect())
    }

    /// Stop the drain thread and remove the region file. Idempotent.
    fn close(&self, py: Python<'_>) {
        self.shared.stop.store(true, Ordering::Release);
        let t = self.thread.lock().unwrap().take();
        if let Some(t) = t {
            py.detach(move || {
                let _ = t.join();
            });
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let running = self.thread.lock().unwrap().is_some();
        format!(
            "<tachyon._testing.Appliance path={:?} shards={} {}>",
            self.path.display().to_string(),
            self.shards,
            if running { "running" } else { "stopped" }
        )
    }
}

impl Appliance {
    fn flag(&self, shard: u32) -> PyResult<&AtomicBool> {
        self.shared.paused.get(shard as usize).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!("no shard {shard} (shards={})", self.shards))
        })
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.get_mut().unwrap().take() {
            let _ = t.join();
        }
    }
}
