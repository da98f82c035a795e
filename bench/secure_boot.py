"""Benchmark: sign and verify a 4 MiB image, espsec vs espsecure's Python API, same run.

Both sides include loading the key file, as a signing step in a build does.
Run with ``make bench`` or ``.venv/bin/python bench/secure_boot.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import espsecure

from espsec import secure_boot
from espsec.chips import get_chip
from espsec.image import build_app_image

SIZE = 4 * 1024 * 1024
REPEAT = 5


def best(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="espsec-bench-"))
    chip = get_chip("esp32p4")
    # The builder sizes DROM/DRAM/IRAM in proportion to the code: scale once to hit SIZE.
    probe = len(build_app_image(chip, code_size=SIZE // 2))
    image = build_app_image(chip, code_size=(SIZE // 2 * SIZE // probe) & ~3)
    app = folder / "app.bin"
    app.write_bytes(image)
    print(f"Secure Boot v2, {len(image) / 2**20:.1f} MiB image, best of {REPEAT}")
    print(f"{'operation':<22}{'espsec':>10}{'espsecure':>12}{'speed-up':>10}")
    for scheme in ("rsa3072", "ecdsa256"):
        bench_scheme(folder, app, scheme)
    for p in folder.iterdir():
        os.unlink(p)
    folder.rmdir()


def bench_scheme(folder: Path, app: Path, scheme: str) -> None:
    """Time sign and verify for one scheme, ours and espsecure's."""
    key = folder / f"{scheme}.pem"
    key.write_bytes(secure_boot.generate_private_key(scheme))
    pub = folder / f"{scheme}.pub.pem"
    pub.write_bytes(secure_boot.public_key_pem(secure_boot.load_private_key(key.read_bytes())))
    ours_out = folder / f"ours-{scheme}.bin"
    theirs_out = folder / f"theirs-{scheme}.bin"

    def ours_sign() -> None:
        k = secure_boot.load_private_key(key.read_bytes())
        ours_out.write_bytes(secure_boot.sign(app.read_bytes(), [k]))

    def theirs_sign() -> None:
        with (
            open(key, "rb") as kf,
            open(app, "rb") as df,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            espsecure.sign_data("2", [kf], str(theirs_out), False, False, None, [], [], df)

    def ours_verify() -> None:
        k = secure_boot.load_public_key(pub.read_bytes())
        assert secure_boot.verify(ours_out.read_bytes(), keys=[k]).ok

    def theirs_verify() -> None:
        with (
            open(pub, "rb") as kf,
            open(theirs_out, "rb") as df,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            espsecure.verify_signature_v2(False, None, kf, df)

    for name, ours, theirs in (
        ("sign", ours_sign, theirs_sign),
        ("verify", ours_verify, theirs_verify),
    ):
        t_ours, t_theirs = best(ours), best(theirs)
        label = f"{name} {scheme}"
        ratio = t_theirs / t_ours
        print(f"{label:<22}{t_ours * 1e3:>8.1f}ms{t_theirs * 1e3:>10.1f}ms{ratio:>9.1f}x")


if __name__ == "__main__":
    main()
