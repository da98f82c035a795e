"""esptool write-flash of 4 MiB through ``device serve``, with and without the stub.

The same 4 MiB firmware-like image (random words between runs of zeros, so it deflates
about 2:1 as real apps do) is written three ways in one run:

* ``esptool --no-stub write-flash``: the ROM loader, 1 KiB blocks, uncompressed;
* ``esptool write-flash``: the flasher stub, 16 KiB blocks of deflated data;
* ``espsec device flash`` (``VirtualDevice.write_files``, no protocol): the reference.

esptool runs as its real command in a separate process, the server in this one, so the
two do not share a CPU core's time. Two rates are printed for each socket write: the
wall-clock rate esptool sees (bound by esptool itself: it formats every packet it sends
as a hex dump, even with tracing off), and the twin's own rate, flash bytes over the
time the server spent handling the bytes it received. The twin must not be the
bottleneck: its own rate with the stub must be at least 10 MB/s.

``--quick``: 256 KiB instead of 4 MiB.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import Results, parser, report

from espsec.device import VirtualDevice
from espsec.device.download import DownloadServer
from espsec.device.download.session import DownloadSession

SIZE = 4 << 20
FLASH = 8 << 20
OFFSET = 0x10000
TARGET = 10e6
ESPTOOL = Path(sys.executable).parent / "esptool"


def firmware_like(size: int) -> bytes:
    out = bytearray()
    block = b"espsec"
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block + bytes(32)
    return bytes(out[:size])


class Busy:
    """Wall time spent inside :meth:`DownloadSession.receive` (the twin's work)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._receive = DownloadSession.receive

        def timed(session: DownloadSession, data: bytes) -> bytes:
            start = time.perf_counter()
            try:
                return self._receive(session, data)
            finally:
                self.seconds += time.perf_counter() - start

        DownloadSession.receive = timed  # type: ignore[method-assign]


def socket_write(
    folder: Path, image: Path, busy: Busy, *, stub: bool, size: int = SIZE
) -> tuple[float, float]:
    """(esptool wall seconds, twin busy seconds) for one write-flash."""
    dev = VirtualDevice.create(folder, "esp32s3", FLASH)
    with DownloadServer(dev).start() as server:
        busy.seconds = 0.0
        args = [str(ESPTOOL), "--port", server.url, *([] if stub else ["--no-stub"])]
        start = time.perf_counter()
        subprocess.run(
            [*args, "write-flash", hex(OFFSET), str(image)],
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - start
    written = VirtualDevice.open(folder).flash.read_raw(OFFSET, size)
    assert written == image.read_bytes(), "flash does not hold the image"
    return wall, busy.seconds


def direct_write(folder: Path, data: bytes) -> float:
    dev = VirtualDevice.create(folder, "esp32s3", FLASH)
    start = time.perf_counter()
    dev.write_files([(OFFSET, data, "image")])
    return time.perf_counter() - start


def main() -> int:
    args = parser(__doc__).parse_args()
    size = 256 << 10 if args.quick else SIZE
    data = firmware_like(size)
    busy = Busy()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        image = root / "image.bin"
        image.write_bytes(data)
        direct = direct_write(root / "direct", data)
        rom_wall, rom_busy = socket_write(root / "rom", image, busy, stub=False, size=size)
        stub_wall, stub_busy = socket_write(root / "stub", image, busy, stub=True, size=size)
    mb = size / 1e6
    print(f"write {size >> 10} KiB of firmware-like data to a virtual ESP32-S3")
    print(f"  espsec device flash (no protocol)    {direct:6.2f} s  {mb / direct:7.1f} MB/s")
    runs = (("--no-stub (ROM)", rom_wall, rom_busy), ("stub", stub_wall, stub_busy))
    for name, wall, twin in runs:
        print(
            f"  esptool {name:<16} through socket {wall:6.2f} s  {mb / wall:7.1f} MB/s"
            f"  (twin busy {twin:5.2f} s: {mb / twin:7.1f} MB/s)"
        )
    rate = size / stub_busy
    verdict = "ok" if rate >= TARGET else "TOO SLOW"
    target = TARGET / 1e6
    print(f"twin rate with the stub: {rate / 1e6:.1f} MB/s (target >= {target:.0f}): {verdict}")
    results = Results("download_mode")
    results.at_least("device serve: twin rate, stub", rate / 1e6, target, unit="MB/s")
    results.info("esptool write-flash --no-stub, wall", mb / rom_wall, "MB/s")
    results.info("esptool write-flash (stub), wall", mb / stub_wall, "MB/s")
    report(results, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
