//! The bridge's ingress ring reader on a real shared-memory region that
//! honest producers publish into and a hostile one scribbles over
//! (operations and checks in `tachyon_fuzz::ring`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tachyon_fuzz::ring::check(data));
