"""Start the real ``tachyon`` binary on DPDK virtual devices for tests and benchmarks.

Builds nothing: the binary is ``$TACHYON_BIN``, else ``target/release/tachyon`` if present,
else ``target/debug/tachyon`` under the repository root. Each run gets a unique
``--file-prefix`` and its own directory (bridge region, configs, pcaps, ``--stats-json``).
Mirrors ``tests/bridge_e2e.rs``: ``--no-huge -m 512 --no-pci``, one worker on ``-l 0-1`` or
two with ``--lcores 0@0,1@1,2@0`` and ``[workers] lcores = [1, 2]`` on a two-queue net_pcap.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import tachyon

REPO = Path(__file__).resolve().parents[2]
#: IPv4 source of the frames the appliance builds from bridge messages (``[bridge] source_ip``).
BRIDGE_SRC = bytes([198, 18, 255, 1])
_COUNTER = itertools.count()


def tachyon_bin() -> Path | None:
    """The appliance binary to run, or None."""
    env = os.environ.get("TACHYON_BIN")
    if env:
        return Path(env)
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "tachyon"
        if p.is_file():
            return p
    return None


def unavailable() -> str | None:
    """Why the real appliance cannot run here (a skip reason), or None."""
    if os.geteuid() != 0:
        return "the real appliance needs root (DPDK EAL, /var/run/dpdk)"
    binary = tachyon_bin()
    if binary is None or not binary.is_file():
        return f"no tachyon binary (set TACHYON_BIN or run `cargo build` in {REPO})"
    if not Path("/usr/lib/x86_64-linux-gnu/dpdk").is_dir() and shutil.which("dpdk-testpmd") is None:
        return "DPDK is not installed (bash scripts/setup.sh)"
    return None


def write_empty_pcap(path: Path) -> Path:
    """A pcap file with no packets (Ethernet link type)."""
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    return path


def read_pcap(path: Path) -> list[bytes]:
    """Every packet of a little-endian pcap file (microsecond or nanosecond timestamps)."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data, 0)[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), f"{path}: not a little-endian pcap ({magic:#x})"
    packets, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        packets.append(data[off + 16 : off + 16 + incl])
        off += 16 + incl
    return packets


def wire_messages(path: Path, src: bytes = BRIDGE_SRC) -> list[tuple[int, int, bytes]]:
    """(topic, sender, payload) of every record of every Tachyon frame from ``src`` in ``path``.

    Parses Ethernet (optional 802.1Q), IPv4, UDP and the PROTOCOL.md frame with ``struct``,
    checking the frame's length rule (header + records fill the UDP payload exactly)."""
    out = []
    for pkt in read_pcap(path):
        l2 = 18 if pkt[12:14] == b"\x81\x00" else 14
        if pkt[l2 - 2 : l2] != b"\x08\x00" or pkt[l2 + 12 : l2 + 16] != src:
            continue
        ihl = (pkt[l2] & 0x0F) * 4
        total = struct.unpack_from(">H", pkt, l2 + 2)[0]
        udp = l2 + ihl
        frame = pkt[udp + 8 : l2 + total]
        magic, version, flags, count, reserved, topic, sender = struct.unpack_from("<2sBBHHII", frame, 0)
        assert (magic, version, flags, reserved) == (b"TY", 1, 0, 0), f"bad frame header {frame[:32].hex()}"
        off = 32
        for _ in range(count):
            (n,) = struct.unpack_from("<H", frame, off)
            out.append((topic, sender, bytes(frame[off + 2 : off + 2 + n])))
            off += 2 + n
        assert off == len(frame), f"frame of {len(frame)} bytes, records end at {off}"
    return out


class RealAppliance:
    """One run of the real binary with ``--bridge`` in ``workdir``.

    ``config`` is the TOML text of ``--config`` (``[workers] lcores = [1, 2]`` is added with
    two workers). ``sink="pcap"`` writes what leaves port 0 to ``out.pcap`` (and, with two
    workers, the second TX queue to ``out.1.pcap``); ``sink="null"`` sends to ``net_null``.
    """

    def __init__(
        self,
        workdir: Path,
        config: str = "",
        workers: int = 1,
        env: dict[str, str] | None = None,
        sink: str = "pcap",
        duration: float = 120,
    ) -> None:
        assert workers in (1, 2)
        binary = tachyon_bin()
        assert binary is not None
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.file_prefix = f"tachyon-py-{os.getpid()}-{next(_COUNTER)}"
        self.path = workdir / "tachyon.bridge"
        self.stats_path = workdir / "stats.json"
        self.out = workdir / "out.pcap"
        empty = write_empty_pcap(workdir / "empty.pcap")
        if workers == 2:
            config = "[workers]\nlcores = [1, 2]\n" + config
            lcores = ["--lcores", "0@0,1@1,2@0"]
        else:
            lcores = ["-l", "0-1"]
        if sink == "null":
            vdevs = ["net_null0,no-rx=1"]
        else:
            tx = f"tx_pcap={self.out}" + (f",tx_pcap={self.out.with_suffix('.1.pcap')}" if workers == 2 else "")
            rx = f"rx_pcap={empty}" + (f",rx_pcap={empty}" if workers == 2 else "")
            vdevs = [f"net_pcap0,{rx},{tx}"]
        eal = [*lcores, "--no-huge", "-m", "512", "--no-pci", "--log-level", "lib.eal:error"]
        eal += ["--file-prefix", self.file_prefix]
        for v in vdevs:
            eal += ["--vdev", v]
        app = ["--duration", str(duration), "--quiet", "--no-metrics", "--bridge", str(self.path)]
        app += ["--stats-json", str(self.stats_path)]
        if config:
            self.config_path = workdir / "tachyon.toml"
            self.config_path.write_text(config)
            app += ["--config", str(self.config_path)]
        self.stderr_path = workdir / "stderr.txt"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [str(binary), *eal, "--", *app],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env={**os.environ, **(env or {})},
        )
        self.stats: dict[str, Any] | None = None
        self._wait_for_region()

    def _wait_for_region(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while True:
            try:
                with tachyon.Bridge(self.path), self.control() as ctl:
                    # The region exists before the workers launch: wait until each one polls.
                    workers = ctl.workers()
                    if workers and all(w["polls_idle"] + w["polls_busy"] > 0 for w in workers.values()):
                        return
                    time.sleep(0.02)
            except (tachyon.ApplianceError, ConnectionError):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"tachyon exited ({self.proc.returncode}):\n{self.stderr()}") from None
            if time.monotonic() > end:
                self.stop(check=False)
                raise TimeoutError(f"no running appliance at {self.path} after {timeout} s:\n{self.stderr()}")
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def outputs(self) -> list[Path]:
        """The output pcaps (one per TX queue)."""
        return [p for p in (self.out, self.out.with_suffix(".1.pcap")) if p.exists()]

    def wire(self) -> list[tuple[int, int, bytes]]:
        """Bridge messages that left on the wire (read after :meth:`stop`)."""
        return [m for p in self.outputs() for m in wire_messages(p)]

    def control(self) -> tachyon.Control:
        return tachyon.Control(file_prefix=self.file_prefix)

    def stop(self, check: bool = True) -> dict[str, Any]:
        """SIGINT, wait, and return ``--stats-json``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        if check:
            assert self.proc.returncode == 0, f"tachyon exited {self.proc.returncode}:\n{self.stderr()}"
            self.stats = json.loads(self.stats_path.read_text())
            return self.stats
        return {}
