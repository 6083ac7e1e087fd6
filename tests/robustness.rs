//! Robustness of the real binary against its surroundings (issue 13): output
//! pipes that are full or closed, metrics clients that trickle, signals that
//! arrive early or twice.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are fresh descriptors owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Fills the pipe behind `w` to the brim, then leaves it blocking again, so
/// the next write of whoever holds it blocks.
fn fill(w: &OwnedFd) {
    let fd = w.as_raw_fd();
    // SAFETY: plain fcntl and write calls on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        let chunk = [b'x'; 4096];
        while libc::write(fd, chunk.as_ptr().cast(), chunk.len()) > 0 {}
        while libc::write(fd, chunk.as_ptr().cast(), 1) > 0 {}
        libc::fcntl(fd, libc::F_SETFL, flags);
    }
}

fn signal(child: &Child, sig: &str) {
    assert!(Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills the child when the test fails half-way.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn reconcile_periods(prefix: &str) -> Option<u64> {
    try_telemetry(prefix, "/tachyon/rules")?["reconcile"]["periods"].as_u64()
}

fn spawn(prefix: &str, app: &[&str], stdout: Stdio, stderr: Stdio, env: Option<(&str, &str)>) -> Reaper {
    let mut cmd = Command::new(tachyon_bin());
    cmd.args(["-l", "0-1", "--no-huge", "-m", "512", "--no-pci", "--log-level", "lib.eal:error"])
        .args(["--file-prefix", prefix, "--vdev", "net_null0", "--vdev", "net_null1"])
        .arg("--")
        .args(app_args(&strings(app)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    Reaper(cmd.spawn().expect("tachyon starts"))
}

/// The appliance comes up, keeps reconciling, answers a reload through
/// telemetry, and exits 0 within 2 s of SIGTERM.
fn runs_answers_and_stops(app: &mut Reaper, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(status) = app.0.try_wait().unwrap() {
            panic!("tachyon exited early: {status}");
        }
        if let Some(p) = reconcile_periods(prefix) {
            break p;
        }
        assert!(Instant::now() < deadline, "telemetry never answered");
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_millis(500));
    let later = reconcile_periods(prefix).expect("telemetry answers");
    assert!(later > first, "reconciliation stalled: {first} then {later} periods");
    let reload = try_telemetry(prefix, "/tachyon/reload").expect("telemetry answers /tachyon/reload");
    assert!(!reload.to_string().contains("no answer from the control loop"), "{reload}");
    signal(&app.0, "-TERM");
    let status = wait_exit(&mut app.0, Duration::from_secs(2)).expect("tachyon exits within 2 s of SIGTERM");
    assert!(status.success(), "{status}");
}

#[test]
fn full_output_pipes_stall_neither_reconciliation_nor_stop() {
    let _lock = dpdk_lock();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    fill(&out_w);
    fill(&err_w);
    let prefix = file_prefix();
    // Stats every 100 ms: the live line keeps coming on the full pipe.
    let dir = scratch_dir("robust-full");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[control]\nstats_interval_ms = 100\n").unwrap();
    let mut app = spawn(&prefix, &["--config", cfg.to_str().unwrap()], out_w.into(), err_w.into(), None);
    runs_answers_and_stops(&mut app, &prefix);
    drop((out_r, err_r));
}

#[test]
fn closed_output_pipes_kill_nothing() {
    let _lock = dpdk_lock();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    drop((out_r, err_r));
    let prefix = file_prefix();
    let dir = scratch_dir("robust-closed");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[control]\nstats_interval_ms = 100\n").unwrap();
    let mut app = spawn(&prefix, &["--config", cfg.to_str().unwrap()], out_w.into(), err_w.into(), None);
    runs_answers_and_stops(&mut app, &prefix);
}

/// A GET of /metrics, answered within `limit` or an error.
fn scrape(addr: SocketAddr, limit: Duration) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, limit)?;
    s.set_read_timeout(Some(limit))?;
    s.set_write_timeout(Some(limit))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn trickling_metrics_clients_block_neither_scrapes_nor_shutdown() {
    let _lock = dpdk_lock();
    let addr = free_loopback_port();
    let prefix = file_prefix();
    let metrics = addr.to_string();
    let mut app = spawn(&prefix, &["--metrics", &metrics], Stdio::null(), Stdio::null(), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while scrape(addr, Duration::from_secs(1)).is_err() {
        assert!(app.0.try_wait().unwrap().is_none(), "tachyon exited early");
        assert!(Instant::now() < deadline, "metrics never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tricklers: Vec<_> = (0..10)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // One byte every 500 ms, forever; reconnect when cut off.
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr) else { continue };
                    let mut bytes = b"GET /metrics HTTP/1.1\r\nX: ".iter().chain(std::iter::repeat(&b'a'));
                    while !stop.load(Ordering::Relaxed) && s.write_all(&[*bytes.next().unwrap()]).is_ok() {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let t = Instant::now();
        let text = scrape(addr, Duration::from_secs(1)).expect("a scrape is answered while clients trickle");
        slowest = slowest.max(t.elapsed());
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(slowest < Duration::from_millis(50), "slowest scrape took {slowest:?}");
    // Shut down with the tricklers still connected.
    signal(&app.0, "-TERM");
    let status = wait_exit(&mut app.0, Duration::from_secs(2)).expect("tachyon exits within 2 s of SIGTERM");
    assert!(status.success(), "{status}");
    stop.store(true, Ordering::Relaxed);
    for t in tricklers {
        t.join().unwrap();
    }
}

#[test]
fn sighup_before_start_up_finishes_is_not_fatal() {
    let _lock = dpdk_lock();
    let dir = scratch_dir("robust-sighup");
    let cfg = dir.join("fifo.toml");
    let c = std::ffi::CString::new(cfg.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let stats = dir.join("stats.json");
    let prefix = file_prefix();
    let app_opts = ["--config", cfg.to_str().unwrap(), "--duration", "2", "--quiet", "--stats-json"];
    let mut app_opts: Vec<&str> = app_opts.to_vec();
    app_opts.push(stats.to_str().unwrap());
    // stderr is read: nothing here is about pipes.
    let mut app = spawn(&prefix, &app_opts, Stdio::null(), Stdio::piped(), None);
    // Tachyon now waits for its config on the FIFO, long before EAL starts.
    std::thread::sleep(Duration::from_millis(500));
    signal(&app.0, "-HUP");
    std::thread::sleep(Duration::from_millis(200));
    assert!(app.0.try_wait().unwrap().is_none(), "SIGHUP during start-up killed tachyon");
    let config = "[control]\nstats_interval_ms = 1000\n";
    std::fs::write(&cfg, config).unwrap();
    // Let start-up finish reading (and close) the FIFO before writing to it again.
    std::thread::sleep(Duration::from_secs(1));
    // The early SIGHUP asks for a reload once running: it rereads the FIFO.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // SAFETY: a valid C string path; O_NONBLOCK fails with ENXIO while no reader waits.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK) };
        if fd >= 0 {
            // SAFETY: fd is ours.
            let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
            let _ = f.write_all(config.as_bytes());
            break;
        }
        if app.0.try_wait().unwrap().is_some() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = wait_exit(&mut app.0, Duration::from_secs(30)).expect("tachyon ends its 2 s run");
    let mut err = String::new();
    app.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{status}: {err}");
    assert_eq!(read_json(&stats)["governance"]["reloads_ok"], 1, "the early SIGHUP reloads once: {err}");
}

#[test]
fn one_stop_delivered_twice_still_stops_cleanly() {
    // `timeout` signals the process and then its process group: the same
    // stop arrives twice, back to back. It must not pass for a second
    // signal at a hung shutdown (exit at once, no clean stop). SIGINT then
    // SIGTERM, so that the two cannot merge into one pending signal.
    let _lock = dpdk_lock();
    let prefix = file_prefix();
    let mut app = spawn(&prefix, &[], Stdio::null(), Stdio::piped(), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while reconcile_periods(&prefix).is_none() {
        assert!(app.0.try_wait().unwrap().is_none(), "tachyon exited early");
        assert!(Instant::now() < deadline, "telemetry never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = app.0.id();
    let both = format!("kill -INT {pid}; kill -TERM {pid}");
    assert!(Command::new("sh").args(["-c", &both]).status().unwrap().success());
    let status = wait_exit(&mut app.0, Duration::from_secs(10)).expect("tachyon stops");
    let mut err = String::new();
    app.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(!err.contains("second signal"), "{err}");
}

#[test]
fn a_second_signal_ends_a_hung_shutdown() {
    let _lock = dpdk_lock();
    for sig in ["-TERM", "-INT"] {
        let prefix = file_prefix();
        let mut app =
            spawn(&prefix, &[], Stdio::null(), Stdio::piped(), Some(("TACHYON_TEST_FAIL_AT", "hang_in_shutdown")));
        let deadline = Instant::now() + Duration::from_secs(30);
        while reconcile_periods(&prefix).is_none() {
            assert!(app.0.try_wait().unwrap().is_none(), "tachyon exited early");
            assert!(Instant::now() < deadline, "telemetry never answered");
            std::thread::sleep(Duration::from_millis(200));
        }
        signal(&app.0, sig);
        std::thread::sleep(Duration::from_millis(500));
        assert!(app.0.try_wait().unwrap().is_none(), "the test hook should hang the shutdown");
        signal(&app.0, sig);
        let status = wait_exit(&mut app.0, Duration::from_secs(2)).expect("a second signal exits at once");
        let mut err = String::new();
        app.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(!status.success() && status.code().is_some(), "{sig}: {status}: {err}");
        assert!(err.contains("second signal"), "{sig}: {err}");
    }
}
