-- Pktgen-DPDK range mode for a real-NIC lab: many flows towards Tachyon's UDP
-- port, so RSS spreads them over every worker's queue.
--   pktgen -l 0-4 -n 4 -a 0000:03:00.0 -- -P -m "[1-2:3-4].0" -f pktgen/tachyon-range.lua
-- "Senders" are source addresses (198.18.0.1 upwards, as tachyon-gen --src-ips)
-- and "topics" ride on UDP source ports (40000 upwards, as --src-ports): the
-- 5-tuples vary the way a fleet of publishers would. Pktgen writes its own
-- payload pattern, not a Tachyon header, so the appliance drops these frames
-- as bad_magic: this script measures the parse-and-drop path and the RSS
-- spread at line rate. For real Tachyon frames (topics, senders, records,
-- Zipf), replay a tachyon-gen pcap instead (see pktgen/README.md).
package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

local port      = "0"
local dst_mac   = "02:00:00:00:00:02"   -- the appliance's ingress port
local senders   = 10000                 -- distinct source addresses
local topics    = 1000                  -- distinct UDP source ports
local pkt_size  = 128                   -- bytes without FCS
local rate_pct  = 100

local function ip_plus(base_last_two, n)
  -- 198.18.x.y + n, staying inside 198.18.0.0/15 (RFC 2544 benchmarking space)
  local v = base_last_two + n
  return string.format("198.%d.%d.%d", 18 + math.floor(v / 65536), math.floor(v / 256) % 256, v % 256)
end

pktgen.set_range(port, "on")
pktgen.range.dst_mac(port, "start", dst_mac)

pktgen.range.src_ip(port, "start", ip_plus(1, 0))
pktgen.range.src_ip(port, "inc", "0.0.0.1")
pktgen.range.src_ip(port, "min", ip_plus(1, 0))
pktgen.range.src_ip(port, "max", ip_plus(1, senders - 1))

pktgen.range.dst_ip(port, "start", "198.19.0.1")
pktgen.range.dst_ip(port, "inc", "0.0.0.0")
pktgen.range.dst_ip(port, "min", "198.19.0.1")
pktgen.range.dst_ip(port, "max", "198.19.0.1")

pktgen.range.ip_proto(port, "udp")
pktgen.range.src_port(port, "start", 40000)
pktgen.range.src_port(port, "inc", 1)
pktgen.range.src_port(port, "min", 40000)
pktgen.range.src_port(port, "max", 40000 + topics - 1)

pktgen.range.dst_port(port, "start", 47000)   -- Tachyon's UDP port (dataplane.tachyon_udp_port)
pktgen.range.dst_port(port, "inc", 0)
pktgen.range.dst_port(port, "min", 47000)
pktgen.range.dst_port(port, "max", 47000)

pktgen.range.pkt_size(port, "start", pkt_size)
pktgen.range.pkt_size(port, "inc", 0)
pktgen.range.pkt_size(port, "min", pkt_size)
pktgen.range.pkt_size(port, "max", pkt_size)

pktgen.set(port, "rate", rate_pct)
pktgen.start(port)
