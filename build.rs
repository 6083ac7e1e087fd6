//! Finds DPDK 22.11 with pkg-config, generates Rust bindings for the headers in
//! `src/dpdk/wrapper.h`, and compiles the C shim that exposes DPDK's
//! `static inline` fast-path functions as linkable symbols.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/dpdk/wrapper.h");
    println!("cargo:rerun-if-changed=src/dpdk/shim.h");
    println!("cargo:rerun-if-changed=src/dpdk/shim.c");
    // The driver plugins EAL loads bind `munmap` to the executable's own
    // (src/dpdk/unmap_guard.rs: a memif peer that leaves must not unmap
    // rings under a worker's burst).
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol=munmap");

    let dpdk = match pkg_config::Config::new().atleast_version("22.11").probe("libdpdk") {
        Ok(lib) => lib,
        Err(_) => {
            // One line a person can act on; the full pkg-config error helps nobody here.
            eprintln!(
                "error: DPDK 22.11 not found by pkg-config (libdpdk). Install it: \
                 apt-get install dpdk dpdk-dev libdpdk-dev libclang-dev pkg-config"
            );
            std::process::exit(1);
        }
    };

    // pkg-config's --cflags omit the machine flags DPDK's headers need
    // (rte_memcpy wants SSSE3), so pass them explicitly.
    let machine_flags = ["-march=corei7", "-DALLOW_EXPERIMENTAL_API"];

    let mut shim = cc::Build::new();
    shim.file("src/dpdk/shim.c").opt_level(3).warnings(false);
    for inc in &dpdk.include_paths {
        shim.include(inc);
    }
    for flag in machine_flags {
        shim.flag(flag);
    }
    shim.compile("tachyon_shim");

    let mut builder = bindgen::Builder::default()
        .header("src/dpdk/wrapper.h")
        .rust_edition(bindgen::RustEdition::Edition2024)
        .wrap_unsafe_ops(true)
        // Only the API families src/dpdk/ wraps; their types follow recursively.
        .allowlist_function(
            "rte_(eal|eth|pktmbuf|mempool|lcore|socket|telemetry|tel|rcu|malloc|zmalloc|free|strerror|get_tsc_hz|version|get_main_lcore|get_next_lcore|thread|dev)_?.*",
        )
        .allowlist_function("tachyon_.*")
        .allowlist_var("RTE_(ETH|MBUF|MAX|LCORE|MEMPOOL|PKTMBUF|TEL|ETHER|MEMZONE|VER)_.*")
        .allowlist_var("RTE_(MAX_ETHPORTS|MAX_LCORE|MAX_NUMA_NODES|PKTMBUF_HEADROOM|MBUF_DEFAULT_BUF_SIZE|MBUF_DEFAULT_DATAROOM|CACHE_LINE_SIZE)")
        // Packed-and-aligned unions that Rust cannot express; never used here.
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_flow_.*")
        .no_debug("rte_flow_item_gtp_psc")
        .clang_macro_fallback()
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false);
    for inc in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", inc.display()));
    }
    for flag in machine_flags {
        builder = builder.clang_arg(flag);
    }
    let bindings = builder.generate().expect("bindgen failed over DPDK headers (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("dpdk_bindings.rs");
    bindings.write_to_file(out).expect("write bindings");
}
