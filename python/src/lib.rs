//! `tachyon._tachyon`: the native part of the `tachyon` Python package.
//!
//! Thin PyO3 layer over `tachyon-bridge`: batches cross as NumPy arrays / buffers (never
//! one Python object per message) and the GIL is released while Rust copies.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyConnectionError, PyException, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tachyon_bridge::{Bridge as RBridge, BridgeError, OwnedBatch, Subscription as RSubscription};

mod buffers;
mod testing;

use buffers::{Bytes, Offsets, Slice};

create_exception!(
    _tachyon,
    ApplianceError,
    PyConnectionError,
    "The appliance is not there, is gone, or speaks another bridge layout version (a ConnectionError)."
);
create_exception!(
    _tachyon,
    BackpressureError,
    PyException,
    "At least one shard's ingress ring was full: that shard's part of the batch was refused, \
every other shard's part was accepted. Attributes: `accepted` (uint64 array, messages accepted \
per shard), `refused_shards` (list of int), `mask` (bool array over the batch: True = accepted)."
);

/// Map a bridge error to the Python exception the API promises.
pub(crate) fn to_py(e: BridgeError) -> PyErr {
    let msg = e.to_string();
    match e {
        BridgeError::NotFound { .. }
        | BridgeError::ApplianceGone
        | BridgeError::LayoutVersion { .. }
        | BridgeError::BadHeader(_)
        | BridgeError::AlreadyOwned { .. } => ApplianceError::new_err(msg),
        BridgeError::InvalidBatch(_) | BridgeError::TooManyTopics { .. } | BridgeError::Layout(_) => {
            PyValueError::new_err(msg)
        }
        BridgeError::NoFreeSlot { .. } => PyRuntimeError::new_err(msg),
        BridgeError::Io { .. } => PyOSError::new_err(msg),
        #[allow(unreachable_patterns)]
        _ => PyRuntimeError::new_err(msg),
    }
}

fn closed_err() -> PyErr {
    PyValueError::new_err("operation on a closed Bridge")
}

/// A connection to the appliance's shared-memory bridge.
///
/// `Bridge(path=None)` maps the region the appliance created (default
/// `Bridge.default_path("rte")`, i.e. `/dev/shm/tachyon-rte.bridge`). Raises
/// `ApplianceError` (a `ConnectionError`) when there is no appliance at `path`, it is
/// gone, or it speaks another layout version.
///
/// Thread-safe: several threads may call `publish_batch` on one Bridge at once (the GIL
/// is released while Rust copies the batch into the ring). Use it as a context manager,
/// or call `close()`.
#[pyclass(module = "tachyon._tachyon", name = "Bridge", subclass, frozen)]
pub struct PyBridge {
    inner: Mutex<Option<Arc<RBridge>>>,
    path: PathBuf,
    shards: u32,
    max_message_bytes: u32,
    max_part_bytes: u64,
}

impl PyBridge {
    fn get(&self) -> PyResult<Arc<RBridge>> {
        self.inner.lock().unwrap().clone().ok_or_else(closed_err)
    }
}

#[pymethods]
impl PyBridge {
    #[new]
    #[pyo3(signature = (path=None))]
    fn new(py: Python<'_>, path: Option<PathBuf>) -> PyResult<Self> {
        let path = path.unwrap_or_else(|| RBridge::default_path("rte"));
        let p = path.clone();
        let b = py.detach(move || RBridge::connect(&p)).map_err(to_py)?;
        Ok(PyBridge {
            shards: b.shards(),
            max_message_bytes: b.max_message_bytes(),
            max_part_bytes: b.max_part_bytes(),
            inner: Mutex::new(Some(Arc::new(b))),
            path,
        })
    }

    /// The appliance's default bridge path for a DPDK file prefix:
    /// `/dev/shm/tachyon-<file_prefix>.bridge` (DPDK's default prefix is `rte`).
    #[staticmethod]
    #[pyo3(signature = (file_prefix="rte"))]
    fn default_path(file_prefix: &str) -> PathBuf {
        RBridge::default_path(file_prefix)
    }

    /// Path of the bridge region file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Number of shards; a message goes to shard `topic % shards`.
    #[getter]
    fn shards(&self) -> u32 {
        self.shards
    }

    /// Largest payload, in bytes, the appliance accepts.
    #[getter]
    fn max_message_bytes(&self) -> u32 {
        self.max_message_bytes
    }

    /// Largest shard part `publish_batch` accepts, in encoded bytes.
    ///
    /// A part is the messages of one batch that go to one shard; it takes 16 bytes plus,
    /// per message, its payload length plus 12 rounded up to a multiple of 8. A larger
    /// part is refused with `ValueError` before anything is published (split the batch).
    /// About the ingress ring size (minus 16 and the largest message's size), or half the
    /// ring with an appliance that predates split parts. A part near the limit needs an
    /// almost empty ring, so it meets backpressure more often than small parts.
    #[getter]
    fn max_part_bytes(&self) -> u64 {
        self.max_part_bytes
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().unwrap().is_none()
    }

    /// Whether the appliance still holds its liveness lock on the region.
    fn is_alive(&self) -> PyResult<bool> {
        Ok(self.get()?.is_alive())
    }

    /// Publish a batch of `n` messages in Arrow binary-column layout, without waiting.
    ///
    /// Message `i` has topic `topics[i]`, sender `senders[i]` and payload
    /// `payloads[offsets[i]:offsets[i+1]]`.
    ///
    /// - `topics`, `senders`: uint32 arrays (any buffer of format `I`) of length `n`.
    /// - `payloads`: any C-contiguous buffer (NumPy array of any dtype, read as bytes,
    ///   `bytes`, `bytearray`, `memoryview`, pyarrow `Buffer`).
    /// - `offsets`: `n + 1` ascending int32/int64/uint32/uint64 offsets into `payloads`.
    ///
    /// Messages go to shard `topic % shards`; each shard's part is accepted or refused
    /// whole, in order. Returns a uint64 array of messages accepted per shard. If a shard's
    /// ring is full, raises `BackpressureError` (with `.accepted`, `.refused_shards`,
    /// `.mask`); the other shards' messages are in. Invalid input raises `TypeError`
    /// (wrong type or dtype) or `ValueError` (lengths, offsets, a message over
    /// `max_message_bytes`, a shard's part over `max_part_bytes`) and publishes nothing. The GIL is released while the batch is copied: do not mutate
    /// the arrays from another thread during the call.
    fn publish_batch<'py>(
        &self,
        py: Python<'py>,
        topics: &Bound<'py, PyAny>,
        senders: &Bound<'py, PyAny>,
        payloads: &Bound<'py, PyAny>,
        offsets: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let bridge = self.get()?;
        let t = Slice::<u32>::get(topics, "topics", "a uint32 array")?;
        let s = Slice::<u32>::get(senders, "senders", "a uint32 array")?;
        let p = Bytes::get(payloads, "payloads")?;
        let o = Offsets::get(offsets, "offsets")?;
        let (ts, ss, ps) = (t.as_slice(), s.as_slice(), p.as_slice());
        let n = ts.len();
        if ss.len() != n {
            return Err(PyValueError::new_err(format!("senders has {} elements, topics has {n}", ss.len())));
        }
        if o.len() != n + 1 {
            return Err(PyValueError::new_err(format!(
                "offsets must have len(topics) + 1 = {} elements, got {}",
                n + 1,
                o.len()
            )));
        }
        let res = py.detach(|| -> Result<_, String> {
            let os = o.to_u64()?;
            bridge.publish_batch(ts, ss, ps, &os).map_err(|e| match e {
                BridgeError::InvalidBatch(m) => m,
                other => other.to_string(),
            })
        });
        let report = match res {
            Ok(r) => r,
            Err(m) => return Err(PyValueError::new_err(m)),
        };
        let accepted = PyArray1::from_vec(py, report.accepted.clone());
        if report.refused_shards.is_empty() {
            return Ok(accepted);
        }
        let mask = PyArray1::from_vec(py, report.accepted_mask(ts));
        let err = BackpressureError::new_err(format!(
            "ingress ring full on shard(s) {:?}: their messages were refused, {} other message(s) accepted",
            report.refused_shards,
            report.accepted_total()
        ));
        let v = err.value(py);
        v.setattr("accepted", accepted)?;
        v.setattr("refused_shards", PyList::new(py, &report.refused_shards)?)?;
        v.setattr("mask", mask)?;
        Err(err)
    }

    /// Subscribe to `topics` (an iterable of ints, at most 64; `None` = every topic).
    ///
    /// Returns a `Subscription`; each poll gathers what every shard delivered since.
    #[pyo3(signature = (topics=None))]
    fn subscribe(&self, py: Python<'_>, topics: Option<Vec<u32>>) -> PyResult<PySubscription> {
        let bridge = self.get()?;
        let t = topics.clone();
        let sub = py.detach(move || bridge.subscribe(t.as_deref())).map_err(to_py)?;
        Ok(PySubscription { inner: Mutex::new(Some(sub)), topics, path: self.path.clone() })
    }

    /// Unmap the region. Idempotent; later calls raise `ValueError`. Subscriptions made
    /// from this Bridge keep working until they are closed themselves.
    fn close(&self) {
        self.inner.lock().unwrap().take();
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<tachyon.Bridge path={:?} shards={} max_message_bytes={} {}>",
            self.path.display().to_string(),
            self.shards,
            self.max_message_bytes,
            if self.closed() { "closed" } else { "open" }
        )
    }
}

/// A subscription: one subscriber slot of the appliance, one ring per shard.
///
/// `poll(timeout=None)` returns the next `Batch` or `None` on timeout. Close it (or use
/// `with`) to free the slot promptly; the appliance also reaps it when the process dies.
#[pyclass(module = "tachyon._tachyon", name = "Subscription", frozen)]
pub struct PySubscription {
    inner: Mutex<Option<RSubscription>>,
    topics: Option<Vec<u32>>,
    path: PathBuf,
}

/// One slice of the poll timeout spent with the GIL released; between slices, signals
/// (Ctrl-C) are checked.
const POLL_SLICE: Duration = Duration::from_millis(100);

#[pymethods]
impl PySubscription {
    /// Wait for messages and return them as a `Batch`.
    ///
    /// `timeout` in seconds: `None` waits until messages arrive, `0` only looks. Returns
    /// `None` when the timeout expires. Waiting sleeps with back-off (never spins) and
    /// releases the GIL. Raises `ApplianceError` when the appliance goes away.
    ///
    /// Zero-copy: the batch's arrays are the very buffers the messages were gathered into
    /// from the shared-memory rings, handed to NumPy without another copy. Each batch owns
    /// its memory: it stays valid for as long as you hold it (after later polls and after
    /// the subscription is closed), and a later poll never writes into it.
    #[pyo3(signature = (timeout=None))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyBatch>> {
        let deadline = match timeout {
            Some(t) if !t.is_finite() || t < 0.0 => {
                return Err(PyValueError::new_err(format!("timeout must be None or >= 0 seconds, got {t}")));
            }
            Some(t) => Some(Instant::now() + Duration::from_secs_f64(t)),
            None => None,
        };
        loop {
            let res = py.detach(|| -> Result<Option<OwnedBatch>, PyErr> {
                let mut g = self.inner.lock().unwrap();
                let sub = g.as_mut().ok_or_else(|| PyValueError::new_err("poll on a closed Subscription"))?;
                let slice = match deadline {
                    Some(d) => d.saturating_duration_since(Instant::now()).min(POLL_SLICE),
                    None => POLL_SLICE,
                };
                sub.poll_owned(Some(slice)).map_err(to_py)
            })?;
            if let Some(b) = res {
                // Zero-copy: each Vec moves into its NumPy array (`from_vec` wraps the
                // allocation, the array's base owns it and frees it with the array). The
                // subscription gathers the next poll into other vectors, so nothing ever
                // writes into memory a Batch holds.
                let OwnedBatch { topics, senders, offsets, payloads } = b;
                return Ok(Some(PyBatch {
                    topics: PyArray1::from_vec(py, topics).unbind(),
                    senders: PyArray1::from_vec(py, senders).unbind(),
                    offsets: PyArray1::from_vec(py, offsets).unbind(),
                    payloads: PyArray1::from_vec(py, payloads).unbind(),
                }));
            }
            if let Some(d) = deadline
                && Instant::now() >= d
            {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }

    /// Messages dropped for this subscriber because it did not read fast enough.
    #[getter]
    fn overflow(&self) -> PyResult<u64> {
        let g = self.inner.lock().unwrap();
        Ok(g.as_ref().ok_or_else(|| PyValueError::new_err("closed Subscription"))?.overflow())
    }

    /// The topics subscribed to (`None` = every topic).
    #[getter]
    fn topics(&self) -> Option<Vec<u32>> {
        self.topics.clone()
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().unwrap().is_none()
    }

    /// Release the subscriber slot. Idempotent.
    fn close(&self, py: Python<'_>) {
        let sub = self.inner.lock().unwrap().take();
        py.detach(move || drop(sub));
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
        let (slot, state) = match self.inner.lock().unwrap().as_ref() {
            Some(s) => (s.slot().to_string(), "open"),
            None => ("-".into(), "closed"),
        };
        let topics = match &self.topics {
            Some(t) => format!("{t:?}"),
            None => "all".into(),
        };
        format!("<tachyon.Subscription path={:?} slot={slot} topics={topics} {state}>", self.path.display().to_string())
    }
}

/// Messages from one `Subscription.poll`, as columns (Arrow binary layout).
///
/// `topics` (uint32), `senders` (uint32), `offsets` (uint64, `len + 1`) and `payloads`
/// (uint8) are zero-copy NumPy arrays over memory the batch owns (the vectors the poll
/// gathered into, moved into NumPy, not copied; each array's `base` keeps its buffer
/// alive). They are valid for as long as you hold them: after later polls and after the
/// subscription is closed; a later poll never writes into them. Message `i` is
/// `payloads[offsets[i]:offsets[i+1]]`; `batch.payload(i)` returns it as `bytes`.
#[pyclass(module = "tachyon._tachyon", name = "Batch", frozen)]
pub struct PyBatch {
    topics: Py<PyArray1<u32>>,
    senders: Py<PyArray1<u32>>,
    offsets: Py<PyArray1<u64>>,
    payloads: Py<PyArray1<u8>>,
}

#[pymethods]
impl PyBatch {
    /// Topic of each message (uint32 array).
    #[getter]
    fn topics(&self, py: Python<'_>) -> Py<PyArray1<u32>> {
        self.topics.clone_ref(py)
    }
    /// Sender of each message (uint32 array).
    #[getter]
    fn senders(&self, py: Python<'_>) -> Py<PyArray1<u32>> {
        self.senders.clone_ref(py)
    }
    /// `len + 1` ascending offsets into `payloads` (uint64 array).
    #[getter]
    fn offsets(&self, py: Python<'_>) -> Py<PyArray1<u64>> {
        self.offsets.clone_ref(py)
    }
    /// Every payload, concatenated (uint8 array).
    #[getter]
    fn payloads(&self, py: Python<'_>) -> Py<PyArray1<u8>> {
        self.payloads.clone_ref(py)
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        PyUntypedArrayMethods::len(self.topics.bind(py))
    }

    /// Payload of message `i` as `bytes` (negative `i` counts from the end).
    fn payload<'py>(&self, py: Python<'py>, i: isize) -> PyResult<Bound<'py, PyBytes>> {
        let n = self.__len__(py) as isize;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!("message {i} out of range for {n}")));
        }
        let o = self.offsets.bind(py).readonly();
        let o = o.as_slice()?;
        let p = self.payloads.bind(py).readonly();
        let p = p.as_slice()?;
        Ok(PyBytes::new(py, &p[o[j as usize] as usize..o[j as usize + 1] as usize]))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<tachyon.Batch len={} payload_bytes={}>",
            self.__len__(py),
            PyUntypedArrayMethods::len(self.payloads.bind(py))
        )
    }
}

/// Native part of the `tachyon` package (import `tachyon`, not this module).
#[pymodule]
fn _tachyon(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyBridge>()?;
    m.add_class::<PySubscription>()?;
    m.add_class::<PyBatch>()?;
    m.add_class::<testing::Appliance>()?;
    m.add("ApplianceError", py.get_type::<ApplianceError>())?;
    m.add("BackpressureError", py.get_type::<BackpressureError>())?;
    m.add("LAYOUT_VERSION", tachyon_bridge::LAYOUT_VERSION)?;
    Ok(())
}
