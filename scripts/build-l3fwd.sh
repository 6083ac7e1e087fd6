#!/usr/bin/env bash
# Builds DPDK's l3fwd example (from Debian's dpdk-doc) as a same-run peer for
# the forwarding benchmarks, patched only where virtual devices need it:
#   - no RX checksum offload request (net_pcap/net_null do not offer it, and
#     l3fwd would stop at rte_eth_dev_configure);
#   - a mempool floor of 32,768 mbufs instead of 8,192 (an infinite_rx pcap of
#     16,384 frames holds them all in mbufs).
# The LPM forwarding path itself is untouched. Prints the binary's path.
#   usage: bash scripts/build-l3fwd.sh [OUT_DIR]   (default target/l3fwd)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/l3fwd}"
src=/usr/share/dpdk/examples
if [ ! -d "$src/l3fwd" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dpdk-doc >/dev/null
fi
if [ ! -x "$out/l3fwd/build/l3fwd-shared" ]; then
  rm -rf "$out" && mkdir -p "$out"
  cp -r "$src/l3fwd" "$src/common" "$out/"
  sed -i 's/\.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,/.offloads = 0,/' "$out/l3fwd/main.c"
  sed -i 's/(unsigned)8192)/(unsigned)32768)/' "$out/l3fwd/main.c"
  grep -q '.offloads = 0,' "$out/l3fwd/main.c" && grep -q '(unsigned)32768)' "$out/l3fwd/main.c" \
    || { echo "build-l3fwd: the patch no longer applies to $src/l3fwd/main.c" >&2; exit 1; }
  make -s -C "$out/l3fwd" shared >/dev/null
fi
echo "$(cd "$out/l3fwd/build" && pwd)/l3fwd-shared"
