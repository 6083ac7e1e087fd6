//! Safe defaults (issue 13, item 8): with no configuration nothing listens
//! beyond loopback and every file the appliance serves from is owner/group
//! only, whatever the umask; a config or rule set is checked whole before
//! any of it is applied, at start and on reload.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tachyon::traffic::FrameSpec;

/// A non-loopback address of the appliance's own network namespace.
const PUBLIC_IP: &str = "10.99.0.1";

/// Local addresses of every listening TCP socket and every bound UDP socket
/// in the network namespace of `pid` (its /proc view), as "ip:port".
fn listeners(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for (file, v6) in [("tcp", false), ("tcp6", true), ("udp", false), ("udp6", true)] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // TCP: only LISTEN (0A); UDP: every bound socket.
            if file.starts_with("tcp") && f[3] != "0A" {
                continue;
            }
            out.push(proc_addr(f[1], v6));
        }
    }
    out
}

/// "0100007F:1A0A" (little-endian words, as /proc/net prints them) -> "127.0.0.1:6666".
fn proc_addr(text: &str, v6: bool) -> String {
    let (ip, port) = text.split_once(':').unwrap();
    let port = u16::from_str_radix(port, 16).unwrap();
    let words: Vec<u32> =
        (0..ip.len() / 8).map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).unwrap().swap_bytes()).collect();
    let ip: std::net::IpAddr = if v6 {
        let mut b = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
        }
        std::net::Ipv6Addr::from(b).into()
    } else {
        std::net::Ipv4Addr::from(words[0]).into()
    };
    std::net::SocketAddr::new(ip, port).to_string()
}

/// Whether a TCP connection to `addr` succeeds from inside `pid`'s network namespace.
fn connects_in_netns(pid: u32, addr: &str) -> bool {
    let (ip, port) = addr.rsplit_once(':').unwrap();
    let script = format!("exec 3<>/dev/tcp/{ip}/{port}");
    Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "bash", "-c", &script])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Starts tachyon with `app` in a fresh network namespace (loopback plus a
/// veth carrying [`PUBLIC_IP`]) under umask 000, so that any mode the
/// appliance does not set itself shows up as world-accessible.
fn start_in_netns(eal: &[String], app: &[String]) -> Running {
    let script = format!(
        "ip link set lo up && ip link add v0 type veth peer name v1 && ip addr add {PUBLIC_IP}/24 dev v0 && \
         ip link set v0 up && ip link set v1 up && umask 000 && exec \"$0\" \"$@\""
    );
    let child = Command::new("unshare")
        .args(["-n", "sh", "-c", &script, tachyon_bin()])
        .args(eal)
        .arg("--")
        .args(app)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) runs");
    Running { child, prefix: prefix_of(eal) }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// What one run in its own namespace showed: its listeners, and whether
/// port 9898 answered on loopback and on [`PUBLIC_IP`].
struct Seen {
    listeners: Vec<String>,
    loopback_answers: bool,
    public_answers: bool,
}

/// Runs the appliance with `app` in its own namespace and looks at it.
fn listeners_of_a_run(app: &[&str], check_files: bool) -> Seen {
    let _g = dpdk_lock();
    let eal = eal_args(&["net_null0,no-rx=1".into()]);
    let mut app = start_in_netns(&eal, &strings(app));
    app.wait_for("/tachyon/bridge");
    let pid = app.child.id();
    let seen = Seen {
        listeners: listeners(pid),
        loopback_answers: connects_in_netns(pid, "127.0.0.1:9898"),
        public_answers: connects_in_netns(pid, &format!("{PUBLIC_IP}:9898")),
    };
    if check_files {
        let runtime = Path::new("/var/run/dpdk").join(&app.prefix);
        let telemetry = runtime.join("dpdk_telemetry.v2");
        let region = Path::new("/dev/shm").join(format!("tachyon-{}.bridge", app.prefix));
        for file in [&telemetry, &runtime.join("mp_socket"), &region] {
            let m = mode(file);
            assert_eq!(m & 0o007, 0, "{} is mode {m:o}: others may use it", file.display());
        }
        assert_eq!(mode(&region), 0o660, "the bridge region is owner/group read-write");
    }
    let (status, err) = app.stop("-TERM");
    assert!(status.success(), "{status}: {err}");
    seen
}

#[test]
fn by_default_only_loopback_listens_and_served_files_are_owner_group_only() {
    // No --no-metrics: the default configuration, metrics on.
    let seen = listeners_of_a_run(&["--quiet"], true);
    let found = &seen.listeners;
    assert!(found.iter().any(|a| a == "127.0.0.1:9898"), "the metrics server listens by default: {found:?}");
    assert!(seen.loopback_answers, "metrics answer on loopback");
    assert!(!seen.public_answers, "metrics answer on {PUBLIC_IP}");
    for addr in found {
        let ip: std::net::SocketAddr = addr.parse().unwrap();
        assert!(ip.ip().is_loopback(), "listening beyond loopback by default: {addr} (all: {found:?})");
    }
}

#[test]
fn a_public_listener_exists_only_when_configured() {
    // The check above can see a public listener: configure one and it shows.
    let listen = format!("{PUBLIC_IP}:9898");
    let seen = listeners_of_a_run(&["--quiet", "--metrics", &listen], false);
    assert_eq!(seen.listeners, vec![listen], "exactly the configured listener");
    assert!(seen.public_answers && !seen.loopback_answers);
}

/// Four good rules and a bad last one.
const LAST_RULE_BAD: &str = "[[governance.rules]]\ntopic = 7\naction = \"drop\"\n\n\
    [[governance.rules]]\ntopic = 8\naction = \"drop\"\n\n\
    [[governance.rules]]\ntopic = 9\naction = \"drop\"\n\n\
    [[governance.rules]]\ntopic = 10\naction = \"drop\"\n\n\
    [[governance.rules]]\ntopic = 11\naction = \"limit\"\nprofile = \"nope\"\n";

/// Rules that would drop everything, then a bad key in a later section.
const LAST_SECTION_BAD: &str = "[[governance.rules]]\ntopics = \"7-8\"\naction = \"drop\"\n\n\
    [bridge]\nmode = \"0666\"\n";

/// Bad files, each with what its error must name.
const BAD_FILES: [(&str, &str); 2] = [(LAST_RULE_BAD, "governance.rules[4]"), (LAST_SECTION_BAD, "bridge.mode")];

#[test]
fn a_config_bad_at_its_end_stops_start_up_before_eal() {
    let dir = scratch_dir("safe-last-rule-start");
    for (i, (text, names)) in BAD_FILES.iter().enumerate() {
        let cfg = dir.join(format!("c{i}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let eal = eal_args(&["net_null0,no-rx=1".into()]);
        let app = strings(&["--config", cfg.to_str().unwrap(), "--duration", "1"]);
        let out = run_tachyon(&eal, &app);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a bad end must stop start-up: {err}");
        assert!(err.contains(names), "names {names}: {err}");
        assert!(!err.contains("EAL:"), "nothing of EAL ran: {err}");
        let runtime = Path::new("/var/run/dpdk").join(prefix_of(&eal));
        assert!(!runtime.exists(), "EAL created {}", runtime.display());
    }
}

#[test]
fn a_reload_whose_last_rule_is_bad_leaves_the_running_rules_acting() {
    let _g = dpdk_lock();
    let dir = scratch_dir("safe-last-rule-reload");
    let frames: Vec<Vec<u8>> = (0..1000)
        .map(|i| FrameSpec { topic_id: 7 + i % 2, sender_id: 1 + i % 50, seq: i as u64, ..Default::default() }.build())
        .collect();
    write_pcap(&dir.join("in.pcap"), &frames);
    let cfg = dir.join("rules.toml");
    // Running rules: drop topic 7 (half the traffic).
    std::fs::write(&cfg, "[[governance.rules]]\ntopic = 7\naction = \"drop\"\n").unwrap();
    let vdevs =
        [format!("net_pcap0,rx_pcap={},infinite_rx=1", dir.join("in.pcap").display()), "net_null0,no-rx=1".into()];
    let mut app = Running::start(&eal_args(&vdevs), &strings(&["--config", cfg.to_str().unwrap(), "--quiet"]), &[]);
    app.wait_for("/tachyon/stats");
    let window = Duration::from_millis(600);
    let before = rule_drop_share(&app.prefix, window);
    assert!((before - 0.5).abs() < 0.05, "the running rule drops topic 7 (half): {before}");
    // Applied even in part, either file would drop topic 8 too (everything).
    for (text, names) in BAD_FILES {
        std::fs::write(&cfg, text).unwrap();
        let answer = app.wait_for("/tachyon/reload");
        let refused = answer["refused"].as_str().unwrap_or_else(|| panic!("expected a refusal: {answer}"));
        assert!(refused.contains(names), "{refused}");
        std::thread::sleep(Duration::from_millis(300));
        let after = rule_drop_share(&app.prefix, window);
        assert!((after - 0.5).abs() < 0.05, "a refused file changed the rules: {after} of packets dropped by rule");
    }
    let (status, err) = app.stop("-INT");
    assert!(status.success(), "{err}");
    assert!(err.contains("refused, the running rules stay"), "{err}");
}
