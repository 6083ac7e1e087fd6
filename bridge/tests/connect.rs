mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use tachyon_bridge::{Bridge, BridgeError, LAYOUT_VERSION, Region};

#[test]
fn missing_file_is_not_found() {
    let p = tmp_path("missing");
    let e = Bridge::connect(&p).err().unwrap();
    assert!(matches!(e, BridgeError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("is tachyon running?"));
}

#[test]
fn connect_ok_and_accessors() {
    let p = tmp_path("ok");
    let r = Region::create(&p, small(3), 0o640, None).unwrap();
    assert!(!r.replaced_stale());
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
    let b = Bridge::connect(&p).unwrap();
    assert_eq!(b.shards(), 3);
    assert_eq!(b.max_message_bytes(), 1024);
    assert_eq!(b.path(), p.as_path());
    assert!(b.is_alive());
    assert_eq!(Bridge::default_path("rte"), std::path::PathBuf::from("/dev/shm/tachyon-rte.bridge"));
    drop(r);
    assert!(!p.exists(), "clean exit unlinks");
    assert!(!b.is_alive(), "lock gone with the region");
}

#[test]
fn mode_ignores_umask_and_group_is_set() {
    let p = tmp_path("mode");
    // SAFETY: umask is a plain syscall; other tests create files with explicit modes.
    let old = unsafe { libc::umask(0o077) };
    // SAFETY: as above.
    let gid = unsafe { libc::getgid() };
    let r = Region::create(&p, small(1), 0o660, Some(gid));
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let _r = r.unwrap();
    let md = std::fs::metadata(&p).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&md), gid);
}

#[test]
fn second_appliance_is_refused_and_stale_region_replaced() {
    let p = tmp_path("owned");
    let r = Region::create(&p, small(1), 0o660, None).unwrap();
    let e = Region::create(&p, small(1), 0o660, None).err().unwrap();
    assert!(matches!(e, BridgeError::AlreadyOwned { .. }), "{e}");
    assert!(e.to_string().contains("another appliance holds"));
    // A copy of the file has no lock: stale.
    let stale = tmp_path("stale");
    let _c = Cleanup(stale.clone());
    std::fs::copy(&p, &stale).unwrap();
    drop(r);
    let e = Bridge::connect(&stale).err().unwrap();
    assert!(matches!(e, BridgeError::ApplianceGone), "{e}");
    let r2 = Region::create(&stale, small(2), 0o660, None).unwrap();
    assert!(r2.replaced_stale());
    assert_eq!(Bridge::connect(&stale).unwrap().shards(), 2);
}

#[test]
fn crash_leftovers_are_stale_but_a_strangers_file_is_left_alone() {
    // What a creator that crashed mid-creation leaves: an empty file, an all-zero file
    // (crashed after ftruncate, before the header; the appliance's own test uses an
    // 8192-byte zero file), a short zero file, and a header page missing only its magic.
    let full = {
        let p = tmp_path("model");
        let r = Region::create(&p, small(1), 0o660, None).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        drop(r);
        bytes[..8].fill(0);
        bytes
    };
    let leftovers: [(&str, Vec<u8>); 4] =
        [("empty", vec![]), ("zeros", vec![0; 8192]), ("short", vec![0; 3]), ("nomagic", full)];
    for (name, bytes) in leftovers {
        let p = tmp_path(name);
        std::fs::write(&p, &bytes).unwrap();
        let r = Region::create(&p, small(2), 0o660, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(r.replaced_stale(), "{name}");
        assert_eq!(Bridge::connect(&p).unwrap().shards(), 2, "{name}");
    }
    // Anything else is someone else's: refused, and the file is untouched.
    let strangers: [(&str, Vec<u8>); 4] = [
        ("text", b"my precious notes\n".to_vec()),
        ("short-text", b"hi".to_vec()),
        ("zero-head-data-tail", {
            let mut v = vec![0u8; 8192];
            v[5000] = 1;
            v
        }),
        ("zero-magic-garbage-header", {
            let mut v = vec![0u8; 4096];
            v[100] = 7;
            v
        }),
    ];
    for (name, bytes) in strangers {
        let p = tmp_path(name);
        let _c = Cleanup(p.clone());
        std::fs::write(&p, &bytes).unwrap();
        let e = Region::create(&p, small(1), 0o660, None).err().unwrap_or_else(|| panic!("{name}: replaced"));
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "{} exists and is not a Tachyon bridge region; remove it or choose another --bridge path",
                p.display()
            )),
            "{name}: {msg}"
        );
        assert!(
            matches!(&e, BridgeError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
            "{name}: {e:?}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "{name}: the file must be left as it was");
    }
}

fn corrupt(p: &std::path::Path, name: &str, f: impl FnOnce(&mut Vec<u8>)) -> (std::path::PathBuf, Cleanup) {
    let mut bytes = std::fs::read(p).unwrap();
    f(&mut bytes);
    let q = tmp_path(name);
    std::fs::write(&q, &bytes).unwrap();
    (q.clone(), Cleanup(q))
}

#[test]
fn bad_headers_are_typed_errors() {
    let p = tmp_path("hdr");
    let _r = Region::create(&p, small(1), 0o660, None).unwrap();
    let (q, _c1) = corrupt(&p, "magic", |b| b[0] = b'X');
    assert!(matches!(Bridge::connect(&q), Err(BridgeError::BadHeader(_))));
    let (q, _c2) = corrupt(&p, "version", |b| b[8] = 2);
    match Bridge::connect(&q) {
        Err(BridgeError::LayoutVersion { found: 2, expected }) => assert_eq!(expected, LAYOUT_VERSION),
        other => panic!("{:?}", other.err()),
    }
    let (q, _c3) = corrupt(&p, "trunc", |b| b.truncate(8192));
    let e = Bridge::connect(&q).err().unwrap();
    assert!(matches!(e, BridgeError::BadHeader(ref m) if m.contains("truncated")), "{e}");
    let (q, _c4) = corrupt(&p, "tiny", |b| b.truncate(10));
    assert!(matches!(Bridge::connect(&q), Err(BridgeError::BadHeader(_))));
    let (q, _c5) = corrupt(&p, "offset", |b| b[64] ^= 0x40);
    assert!(matches!(Bridge::connect(&q), Err(BridgeError::BadHeader(_))));
}
