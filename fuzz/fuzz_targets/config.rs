//! The TOML config (with `[governance]` rules and `[bridge]`) and the
//! runtime-limit command on arbitrary text: an answer, never a panic
//! (checks in `tachyon_fuzz::config`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tachyon_fuzz::config::check(data));
