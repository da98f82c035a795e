"""Secure Boot v2 sign and verify of a 4 MiB image: espsec against espsecure.

For RSA-3072 and ECDSA-P256, in one run:

* **whole commands**, each run a fresh process as a user runs it, in alternation:
  ``espsec secure-boot sign`` against ``espsecure sign-data --version 2``. Target:
  at least 3x. Both signatures must verify with the other tool's verifier's rules
  (``espsec`` checks espsecure's signed image, and the reverse). Beside them, the
  **import floor**: Python starting and importing only click and cryptography, which
  any such command does before any work; the row shows the most the ratio can be;
* **in process**: sign and verify through the Python APIs
  (:func:`espsec.secure_boot.sign` / :func:`~espsec.secure_boot.verify` against
  ``espsecure.sign_data`` / ``verify_signature_v2``), loading the key file included,
  as a build step does. Target for verify: at least as fast as espsecure.

``--quick``: a 512 KiB image, one run each.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

import espsecure
from _harness import (
    BenchError,
    Results,
    command,
    import_floor,
    median_time,
    paired,
    parser,
    report,
)

from espsec import secure_boot
from espsec.chips import get_chip
from espsec.image import build_app_image

MIB = 1 << 20
FLOOR = ("click", "cryptography.hazmat.primitives.serialization", "hashlib")
"""What any espsec command that loads a key imports, whatever else it does."""


def make_image(size: int) -> bytes:
    chip = get_chip("esp32p4")
    # The builder sizes DROM/DRAM/IRAM in proportion to the code: scale once to hit size.
    probe = len(build_app_image(chip, code_size=size // 2))
    return build_app_image(chip, code_size=(size // 2 * size // probe) & ~3)


def bench_scheme(results: Results, folder: Path, app: Path, scheme: str, runs: int) -> None:
    key = folder / f"{scheme}.pem"
    key.write_bytes(secure_boot.generate_private_key(scheme))
    pub = folder / f"{scheme}.pub.pem"
    pub.write_bytes(secure_boot.public_key_pem(secure_boot.load_private_key(key.read_bytes())))
    ours_out, theirs_out = folder / f"ours-{scheme}.bin", folder / f"theirs-{scheme}.bin"
    size = f"{app.stat().st_size / MIB:.1g} MiB"

    medians = paired(
        {
            "espsec": [
                command("espsec"),
                "secure-boot",
                "sign",
                str(app),
                "-k",
                str(key),
                "-o",
                str(ours_out),
            ],
            "espsecure": [
                command("espsecure"),
                "sign-data",
                "--version",
                "2",
                "--keyfile",
                str(key),
                "--output",
                str(theirs_out),
                str(app),
            ],
            "floor": import_floor(FLOOR),
        },
        runs,
    )
    results.faster(
        f"command: sign {size}, {scheme}",
        medians["espsec"],
        medians["espsecure"],
        "espsecure",
        target=3.0,
    )
    results.floor(
        f"import floor of the command ({', '.join(FLOOR)})",
        medians["floor"],
        medians["espsecure"],
        "espsecure",
    )
    public = secure_boot.load_public_key(pub.read_bytes())
    if not secure_boot.verify(theirs_out.read_bytes(), keys=[public]).ok:
        raise BenchError(f"espsec does not verify espsecure's {scheme} signature")
    with pub.open("rb") as kf, ours_out.open("rb") as df, contextlib.redirect_stdout(io.StringIO()):
        espsecure.verify_signature_v2(False, None, kf, df)  # raises if it does not verify

    def ours_sign() -> None:
        k = secure_boot.load_private_key(key.read_bytes())
        ours_out.write_bytes(secure_boot.sign(app.read_bytes(), [k]))

    def theirs_sign() -> None:
        with key.open("rb") as kf, app.open("rb") as df, contextlib.redirect_stdout(io.StringIO()):
            espsecure.sign_data("2", [kf], str(theirs_out), False, False, None, [], [], df)

    def ours_verify() -> None:
        k = secure_boot.load_public_key(pub.read_bytes())
        if not secure_boot.verify(ours_out.read_bytes(), keys=[k]).ok:
            raise BenchError(f"espsec does not verify its own {scheme} signature")

    def theirs_verify() -> None:
        with (
            pub.open("rb") as kf,
            theirs_out.open("rb") as df,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            espsecure.verify_signature_v2(False, None, kf, df)

    in_process_runs = max(runs, 5) if runs > 1 else 1
    results.faster(
        f"sign {size}, {scheme}, in process",
        median_time(ours_sign, in_process_runs),
        median_time(theirs_sign, in_process_runs),
        "espsecure API",
    )
    results.faster(
        f"verify {size}, {scheme}, in process",
        median_time(ours_verify, in_process_runs),
        median_time(theirs_verify, in_process_runs),
        "espsecure API",
        target=1.0,
    )


def main() -> int:
    args = parser(__doc__).parse_args()
    results = Results("secure_boot")
    size, runs = (512 * 1024, 1) if args.quick else (4 * MIB, 5)
    with tempfile.TemporaryDirectory(prefix="espsec-bench-sb-") as tmp:
        folder = Path(tmp)
        app = folder / "app.bin"
        app.write_bytes(make_image(size))
        for scheme in ("rsa3072", "ecdsa256"):
            bench_scheme(results, folder, app, scheme, runs)
    report(results, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
