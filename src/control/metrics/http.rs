//! A minimal HTTP/1.1 server for `/metrics`: one request per connection.
//! Scrapes come every few seconds from a handful of clients, so std's
//! `TcpListener` is all it takes (no async runtime, no dependency). One
//! thread accepts; each connection is answered on a short-lived thread of its
//! own, at most [`MAX_CLIENTS`] at a time, and each request has one deadline
//! for reading the request and writing the answer, so a client that trickles
//! bytes holds one slot for at most [`REQUEST_DEADLINE`] and never delays the
//! others. Stopping waits for the accepting thread only, never for a client.

use super::{Exposition, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a client may take to send its request and read the answer, in all.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once; more are closed unanswered.
const MAX_CLIENTS: usize = 32;
/// Largest request head read; scrapers send a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;

/// What the accepting thread shares with the connection threads.
struct Shared {
    /// None once stopped: nothing reads the ports or mempools any more.
    exposition: Mutex<Option<Exposition>>,
    clients: AtomicUsize,
}

/// Why the metrics endpoint cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address cannot be bound (in use, not local, no permission).
    #[error("metrics: cannot listen on {addr}: {source}{}", bind_hint(source))]
    Bind { addr: SocketAddr, source: io::Error },
    /// The bound socket has no local address.
    #[error("metrics: {0}")]
    LocalAddr(#[source] io::Error),
    /// The server thread cannot be started.
    #[error("metrics: cannot start the server thread: {0}")]
    Spawn(#[source] io::Error),
}

fn bind_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::AddrInUse {
        " (another process uses it: pick another with --metrics ADDR or [metrics] listen, or --no-metrics)"
    } else {
        ""
    }
}

/// The metrics socket, bound at start-up (before EAL and the workers) so that
/// an address in use stops the appliance with a clear error.
pub struct MetricsListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsListener {
    pub fn bind(addr: SocketAddr) -> Result<MetricsListener, MetricsError> {
        let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(MetricsError::LocalAddr)?;
        Ok(MetricsListener { listener, addr })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `exposition` from a new thread until [`MetricsServer::stop`].
    ///
    /// The thread inherits the CPU affinity of the calling thread: called from
    /// EAL's main lcore, it runs on the control CPU(s), never on a worker's.
    pub fn serve(self, exposition: Exposition) -> Result<MetricsServer, MetricsError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let shared = Arc::new(Shared { exposition: Mutex::new(Some(exposition)), clients: AtomicUsize::new(0) });
        let serving = shared.clone();
        let MetricsListener { listener, addr } = self;
        let thread = std::thread::Builder::new()
            .name("tachyon-metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopping.load(Ordering::Acquire) {
                        return;
                    }
                    match conn {
                        Ok(stream) => serve_client(stream, &serving),
                        // E.g. out of file descriptors: do not spin on it.
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
            .map_err(MetricsError::Spawn)?;
        Ok(MetricsServer { stop, addr, thread, shared })
    }
}

/// Answers `stream` on a thread of its own, or closes it when
/// [`MAX_CLIENTS`] are being served already.
fn serve_client(stream: TcpStream, shared: &Arc<Shared>) {
    if shared.clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
        shared.clients.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let mine = shared.clone();
    let spawned =
        std::thread::Builder::new().name("tachyon-metrics-conn".into()).stack_size(256 * 1024).spawn(move || {
            // A client that goes away mid-request is its own problem.
            let _ = answer(stream, &mine);
            mine.clients.fetch_sub(1, Ordering::AcqRel);
        });
    if spawned.is_err() {
        shared.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The running `/metrics` server.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl MetricsServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: the exposition is dropped (after any scrape computing
    /// it right now), so nothing reads the ports or mempools after this
    /// returns. Waits for the accepting thread, not for connections.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        drop(self.shared.exposition.lock().unwrap_or_else(|e| e.into_inner()).take());
        // accept() blocks: one connection of our own wakes it up to see the flag.
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        if TcpStream::connect_timeout(&SocketAddr::new(ip, self.addr.port()), REQUEST_DEADLINE).is_ok() {
            let _ = self.thread.join();
        } else {
            crate::log_err!("tachyon: WARNING: could not wake the metrics thread; leaving it to process exit");
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    wants_openmetrics: bool,
}

fn parse_request(head: &str) -> Option<Request> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?;
    let path = target.split('?').next().unwrap_or(target).to_string();
    let wants_openmetrics = lines.any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("accept") && value.contains("application/openmetrics-text")
        })
    });
    Some(Request { method, path, wants_openmetrics })
}

/// Time left before `deadline`, or a timeout error.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err(io::Error::new(io::ErrorKind::TimedOut, "request deadline passed")) } else { Ok(left) }
}

/// Reads the request head (up to the blank line) of one connection, by `deadline`.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too large"));
        }
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Writes all of `bytes` by `deadline`.
fn write_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.set_write_timeout(Some(remaining(deadline)?))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn answer(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let head = read_head(&mut stream, deadline)?;
    let exposition = |openmetrics: bool| {
        let guard = shared.exposition.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|e| if openmetrics { e.openmetrics() } else { e.prometheus_text() })
    };
    let (status, content_type, body, head_only) = match parse_request(&head) {
        None => ("400 Bad Request", "text/plain", "bad request\n".to_string(), false),
        Some(r) if r.method != "GET" && r.method != "HEAD" => {
            ("405 Method Not Allowed", "text/plain", "only GET\n".to_string(), false)
        }
        Some(r) if r.path == "/metrics" => {
            let head_only = r.method == "HEAD";
            let content_type =
                if r.wants_openmetrics { OPENMETRICS_CONTENT_TYPE } else { PROMETHEUS_TEXT_CONTENT_TYPE };
            match exposition(r.wants_openmetrics) {
                Some(body) => ("200 OK", content_type, body, head_only),
                None => ("503 Service Unavailable", "text/plain", "shutting down\n".to_string(), false),
            }
        }
        Some(r) if r.path == "/" => ("200 OK", "text/plain", "Tachyon: metrics at /metrics\n".to_string(), false),
        Some(_) => ("404 Not Found", "text/plain", "not found: try /metrics\n".to_string(), false),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(&body);
    }
    write_by(&mut stream, response.as_bytes(), deadline)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::metrics::{MetricsSources, NoGovernance};

    fn get(addr: SocketAddr, path: &str, accept: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn parses_the_request_line_and_accept_header() {
        let r = parse_request("GET /metrics?x=1 HTTP/1.1\r\nACCEPT: application/openmetrics-text;version=1.0.0\r\n")
            .unwrap();
        assert_eq!(r, Request { method: "GET".into(), path: "/metrics".into(), wants_openmetrics: true });
        assert!(!parse_request("GET /metrics HTTP/1.1\r\nAccept: */*\r\n").unwrap().wants_openmetrics);
        assert_eq!(parse_request(""), None);
    }

    /// What a server with no workers, ports or pools exposes.
    fn empty_sources() -> MetricsSources {
        MetricsSources {
            workers: Vec::new(),
            ports: Vec::new(),
            mempools: Vec::new(),
            governance: Arc::new(NoGovernance),
            tsc_hz: 1_000_000_000,
            dpdk_version: "DPDK test".into(),
            bridge: None,
        }
    }

    #[test]
    fn serves_both_formats_answers_404_and_stops() {
        let listener = MetricsListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr();
        assert_ne!(addr.port(), 0);
        let server = listener.serve(Exposition::new(empty_sources())).unwrap();
        let text = get(addr, "/metrics", "*/*");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("text/plain; version=0.0.4"), "{text}");
        assert!(text.contains("# TYPE tachyon_reconcile_periods_total counter"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        let om = get(addr, "/metrics", "application/openmetrics-text;version=1.0.0");
        assert!(om.contains("application/openmetrics-text"), "{om}");
        assert!(om.contains("# TYPE tachyon_reconcile_periods counter"), "{om}");
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(get(addr, "/nope", "*/*").starts_with("HTTP/1.1 404"));
        let again = MetricsListener::bind(addr).err().expect("the address is taken");
        assert!(matches!(&again, MetricsError::Bind { addr: a, .. } if *a == addr), "{again}");
        let again = again.to_string();
        assert!(again.contains("metrics") && again.contains(&addr.to_string()), "{again}");
        assert!(again.contains("another process uses it"), "{again}");
        server.stop();
        assert!(TcpStream::connect(addr).is_err(), "the listener is closed after stop");
    }

    #[test]
    fn trickling_clients_delay_neither_scrapes_nor_stop() {
        let listener = MetricsListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr();
        let server = listener.serve(Exposition::new(empty_sources())).unwrap();
        let tricklers: Vec<TcpStream> = (0..10)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /metrics HTTP/1.1\r\nX: ").unwrap();
                s
            })
            .collect();
        for _ in 0..5 {
            let t = Instant::now();
            assert!(get(addr, "/metrics", "*/*").starts_with("HTTP/1.1 200 OK"));
            assert!(t.elapsed() < Duration::from_millis(50), "a scrape took {:?}", t.elapsed());
        }
        let t = Instant::now();
        server.stop();
        assert!(t.elapsed() < Duration::from_secs(1), "stop took {:?}", t.elapsed());
        drop(tricklers);
    }
}
