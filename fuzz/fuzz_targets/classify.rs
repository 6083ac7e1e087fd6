//! The classifier on arbitrary bytes: a PROTOCOL.md parser reason or an
//! accepted frame whose fields and records fit its bytes, never a panic
//! (checks in `tachyon_fuzz::classify`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tachyon_fuzz::classify::check(data);
});
