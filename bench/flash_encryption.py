"""Flash encryption: the XTS engine against OpenSSL, the command against espsecure.

In one run:

* **in process**, for each key size (256-bit: XTS-AES-128, 512-bit: XTS-AES-256):
  ``FlashCipher.process_into`` into a reused buffer at 16 and 64 MiB against
  ``openssl speed -evp aes-{128,256}-xts -bytes 128`` (OpenSSL's own rate over
  128-byte data units, also into reused buffers), both per CPU second (``openssl
  speed`` divides by CPU time; so does this, which also keeps other load on a shared
  machine out of the figure). Target: at least 0.6 of OpenSSL at both sizes, so no
  loss from 16 to 64 MiB. Beside it, the *data path alone* at the large size: the
  ECB call and the two reversing XOR passes over the same buffers with masks that cost
  nothing, the most any NumPy design of the engine can reach (ADR 0007). The default
  thread count is then timed against the other choice (one or two threads), wall
  clock. ``FlashCipher.encrypt`` (bytes in, new bytes out) against
  ``espsecure.encrypt_flash_data`` through its Python API is shown for context, and the
  two outputs are compared byte for byte;
* **whole commands**, each run a fresh process as a user runs it, in alternation:
  ``espsec flash-encryption encrypt`` against ``espsecure encrypt-flash-data --aes-xts``
  on a 16 and a 64 MiB file. Targets: 8x and 10x. The outputs must be identical. The
  import floor (Python, click, NumPy and cryptography loaded, nothing done) runs in the
  same alternation: the most the ratio can be, whatever the command does;
* **memory**: the peak RSS of each command on the 64 MiB file (espsec streams in
  1 MiB chunks; espsecure reads the whole file).

``--quick``: 1 and 4 MiB, one run each, XTS-AES-128 only.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import espsecure
import numpy as np
from _harness import (
    BenchError,
    Results,
    command,
    import_floor,
    median_cpu_time,
    median_time,
    paired,
    parser,
    peak_rss_mib,
    report,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from espsec.flash_encryption import FlashCipher

MIB = 1 << 20
ADDRESS = 0x10000
FLOOR = ("click", "numpy", "cryptography.hazmat.primitives.ciphers")
"""What ``espsec flash-encryption encrypt`` imports whatever the size of its input."""
BATCH = 256 << 10


def espsecure_encrypt(key: bytes, data: bytes) -> bytes:
    out = io.BytesIO()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Using 256-bit key."
        espsecure.encrypt_flash_data(io.BytesIO(key), out, ADDRESS, 0xF, True, io.BytesIO(data))
    return out.getvalue()


def openssl_rate(bits: int, seconds: int) -> float | None:
    """``openssl speed`` MB/s for AES-XTS over 128-byte units, or None without the CLI."""
    exe = shutil.which("openssl")
    if exe is None:
        return None
    algo = f"aes-{bits}-xts"
    proc = subprocess.run(
        [exe, "speed", "-seconds", str(seconds), "-evp", algo, "-bytes", "128"],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(rf"^AES-{bits}-XTS\s+([\d.]+)k", proc.stdout, re.MULTILINE | re.IGNORECASE)
    return float(match.group(1)) * 1000 / 1e6 if match else None


def data_path_alone(key: bytes, size: int, runs: int) -> float:
    """CPU seconds of the engine's data passes over ``size`` bytes in batches, with
    masks that cost nothing: per batch one XOR that reads the input back to front
    (each unit reversed), one ECB call in place, one XOR that writes the output back
    to front. The XTS masks, tweaks and glue come on top of this in the engine."""
    half = len(key) // 2
    ecb = Cipher(algorithms.AES(key[:half]), modes.ECB()).encryptor()
    src = np.frombuffer(os.urandom(size), dtype=np.uint8)
    out = np.empty(size, dtype=np.uint8)
    masks = np.frombuffer(os.urandom(BATCH), dtype="<u8")
    work = np.empty(BATCH + 16, dtype=np.uint8)
    words = work[:BATCH].view("<u8")

    def passes() -> None:
        for at in range(0, size, BATCH):
            np.bitwise_xor(src[at : at + BATCH].view(">u8")[::-1], masks, out=words)
            ecb.update_into(work[:BATCH].data, work.data)
            np.bitwise_xor(words, masks, out=out[at : at + BATCH].view(">u8")[::-1])

    return median_cpu_time(passes, runs)


def in_process(results: Results, sizes: tuple[int, int], key_bits: int, runs: int) -> None:
    xts_bits = key_bits // 2
    name = f"AES-{xts_bits}-XTS"
    key = os.urandom(key_bits // 8)
    cipher = FlashCipher(key)
    openssl = openssl_rate(xts_bits, 1 if runs == 1 else 3)
    times = []
    for size in sizes:
        src = np.frombuffer(os.urandom(size), dtype=np.uint8)
        out = np.empty(size, dtype=np.uint8)
        seconds = median_cpu_time(  # CPU time, as openssl speed counts it
            lambda s=src, o=out: cipher.process_into(s, ADDRESS, o, decrypt=False), runs
        )
        times.append(seconds)
        rate = size / seconds / 1e6
        metric = f"{name} in a buffer, {size // MIB} MiB"
        if openssl is None:
            results.info(metric, rate, "MB/s")
        else:
            results.rate_share(metric, rate, openssl, "openssl speed 128 B", target=0.6)
    results.scaling(
        f"{name} in a buffer, {sizes[0] // MIB}->{sizes[1] // MIB} MiB",
        *times,
        sizes[1] / sizes[0],
        at_most=1.15,
    )
    floor_rate = sizes[1] / data_path_alone(key, sizes[1], runs) / 1e6
    metric = f"{name} data path alone (no masks), {sizes[1] // MIB} MiB"
    if openssl is None:
        results.info(metric, floor_rate, "MB/s")
    else:
        results.rate_share(metric, floor_rate, openssl, "openssl speed 128 B")
    # worker threads: the default (one per two cores) against two, on the large input
    threads = max(2, cipher._engine.threads)
    other = FlashCipher(key, threads=1 if cipher._engine.threads > 1 else threads)
    seconds = {}
    for c in (cipher, other):
        src = np.frombuffer(os.urandom(sizes[1]), dtype=np.uint8)
        out = np.empty(sizes[1], dtype=np.uint8)
        seconds[c._engine.threads] = median_time(
            lambda c=c, s=src, o=out: c.process_into(s, ADDRESS, o, decrypt=False), runs
        )
    many = max(seconds)
    results.faster(
        f"{name} {sizes[1] // MIB} MiB: {many} threads (default {cipher._engine.threads})",
        seconds[many],
        seconds[1],
        "1 thread",
    )

    data = os.urandom(sizes[0])
    reference = espsecure_encrypt(key, data)
    if reference != cipher.encrypt(data, ADDRESS):
        raise BenchError(f"{name}: espsec's ciphertext differs from espsecure's")
    ours = median_time(lambda: cipher.encrypt(data, ADDRESS), runs)
    theirs = median_time(lambda: espsecure_encrypt(key, data), 1, warmup=False)
    results.faster(f"{name} bytes API, {sizes[0] // MIB} MiB", ours, theirs, "espsecure API")
    # bytes in, new bytes out at the large size: the new output object's pages are
    # fresh memory (glibc maps allocations over 32 MiB anew each time)
    big = os.urandom(sizes[1])
    results.info(
        f"{name} bytes API, {sizes[1] // MIB} MiB",
        sizes[1] / median_time(lambda: cipher.encrypt(big, ADDRESS), runs) / 1e6,
        "MB/s",
    )


def whole_command(results: Results, folder: Path, sizes: tuple[int, int], runs: int) -> None:
    key_path = folder / "key.bin"
    key_path.write_bytes(os.urandom(32))
    espsec, espsecure_cmd = command("espsec"), command("espsecure")
    ours_t, theirs_t = [], []
    targets = (8.0, 10.0)
    for size, target in zip(sizes, targets, strict=True):
        plain = folder / f"plain-{size}.bin"
        with plain.open("wb") as fh:
            block = os.urandom(min(size, 16 * MIB))
            for _ in range(size // len(block)):
                fh.write(block)
        ours_out, theirs_out = folder / "ours.bin", folder / "theirs.bin"
        commands = {
            "espsec": [
                espsec,
                "flash-encryption",
                "encrypt",
                str(plain),
                "-o",
                str(ours_out),
                "--key",
                str(key_path),
                "--address",
                hex(ADDRESS),
            ],
            "espsecure": [
                espsecure_cmd,
                "encrypt-flash-data",
                "--aes-xts",
                "--keyfile",
                str(key_path),
                "--address",
                hex(ADDRESS),
                "--output",
                str(theirs_out),
                str(plain),
            ],
            # as the command loads NumPy: with one OpenBLAS thread
            "floor": ["env", "OPENBLAS_NUM_THREADS=1", *import_floor(FLOOR)],
        }
        medians = paired(commands, runs)
        if ours_out.read_bytes() != theirs_out.read_bytes():
            raise BenchError(f"espsec flash-encryption encrypt output differs ({size} bytes)")
        ours_t.append(medians["espsec"])
        theirs_t.append(medians["espsecure"])
        results.faster(
            f"command: encrypt {size // MIB} MiB",
            medians["espsec"],
            medians["espsecure"],
            "espsecure",
            target=target,
        )
        results.floor(
            f"command: import floor, {size // MIB} MiB run",
            medians["floor"],
            medians["espsecure"],
            "espsecure",
        )
        if size == sizes[1]:
            peak = peak_rss_mib(commands["espsec"])
            ref_peak = peak_rss_mib(commands["espsecure"])
            results.limit(
                f"command: peak memory, {size // MIB} MiB",
                peak,
                200,
                unit="MiB",
                reference=ref_peak,
                reference_name="espsecure",
            )
        for p in (plain, ours_out, theirs_out):
            p.unlink()
    results.scaling(
        f"command: encrypt {sizes[0] // MIB}->{sizes[1] // MIB} MiB",
        *ours_t,
        sizes[1] / sizes[0],
        reference=(theirs_t[0], theirs_t[1]),
        reference_name="espsecure",
    )


def main() -> int:
    args = parser(__doc__).parse_args()
    results = Results("flash_encryption")
    if args.quick:
        sizes, runs, key_sizes = (1 * MIB, 4 * MIB), 1, (256,)
    else:
        sizes, runs, key_sizes = (16 * MIB, 64 * MIB), 5, (256, 512)
    for bits in key_sizes:
        in_process(results, sizes, bits, runs)
    with tempfile.TemporaryDirectory(prefix="espsec-bench-fe-") as tmp:
        whole_command(results, Path(tmp), sizes, 1 if args.quick else 3)
    report(results, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
