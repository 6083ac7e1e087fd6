//! The classifier on a frame cut into segments at fuzzer-chosen points
//! (input format and the pending multi-segment TODO in `tachyon_fuzz::segments`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tachyon_fuzz::segments::check(data));
