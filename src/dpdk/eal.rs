//! EAL start-up, lcore enumeration and launching work on lcores.

use super::{EalError, sys};
use std::ffi::{CStr, CString, c_int, c_void};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A DPDK logical core id.
pub type LcoreId = u32;

/// Proof that EAL is initialised. Only one exists per process; the other DPDK
/// wrappers take `&Eal` so they cannot be used before init.
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises EAL with `args` (the program name first, then EAL arguments).
    pub fn init(args: &[String]) -> Result<Eal, EalError> {
        let owned: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| EalError::ArgumentNul(a.clone())))
            .collect::<Result<_, _>>()?;
        // EAL may keep pointers into argv (e.g. for device arguments), so the
        // strings live for the rest of the process. A one-off, start-up leak.
        let owned: &'static [CString] = Box::leak(owned.into_boxed_slice());
        let mut argv: Vec<*mut std::ffi::c_char> = owned.iter().map(|s| s.as_ptr() as *mut _).collect();
        argv.push(std::ptr::null_mut());
        let argv: &'static mut [*mut std::ffi::c_char] = Box::leak(argv.into_boxed_slice());
        // SAFETY: argv is a NULL-terminated array of valid C strings that
        // outlives the process; argc counts the non-NULL entries.
        let rc = unsafe { sys::rte_eal_init(owned.len() as c_int, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(EalError::Init(super::last_error()));
        }
        let eal = Eal { _private: () };
        restrict_sockets(&eal.runtime_dir());
        Ok(eal)
    }

    /// EAL's runtime directory (`/var/run/dpdk/<file-prefix>`), where its
    /// telemetry and multi-process sockets live.
    pub fn runtime_dir(&self) -> PathBuf {
        // SAFETY: EAL is initialised; it returns a NUL-terminated string it owns for the process's life.
        let dir = unsafe { CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
        PathBuf::from(dir.to_string_lossy().into_owned())
    }

    /// The lcore that runs `main` (the control lcore).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: EAL is initialised (self exists).
        unsafe { sys::rte_get_main_lcore() }
    }

    /// Enabled lcores other than the main one, in increasing order.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        let mut id: u32 = u32::MAX; // rte_get_next_lcore(-1, …) starts at 0
        loop {
            // SAFETY: EAL is initialised; the call only reads its lcore table.
            id = unsafe { sys::rte_get_next_lcore(id, 1, 0) };
            if id >= sys::RTE_MAX_LCORE {
                return out;
            }
            out.push(id);
        }
    }

    /// Whether `lcore` was enabled by the EAL arguments (`-l`, `--lcores`, `-c`).
    pub fn lcore_enabled(&self, lcore: LcoreId) -> bool {
        if lcore >= sys::RTE_MAX_LCORE {
            return false;
        }
        // SAFETY: EAL is initialised and lcore is in range.
        unsafe { sys::rte_lcore_is_enabled(lcore) != 0 }
    }

    /// The NUMA socket of `lcore`'s CPU.
    pub fn lcore_socket(&self, lcore: LcoreId) -> u32 {
        // SAFETY: EAL is initialised; out-of-range ids return SOCKET_ID_ANY-ish values.
        unsafe { sys::rte_lcore_to_socket_id(lcore) }
    }

    /// The OS CPU id `lcore` runs on (its first CPU when it spans several).
    pub fn lcore_cpu(&self, lcore: LcoreId) -> i32 {
        // SAFETY: EAL is initialised.
        unsafe { sys::rte_lcore_to_cpu_id(lcore as c_int) }
    }

    /// Number of Ethernet ports EAL probed.
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is initialised.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// Releases EAL resources (hugepages, device state). Call last.
    pub fn cleanup(self) {
        // SAFETY: all ports are closed and all lcores have returned by now;
        // consuming self makes further DPDK calls through wrappers impossible.
        unsafe {
            sys::rte_eal_cleanup();
        }
    }
}

type LcoreJob = Box<dyn FnOnce() -> i32 + Send + 'static>;

extern "C" fn run_job(arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Box<LcoreJob> leaked by launch_on_lcore, handed to
    // exactly one lcore, so it is reclaimed exactly once here.
    let job: Box<LcoreJob> = unsafe { Box::from_raw(arg as *mut LcoreJob) };
    job()
}

/// Runs `job` on `lcore` (a worker lcore that is idle).
pub fn launch_on_lcore(_eal: &Eal, lcore: LcoreId, job: impl FnOnce() -> i32 + Send + 'static) -> Result<(), EalError> {
    let boxed: Box<LcoreJob> = Box::new(Box::new(job));
    let arg = Box::into_raw(boxed) as *mut c_void;
    // SAFETY: run_job matches lcore_function_t; arg stays valid until run_job frees it.
    let rc = unsafe { sys::rte_eal_remote_launch(Some(run_job), arg, lcore) };
    if rc != 0 {
        // SAFETY: the launch failed, so no lcore owns arg: reclaim it here.
        drop(unsafe { Box::from_raw(arg as *mut LcoreJob) });
        return Err(EalError::Launch { lcore, reason: super::error_text(rc) });
    }
    Ok(())
}

/// Waits until every worker lcore has returned from its job.
pub fn wait_all_lcores(_eal: &Eal) {
    // SAFETY: EAL is initialised; the call blocks the main lcore only.
    unsafe { sys::rte_eal_mp_wait_lcore() }
}

/// Owner and group only: the mode EAL's sockets get, as the bridge region does.
const SOCKET_MODE: u32 = 0o660;

/// Tightens every socket EAL created in `dir` (telemetry, multi-process) to
/// [`SOCKET_MODE`]. EAL binds them with the process umask, so under umask 0
/// anyone who can reach the directory could drive `/tachyon/reload` or
/// read counters; the directory is usually 0700, but that is not ours to
/// rely on (it may predate this run). A failure only warns.
fn restrict_sockets(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let is_socket = entry.file_type().is_ok_and(|t| t.is_socket());
        if is_socket
            && let Err(e) = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(SOCKET_MODE))
        {
            crate::log_err!("tachyon: WARNING: cannot restrict {} to {SOCKET_MODE:o}: {e}", entry.path().display());
        }
    }
}
