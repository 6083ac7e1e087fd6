//! DPDK's own log lines (EAL, drivers, telemetry) through a function of
//! ours instead of stdio's `stderr`, which blocks on a full pipe: EAL logs
//! from the control lcore (start-up, hot-plug, errors) must not stall it.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

/// glibc's `cookie_io_functions_t` (not in the `libc` crate).
#[repr(C)]
struct CookieIoFunctions {
    read: Option<unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> isize>,
    write: Option<unsafe extern "C" fn(*mut c_void, *const c_char, usize) -> isize>,
    seek: Option<unsafe extern "C" fn(*mut c_void, *mut i64, c_int) -> c_int>,
    close: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
}

unsafe extern "C" {
    fn rte_openlog_stream(f: *mut libc::FILE) -> c_int;
    fn fopencookie(cookie: *mut c_void, mode: *const c_char, funcs: CookieIoFunctions) -> *mut libc::FILE;
}

static SINK: OnceLock<fn(&[u8])> = OnceLock::new();

unsafe extern "C" fn write_log(_cookie: *mut c_void, buf: *const c_char, size: usize) -> isize {
    if let Some(sink) = SINK.get() {
        // SAFETY: stdio hands us `size` readable bytes at `buf`.
        sink(unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), size) });
    }
    size as isize
}

/// Sends every DPDK log message to `sink` from now on (call before
/// [`super::Eal::init`] to catch start-up messages too). False when the
/// stream cannot be made; DPDK then keeps writing to `stderr`.
pub fn route_log(sink: fn(&[u8])) -> bool {
    if SINK.set(sink).is_err() {
        return true;
    }
    let funcs = CookieIoFunctions { read: None, write: Some(write_log), seek: None, close: None };
    // SAFETY: a write-only cookie stream with a valid callback and no cookie
    // state; it lives for the rest of the process.
    let f = unsafe { fopencookie(std::ptr::null_mut(), c"w".as_ptr(), funcs) };
    if f.is_null() {
        return false;
    }
    // SAFETY: f is a valid stream; line buffering, one message at a time.
    // rte_openlog_stream may be called before rte_eal_init.
    unsafe {
        libc::setvbuf(f, std::ptr::null_mut(), libc::_IOLBF, 0);
        rte_openlog_stream(f) == 0
    }
}
