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
