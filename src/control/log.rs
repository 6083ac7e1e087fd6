//! Output that can neither block nor kill the appliance.
//!
//! `println!` on the control lcore blocks when stdout is a full pipe (the
//! reader is slow or gone to sleep) and panics when it is a closed one
//! (`panic = "abort"` then takes the data plane with it). Lines go instead
//! through a bounded channel to one writer thread: a full channel drops the
//! line and counts it (the count is reported once there is room again), and
//! the writer ignores broken pipes and copes with descriptors left
//! non-blocking by whoever opened them. Only the writer ever waits on the
//! terminal or pipe, never the caller.
//!
//! Use [`crate::log_out!`] and [`crate::log_err!`] like `println!` and
//! `eprintln!`; call [`flush`] before the process exits.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Lines waiting for the writer before new ones are dropped.
const CAPACITY: usize = 4096;
/// [`flush`] gives up when the writer makes no progress for this long.
const FLUSH_STALL: Duration = Duration::from_millis(500);

/// Where a line goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

struct Sink {
    tx: SyncSender<(Stream, String)>,
    /// Lines queued, and lines the writer is done with (written or discarded).
    queued: AtomicU64,
    done: AtomicU64,
    /// Lines dropped because the channel was full: in total, and not yet reported.
    dropped: AtomicU64,
    unreported: AtomicU64,
}

static SINK: OnceLock<Option<Sink>> = OnceLock::new();

fn sink() -> Option<&'static Sink> {
    SINK.get_or_init(|| {
        let (tx, rx) = sync_channel(CAPACITY);
        std::thread::Builder::new().name("tachyon-log".into()).spawn(move || writer(rx)).ok()?;
        Some(Sink {
            tx,
            queued: AtomicU64::new(0),
            done: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
        })
    })
    .as_ref()
}

/// Queues `line` (a newline is added) for `stream`; never blocks. A full
/// queue drops the line and counts it.
pub fn emit(stream: Stream, mut line: String) {
    let Some(sink) = sink() else { return };
    let unreported = sink.unreported.swap(0, Ordering::Relaxed);
    if unreported > 0 {
        let note = format!("tachyon: WARNING: {unreported} line(s) of output dropped (output blocked)\n");
        if !send(sink, Stream::Err, note) {
            sink.unreported.fetch_add(unreported, Ordering::Relaxed);
        }
    }
    line.push('\n');
    if !send(sink, stream, line) {
        sink.dropped.fetch_add(1, Ordering::Relaxed);
        sink.unreported.fetch_add(1, Ordering::Relaxed);
    }
}

/// Queues `text` as is (DPDK's log lines, which carry their newline).
pub fn emit_raw(stream: Stream, text: String) {
    if let Some(sink) = sink()
        && !send(sink, stream, text)
    {
        sink.dropped.fetch_add(1, Ordering::Relaxed);
        sink.unreported.fetch_add(1, Ordering::Relaxed);
    }
}

fn send(sink: &Sink, stream: Stream, text: String) -> bool {
    // Counted first, so that flush never sees done > queued.
    sink.queued.fetch_add(1, Ordering::SeqCst);
    match sink.tx.try_send((stream, text)) {
        Ok(()) => true,
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            sink.queued.fetch_sub(1, Ordering::SeqCst);
            false
        }
    }
}

/// Lines dropped so far because output was blocked.
pub fn dropped() -> u64 {
    sink().map_or(0, |s| s.dropped.load(Ordering::Relaxed))
}

/// Waits until every queued line is written, or until the writer has made
/// no progress for half a second (a reader that stopped reading).
pub fn flush() {
    let Some(sink) = SINK.get().and_then(Option::as_ref) else { return };
    let target = sink.queued.load(Ordering::SeqCst);
    let mut last = sink.done.load(Ordering::SeqCst);
    let mut since = Instant::now();
    while last < target {
        std::thread::sleep(Duration::from_millis(1));
        let done = sink.done.load(Ordering::SeqCst);
        if done != last {
            (last, since) = (done, Instant::now());
        } else if since.elapsed() >= FLUSH_STALL {
            return;
        }
    }
}

fn writer(rx: Receiver<(Stream, String)>) {
    // Our own descriptors (dup'ed) for the same pipes or terminals: plain
    // unbuffered writes, no lock shared with `std::io::stdout`.
    let dup = |fd: BorrowedFd| fd.try_clone_to_owned().ok().map(File::from);
    let mut files = [dup(io::stdout().as_fd()), dup(io::stderr().as_fd())];
    for (stream, text) in rx {
        let file = &mut files[stream as usize];
        if let Some(f) = file
            && write_all(f, text.as_bytes()).is_err()
        {
            // EPIPE, EBADF...: this stream is gone for good.
            *file = None;
        }
        if let Some(sink) = SINK.get().and_then(Option::as_ref) {
            sink.done.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Writes everything, waiting for room when the descriptor was left
/// non-blocking by whoever opened it.
fn write_all(f: &mut impl Write, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match f.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Like `println!`, through the non-blocking sink.
#[macro_export]
macro_rules! log_out {
    ($($arg:tt)*) => {
        $crate::control::log::emit($crate::control::log::Stream::Out, format!($($arg)*))
    };
}

/// Like `eprintln!`, through the non-blocking sink.
#[macro_export]
macro_rules! log_err {
    ($($arg:tt)*) => {
        $crate::control::log::emit($crate::control::log::Stream::Err, format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let (tx, _rx) = sync_channel(2);
        let sink = Sink {
            tx,
            queued: AtomicU64::new(0),
            done: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
        };
        assert!(send(&sink, Stream::Out, "a".into()));
        assert!(send(&sink, Stream::Out, "b".into()));
        assert!(!send(&sink, Stream::Out, "c".into()), "full: dropped, not blocked");
        assert_eq!(sink.queued.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn writes_to_a_closed_pipe_fail_without_signal_or_panic() {
        let mut child = std::process::Command::new("true").stdin(std::process::Stdio::piped()).spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        child.wait().unwrap();
        // The reader is gone: EPIPE (the Rust runtime ignores SIGPIPE).
        assert!(write_all(&mut pipe, b"line\n").is_err());
    }
}
