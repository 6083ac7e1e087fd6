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

# Python package (python/): a venv at the project root with the tools, then the
# extension built into it. Skips pip when the venv already has maturin, and the build
# when the installed extension is newer than every Rust/Python source it comes from.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  python3 -m venv "$VENV"
fi
if [ ! -x "$VENV/bin/maturin" ]; then
  echo "setup: installing Python tools into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "maturin>=1.16,<2" "numpy>=2,<3" "uvloop>=0.23,<0.24" "pytest>=9,<10" \
    "pytest-asyncio>=1.5,<2" "pyzmq>=27,<28" ruff mypy
  # pyarrow is optional (publish_arrow and its tests); it has cp311 wheels on PyPI.
  "$VENV/bin/pip" install -q pyarrow || echo "setup: WARNING: pyarrow unavailable; Arrow support and its tests are skipped" >&2
fi
so=$(ls "$ROOT"/python/tachyon/_tachyon*.so 2>/dev/null | head -1 || true)
if [ -z "$so" ] || [ -n "$(find "$ROOT/python/src" "$ROOT/bridge/src" "$ROOT/python/Cargo.toml" -newer "$so" 2>/dev/null | head -1)" ] \
   || ! "$VENV/bin/python" -c "import tachyon" 2>/dev/null; then
  echo "setup: building the tachyon Python extension (maturin develop --release)"
  (cd "$ROOT/python" && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" \
     CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/python}" "$VENV/bin/maturin" develop --release -q)
fi
"$VENV/bin/python" -c "import tachyon" && echo "setup: python: import tachyon OK ($VENV)"
