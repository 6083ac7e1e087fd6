//! Start-up warnings for `net_memif` devices that let strangers in: DPDK
//! 22.11's memif listens on an *abstract* Unix socket unless told
//! `socket-abstract=no` (no file, so no owner/group permissions: any process
//! in the network namespace can connect), and accepts any peer unless a
//! `secret=` is set.

/// The socket memif uses when `socket=` is not given.
const DEFAULT_SOCKET: &str = "/run/memif.sock";

/// One warning line per exposure of every `--vdev net_memif…` in `eal_args`.
pub(super) fn exposure_warnings(eal_args: &[String]) -> Vec<String> {
    memif_devargs(eal_args).flat_map(|devargs| device_warnings(&devargs)).collect()
}

/// The device strings of `--vdev X` and `--vdev=X` that name a memif device.
fn memif_devargs(eal_args: &[String]) -> impl Iterator<Item = String> + '_ {
    eal_args
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a.strip_prefix("--vdev") {
            Some("") => eal_args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        })
        .filter(|d| d.starts_with("net_memif"))
}

fn device_warnings(devargs: &str) -> Vec<String> {
    let mut parts = devargs.split(',');
    let name = parts.next().unwrap_or_default();
    let kv: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
    let get = |key: &str| kv.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let mut warnings = Vec::new();
    // memif's own rule: "yes" anywhere in the value means abstract, and abstract is the default.
    if get("socket-abstract").is_none_or(|v| v.contains("yes")) {
        let socket = get("socket").unwrap_or(DEFAULT_SOCKET);
        warnings.push(format!(
            "tachyon: WARNING: {name} uses the abstract socket @{socket}: any process in this network \
             namespace can connect (no file permissions); add socket=PATH,socket-abstract=no"
        ));
    }
    if get("secret").is_none_or(str::is_empty) {
        warnings.push(format!(
            "tachyon: WARNING: {name} has no secret: any peer that reaches its socket can connect; add secret=..."
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_memif_is_abstract_and_open() {
        let w = exposure_warnings(&args(&["-l", "0-1", "--vdev", "net_memif0,role=server"]));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("net_memif0") && w[0].contains("@/run/memif.sock"), "{w:?}");
        assert!(w[1].contains("no secret"), "{w:?}");
    }

    #[test]
    fn file_socket_with_secret_is_quiet() {
        let w = exposure_warnings(&args(&["--vdev=net_memif1,socket=/tmp/m.sock,socket-abstract=no,secret=s3"]));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn each_exposure_is_named_once_per_device() {
        let w = exposure_warnings(&args(&[
            "--vdev",
            "net_memif0,socket=/tmp/a.sock,socket-abstract=no",
            "--vdev",
            "net_memif1,socket=/tmp/b.sock,socket-abstract=yes,secret=x",
            "--vdev",
            "net_null0",
        ]));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("net_memif0") && w[0].contains("no secret"), "{w:?}");
        assert!(w[1].contains("net_memif1") && w[1].contains("@/tmp/b.sock"), "{w:?}");
    }

    #[test]
    fn other_devices_are_ignored() {
        assert!(exposure_warnings(&args(&["--vdev", "net_pcap0,rx_pcap=x.pcap", "--vdev"])).is_empty());
    }
}
