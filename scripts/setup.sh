#!/usr/bin/env bash
# Installs what Tachyon needs on a fresh Debian 12 / Ubuntu 22.04+ machine
# (as root), skipping what is already there. Safe to run again.
set -euo pipefail

PKGS=(dpdk dpdk-dev libdpdk-dev libclang-dev libhwloc-dev pkg-config libpcap-dev
      python3 python3-venv python3-matplotlib iproute2 prometheus)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: the machine's toolchain (rustup). Edition 2024 needs Rust >= 1.85.
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: cargo not found; install Rust >= 1.85 with rustup (https://rustup.rs) and run again" >&2
    exit 1
  fi
fi
rustc_minor=$(rustc --version | sed -E 's/rustc 1\.([0-9]+).*/\1/')
if [ "$rustc_minor" -lt 85 ]; then
  echo "setup: rustc $(rustc --version) is too old; Tachyon needs >= 1.85 (rustup update)" >&2
  exit 1
fi
pkg-config --atleast-version=22.11 libdpdk || { echo "setup: libdpdk >= 22.11 not found" >&2; exit 1; }
