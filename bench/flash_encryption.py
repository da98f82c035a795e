"""Flash-encryption throughput and memory, against espsecure and OpenSSL in the same run.

For each key size (256-bit: XTS-AES-128, 512-bit: XTS-AES-256) it encrypts 16 MiB at
0x10000 and prints the best of several runs (the machine is shared, so the fastest run
is the least disturbed one) of:

* espsec, into a reused buffer: ``FlashCipher.process_into`` (like ``openssl speed``,
  which also reuses its buffers: the cipher's own rate);
* espsec, bytes in and bytes out: ``FlashCipher.encrypt`` (allocates its output, as
  espsecure does);
* espsecure: ``espsecure.encrypt_flash_data(..., aes_xts=True)`` through its Python API
  with in-memory files (its output is also compared with ours, byte for byte);
* OpenSSL: ``openssl speed -evp aes-{128,256}-xts -bytes 128``, the machine's AES-XTS
  rate over 128-byte data units.

"x espsecure" compares the two bytes-in/bytes-out calls; "of OpenSSL" compares the
buffer rate with ``openssl speed``. Then a child process streams a 256 MiB file through
``process_file`` (what ``espsec flash-encryption encrypt`` runs) and its peak RSS is
reported.

Targets (from the issue): at least 50x espsecure, at least a quarter of OpenSSL's
128-byte-unit rate, and under 200 MiB peak memory for the 256 MiB file. The exit status
is 1 when a target is missed.

Usage: ``python bench/flash_encryption.py [--size-mib 16] [--stream-mib 256] [--runs 7]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import espsecure
import numpy as np

from espsec.flash_encryption import FlashCipher

MIB = 1 << 20
ADDRESS = 0x10000


def best_rate(fn: Callable[[], object], size: int, runs: int) -> float:
    """Throughput in MB/s of the fastest of ``runs`` runs (after one warm-up run)."""
    fn()
    fastest = min(_timed(fn) for _ in range(runs))
    return size / fastest / 1e6


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def espsecure_encrypt(key: bytes, data: bytes) -> bytes:
    out = io.BytesIO()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Using 256-bit key."
        espsecure.encrypt_flash_data(io.BytesIO(key), out, ADDRESS, 0xF, True, io.BytesIO(data))
    return out.getvalue()


def openssl_rate(bits: int) -> float | None:
    """``openssl speed`` MB/s for AES-XTS over 128-byte units, or None without the CLI."""
    exe = shutil.which("openssl")
    if exe is None:
        return None
    algo = f"aes-{bits}-xts"
    proc = subprocess.run(
        [exe, "speed", "-seconds", "2", "-evp", algo, "-bytes", "128"],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(rf"^AES-{bits}-XTS\s+([\d.]+)k", proc.stdout, re.MULTILINE | re.IGNORECASE)
    return float(match.group(1)) * 1000 / 1e6 if match else None


def stream_peak_rss(size: int, key: bytes, folder: Path) -> tuple[float, float]:
    """(peak RSS in MiB, MB/s) of a child process encrypting a ``size``-byte file."""
    src, dst, key_path = folder / "big.bin", folder / "big.enc", folder / "key.bin"
    key_path.write_bytes(key)
    block = os.urandom(16 * MIB)
    with src.open("wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
    # The peak is read by the child from /proc/self/status (VmHWM, this process image's
    # own high-water mark): ru_maxrss would include the parent's pages at fork time.
    code = (
        "import sys, time\n"
        "from espsec.flash_encryption import load_key, process_file\n"
        "t = time.perf_counter()\n"
        "process_file(load_key(sys.argv[1]), sys.argv[2], sys.argv[3], 0x10000)\n"
        "seconds = time.perf_counter() - t\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
        "print(seconds, int(hwm[0].split()[1]) if hwm else -1)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(key_path), str(src), str(dst)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or dst.stat().st_size != size:
        raise SystemExit(f"streaming run failed: {proc.stderr}")
    seconds, peak_kib = proc.stdout.split()
    return int(peak_kib) / 1024, size / float(seconds) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=16)
    parser.add_argument("--stream-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--espsecure-runs", type=int, default=2)
    args = parser.parse_args()
    size = args.size_mib * MIB
    data = os.urandom(size)
    src = np.frombuffer(data, dtype=np.uint8)
    buffer = np.empty(size, dtype=np.uint8)
    ok = True

    print(f"flash encryption, {args.size_mib} MiB at 0x{ADDRESS:x}, best of {args.runs} runs, MB/s")
    print(
        f"{'key':<22}{'buffer':>8}{'bytes':>8}{'espsecure':>11}{'openssl/128B':>14}"
        f"{'x espsecure':>13}{'of openssl':>12}"
    )
    for key_bits, xts_bits in ((256, 128), (512, 256)):
        key = os.urandom(key_bits // 8)
        cipher = FlashCipher(key)
        in_buffer = best_rate(
            lambda c=cipher: c.process_into(src, ADDRESS, buffer, decrypt=False), size, args.runs
        )
        as_bytes = best_rate(lambda c=cipher: c.encrypt(data, ADDRESS), size, args.runs)
        reference = espsecure_encrypt(key, data)
        if reference != cipher.encrypt(data, ADDRESS):
            print(f"MISMATCH with espsecure for the {key_bits}-bit key")
            return 1
        theirs = (
            size
            / min(
                _timed(lambda k=key: espsecure_encrypt(k, data)) for _ in range(args.espsecure_runs)
            )
            / 1e6
        )
        openssl = openssl_rate(xts_bits)
        vs_espsecure = as_bytes / theirs
        vs_openssl = in_buffer / openssl if openssl else None
        openssl_text = f"{openssl:>14.0f}" if openssl else f"{'n/a':>14}"
        share = f"{vs_openssl:>11.2f}x" if vs_openssl is not None else f"{'n/a':>12}"
        print(
            f"{f'{key_bits}-bit (AES-{xts_bits}-XTS)':<22}{in_buffer:>8.0f}{as_bytes:>8.0f}"
            f"{theirs:>11.1f}{openssl_text}{vs_espsecure:>12.0f}x{share}"
        )
        ok &= vs_espsecure >= 50
        ok &= vs_openssl is None or vs_openssl >= 0.25

    with tempfile.TemporaryDirectory() as tmp:
        peak, stream_rate = stream_peak_rss(args.stream_mib * MIB, os.urandom(32), Path(tmp))
    print(
        f"streaming a {args.stream_mib} MiB file to a new file: peak RSS {peak:.0f} MiB, "
        f"{stream_rate:.0f} MB/s including file IO (target: peak under 200 MiB)"
    )
    ok &= peak < 200
    print(
        "targets (>= 50x espsecure, >= 0.25x OpenSSL per 128-byte unit, < 200 MiB): "
        + ("met" if ok else "MISSED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
