//! The process's signal handlers, installed once, first thing (before the
//! config is read and before EAL starts), so that no signal meets its
//! default action while the appliance starts:
//!
//! - SIGINT and SIGTERM set the stop flag the control loop watches; a second
//!   one, while the first is being handled (a hung shutdown), exits at once
//!   with a message and status 128 + the signal number. One that comes
//!   within `SAME_STOP` of the first is the same request delivered twice:
//!   `timeout` sends its signal to the process and then to its process
//!   group, and a terminal's Ctrl-C plus a supervisor's SIGTERM can cross;
//! - SIGHUP sets the reload flag governance polls (a SIGHUP during start-up
//!   becomes a reload once the appliance runs).

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A stop signal this soon after the first one asks for the same stop.
/// Short enough that a person pressing Ctrl-C again at a hung shutdown is
/// heard; long enough to cover two deliveries of one request.
const SAME_STOP: Duration = Duration::from_millis(250);

/// The flags the handlers set.
#[derive(Clone)]
pub struct Signals {
    pub stop: Arc<AtomicBool>,
    pub sighup: Arc<AtomicBool>,
}

static INSTALLED: OnceLock<Signals> = OnceLock::new();

/// Installs the handlers (once per process) and returns their flags.
/// The error names the signal whose handler could not be installed.
pub fn install() -> Result<Signals, (&'static str, std::io::Error)> {
    if let Some(s) = INSTALLED.get() {
        return Ok(s.clone());
    }
    let signals = Signals { stop: Arc::new(AtomicBool::new(false)), sighup: Arc::new(AtomicBool::new(false)) };
    signal_hook::flag::register(SIGHUP, signals.sighup.clone()).map_err(|e| ("SIGHUP", e))?;
    // A thread of its own, not the handler, acts on SIGINT and SIGTERM: it
    // can log, and it runs even when the control lcore is stuck.
    let mut stops = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| ("SIGINT/SIGTERM", e))?;
    let stop = signals.stop.clone();
    std::thread::Builder::new()
        .name("tachyon-signals".into())
        .spawn(move || {
            let mut first: Option<Instant> = None;
            for sig in stops.forever() {
                if first.is_some_and(|at| at.elapsed() < SAME_STOP) {
                    continue;
                }
                // Set already: by an earlier signal, or by the appliance
                // stopping on its own (a run duration); either way the
                // shutdown is under way and this asks to cut it short.
                if stop.swap(true, Ordering::SeqCst) {
                    second_signal(sig);
                }
                first = Some(Instant::now());
            }
        })
        .map_err(|e| ("SIGINT/SIGTERM", e))?;
    Ok(INSTALLED.get_or_init(|| signals).clone())
}

/// The SIGHUP flag, installing the handlers if nobody has yet.
pub fn sighup() -> Result<Arc<AtomicBool>, String> {
    install().map(|s| s.sighup).map_err(|(name, e)| format!("cannot install the {name} handler: {e}"))
}

/// A stop signal while the first is being handled (a hung shutdown): says
/// so, and ends the process at once, with status 128 + the signal number.
fn second_signal(sig: i32) {
    crate::log_err!("tachyon: second signal during shutdown, exiting now without a clean stop");
    // Bounded: half a second when nobody reads stderr.
    super::log::flush();
    // _exit(2): no atexit handlers, no stdio flushing that could block.
    signal_hook::low_level::exit(128 + sig);
}
