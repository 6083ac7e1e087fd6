//! Borrowing Python buffer-protocol objects as Rust slices, with clear errors.
//!
//! The slices point into memory owned by the exporting Python object. They stay valid
//! while the buffer view (held by these structs) is alive: the exporter cannot resize or
//! free it (e.g. a `bytearray` refuses to resize while exported). Callers must not mutate
//! the arrays from another thread during a call; that is documented on `publish_batch`.

use std::borrow::Cow;

use pyo3::buffer::{PyBuffer, PyUntypedBuffer};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

fn describe(obj: &Bound<'_, PyAny>) -> String {
    let ty = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    match obj.getattr("dtype") {
        Ok(d) => format!("{ty} of dtype {}", d.str().map(|s| s.to_string()).unwrap_or_default()),
        Err(_) => ty,
    }
}

fn untyped(obj: &Bound<'_, PyAny>, name: &str, want: &str) -> PyResult<PyUntypedBuffer> {
    PyUntypedBuffer::get(obj).map_err(|e| {
        PyTypeError::new_err(format!(
            "{name} must be {want} (an object supporting the buffer protocol), got {}: {e}",
            describe(obj)
        ))
    })
}

/// A 1-D C-contiguous array of `T` borrowed from Python.
pub struct Slice<T: pyo3::buffer::Element> {
    buf: PyBuffer<T>,
}

// SAFETY: the view is only read through `as_slice`; PyBuffer<T> is Send + Sync itself.
impl<T: pyo3::buffer::Element> Slice<T> {
    /// Borrow `obj` as `T` elements, or raise `TypeError` naming `name` and `want`.
    pub fn get(obj: &Bound<'_, PyAny>, name: &str, want: &str) -> PyResult<Self> {
        let raw = untyped(obj, name, want)?;
        let fmt = raw.format().to_string_lossy().into_owned();
        let isz = raw.item_size();
        let buf = raw.into_typed::<T>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{name} must be {want}, got {} (buffer format {fmt:?}, {isz}-byte items)",
                describe(obj)
            ))
        })?;
        Self::check_shape(buf.dimensions(), buf.is_c_contiguous(), name)?;
        Ok(Slice { buf })
    }

    fn check_shape(dims: usize, contiguous: bool, name: &str) -> PyResult<()> {
        if dims != 1 {
            return Err(PyValueError::new_err(format!("{name} must be one-dimensional, got {dims} dimensions")));
        }
        if !contiguous {
            return Err(PyValueError::new_err(format!("{name} must be C-contiguous (use numpy.ascontiguousarray)")));
        }
        Ok(())
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        match self.buf.as_slice_ptr() {
            // SAFETY: the buffer is C-contiguous, 1-D, format- and alignment-checked by
            // `into_typed`, and alive as long as `self`. We only read it.
            Some(p) => unsafe { p.as_ref() },
            None => &[],
        }
    }
}

/// Raw bytes of any C-contiguous buffer, whatever its element format (a NumPy array of
/// any dtype, `bytes`, `bytearray`, `memoryview`, a pyarrow `Buffer`).
pub struct Bytes {
    buf: PyUntypedBuffer,
}

impl Bytes {
    /// Borrow the bytes of `obj`, or raise `TypeError` naming `name`.
    pub fn get(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Self> {
        let buf = untyped(obj, name, "a bytes-like object")?;
        if !buf.is_c_contiguous() {
            return Err(PyValueError::new_err(format!(
                "{name} must be C-contiguous (use numpy.ascontiguousarray or bytes(...))"
            )));
        }
        Ok(Bytes { buf })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        let len = self.buf.len_bytes();
        if len == 0 {
            return &[];
        }
        // SAFETY: a C-contiguous buffer covers `len_bytes` bytes from `buf_ptr`, alive as
        // long as `self`; we only read it.
        unsafe { std::slice::from_raw_parts(self.buf.buf_ptr() as *const u8, len) }
    }
}

/// Offsets in any of the integer types Arrow and NumPy use.
pub enum Offsets {
    /// uint64 (used as is).
    U64(Slice<u64>),
    /// int64 (Arrow LargeBinary).
    I64(Slice<i64>),
    /// uint32.
    U32(Slice<u32>),
    /// int32 (Arrow Binary).
    I32(Slice<i32>),
}

impl Offsets {
    /// Borrow `obj` as offsets, or raise `TypeError` naming `name`.
    pub fn get(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Self> {
        const WANT: &str = "an int32, int64, uint32 or uint64 array";
        let raw = untyped(obj, name, WANT)?;
        let fmt = raw.format().to_string_lossy().into_owned();
        let isz = raw.item_size();
        let kind = fmt.trim_start_matches(['@', '=', '<']);
        let is_signed = matches!(kind, "b" | "h" | "i" | "l" | "q" | "n");
        let is_unsigned = matches!(kind, "B" | "H" | "I" | "L" | "Q" | "N");
        drop(raw);
        let bad = || {
            PyTypeError::new_err(format!(
                "{name} must be {WANT}, got {} (buffer format {fmt:?}, {isz}-byte items)",
                describe(obj)
            ))
        };
        Ok(match (is_signed, is_unsigned, isz) {
            (false, true, 8) => Offsets::U64(Slice::get(obj, name, WANT)?),
            (true, false, 8) => Offsets::I64(Slice::get(obj, name, WANT)?),
            (false, true, 4) => Offsets::U32(Slice::get(obj, name, WANT)?),
            (true, false, 4) => Offsets::I32(Slice::get(obj, name, WANT)?),
            _ => return Err(bad()),
        })
    }

    /// Number of offsets.
    pub fn len(&self) -> usize {
        match self {
            Offsets::U64(s) => s.as_slice().len(),
            Offsets::I64(s) => s.as_slice().len(),
            Offsets::U32(s) => s.as_slice().len(),
            Offsets::I32(s) => s.as_slice().len(),
        }
    }

    /// The offsets as u64, borrowed when they already are; negative values are an error.
    pub fn to_u64(&self) -> Result<Cow<'_, [u64]>, String> {
        fn signed<T: Copy + Into<i64>>(s: &[T]) -> Result<Cow<'_, [u64]>, String> {
            s.iter()
                .enumerate()
                .map(|(i, &v)| {
                    let v: i64 = v.into();
                    u64::try_from(v).map_err(|_| format!("offsets[{i}]={v} is negative"))
                })
                .collect::<Result<Vec<u64>, String>>()
                .map(Cow::Owned)
        }
        match self {
            Offsets::U64(s) => Ok(Cow::Borrowed(s.as_slice())),
            Offsets::U32(s) => Ok(Cow::Owned(s.as_slice().iter().map(|&v| u64::from(v)).collect())),
            Offsets::I64(s) => signed(s.as_slice()),
            Offsets::I32(s) => signed(s.as_slice()),
        }
    }
}
