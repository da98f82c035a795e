"""A production virtual device's second boot: ``boot()`` against the raw crypto it needs.

The device: ESP32-S3, 16 MiB flash, Secure Boot v2 (RSA-3072), release-mode flash
encryption, rollback and anti-rollback, a 4 MiB app in ota_0; its first boot (keys
burned, flash encrypted in place) is done before anything is timed. Then, in one run:

* **``boot()``** of the device opened from its folder (ROM, bootloader, app startup;
  nothing changes on this boot) against the raw crypto such a boot cannot avoid: XTS
  decryption of the bootloader and of the signed app, SHA-256 of both and two RSA-3072
  PSS verifications, timed on the same bytes in the same process. Both in CPU time
  (other load on a shared machine delays them but adds little CPU). Target: at most 2x;
* **bytes written** by that boot (``wchar`` of ``/proc/self/io``): a boot that changes
  nothing writes nothing;
* **``espsec device boot``** as a command, a fresh process each run, against bare
  ``python -c pass`` in alternation. Target: at most 100 ms above bare Python. Beside
  it, the **import floor** of such a command (click, cryptography and NumPy imported,
  nothing done), for how much of the gap any command built on them must pay.

``--quick``: a 512 KiB app, one run each.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from _harness import (
    BenchError,
    Results,
    command,
    cpu_timed,
    import_floor,
    median,
    median_cpu_time,
    paired,
    parser,
    report,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from espsec import secure_boot
from espsec.chips import get_chip
from espsec.device import VirtualDevice
from espsec.device.flash import flash_encryption_key
from espsec.flash_encryption import FlashCipher
from espsec.image import EspImage, build_app_image, build_bootloader_image
from espsec.image.partition_table import PartitionTable
from espsec.sdkconfig import BootloaderConfig

MIB = 1 << 20
FLASH_SIZE = 16 * MIB
FLASH_SIZE_16MB = 4
"""``esp_image_header_t.spi_size`` for 16 MB."""
APP_AT = 0x10000
TABLE = PartitionTable.from_csv(
    """nvs,      data, nvs,      0x9000,   0x4000,
otadata,  data, ota,      0xd000,   0x2000,
phy_init, data, phy,      0xf000,   0x1000,
ota_0,    app,  ota_0,    0x10000,  0x500000,
ota_1,    app,  ota_1,    0x510000, 0x500000,
nvs_keys, data, nvs_keys, 0xa10000, 0x1000, encrypted
"""
)
PRODUCTION = BootloaderConfig.from_options(
    secure_boot=True,
    secure_flash_enc_enabled=True,
    secure_flash_encryption_mode="release",
    bootloader_app_rollback_enable=True,
    bootloader_app_anti_rollback=True,
)
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


FLOOR = ("click", "cryptography.hazmat.primitives.serialization", "numpy")
"""What booting an encrypted, signed device from a click command imports at least."""


def written_bytes() -> int:
    """Bytes this process passed to write calls so far (``wchar``), or -1 off Linux."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:  # pragma: no cover - not Linux
        pass
    return -1


def make_device(folder: Path, app_size: int) -> tuple[Path, bytes, bytes]:
    """The device after its first boot; returns (folder, bootloader, app) as signed."""
    chip = get_chip("esp32s3")
    signer = secure_boot.load_private_key(secure_boot.generate_private_key("rsa3072"))
    probe = len(build_app_image(chip, code_size=app_size // 2))
    app = secure_boot.sign(
        build_app_image(
            chip,
            version="1.0.0",
            secure_version=1,
            code_size=(app_size // 2 * app_size // probe) & ~3,
        ),
        [signer],
    )
    plain = EspImage.parse(build_bootloader_image(chip))
    bootloader = secure_boot.sign(
        EspImage.create(replace(plain.header, spi_size=FLASH_SIZE_16MB), plain.segments).to_bytes(),
        [signer],
    )
    where = folder / "device"
    dev = VirtualDevice.create(where, "esp32s3", FLASH_SIZE, config=PRODUCTION)
    dev.write_files(
        [(0x0, bootloader, "bootloader"), (0x8000, TABLE.to_bytes(), "table"), (APP_AT, app, "app")]
    )
    first = dev.boot()
    if first.app is None:
        raise BenchError(f"first boot did not run the app: {first.refusal}")
    return where, bootloader, app


def raw_crypto(where: Path, bootloader: bytes, app: bytes) -> float:
    """Seconds of the crypto a boot needs: decrypt, hash and verify both images."""
    dev = VirtualDevice.open(where)
    found = flash_encryption_key(dev.efuses)
    if found is None:
        raise BenchError("no flash encryption key burned after the first boot")
    cipher = FlashCipher(found[1])
    images = [(0x0, bootloader), (APP_AT, app)]
    stored = [(at, dev.flash.read_raw(at, len(image))) for at, image in images]
    public = secure_boot.load_private_key(secure_boot.generate_private_key("rsa3072"))
    # the same work: a verification of a signature over the digest (a fresh key signs it)
    signatures = [
        (
            public.sign(
                hashlib.sha256(image[:-4096]).digest(), _PSS, utils.Prehashed(hashes.SHA256())
            )
        )
        for _, image in images
    ]
    pub = public.public_key()

    def run() -> None:
        for (at, raw), signature in zip(stored, signatures, strict=True):
            plain = cipher.decrypt(raw, at)
            digest = hashlib.sha256(memoryview(plain)[:-4096]).digest()
            pub.verify(signature, digest, _PSS, utils.Prehashed(hashes.SHA256()))

    return median_cpu_time(run, 5)


def main() -> int:
    args = parser(__doc__).parse_args()
    results = Results("device_boot")
    app_size, runs = (512 * 1024, 1) if args.quick else (4 * MIB, 7)
    with tempfile.TemporaryDirectory(prefix="espsec-bench-dev-") as tmp:
        where, bootloader, app = make_device(Path(tmp), app_size)
        crypto = raw_crypto(where, bootloader, app)

        def boot() -> float:
            """Seconds of ``boot()`` of the device freshly opened from its folder."""
            dev = VirtualDevice.open(where)
            seconds = cpu_timed(dev.boot)
            if dev.last_report is None or dev.last_report.app is None:
                raise BenchError("the second boot did not run the app")
            return seconds

        boot()
        before = written_bytes()
        boot()
        wrote = written_bytes() - before
        seconds = median([boot() for _ in range(runs)])
        size = f"{app_size / MIB:.1g} MiB"
        results.cost_multiple(
            f"boot() of the device, {size} app", seconds, crypto, "raw crypto", at_most=2.0
        )
        results.limit("bytes written by a boot that changes nothing", wrote, 0, unit="B")
        medians = paired(
            {
                "python": [sys.executable, "-c", "pass"],
                "espsec": [command("espsec"), "device", "boot", str(where)],
                "floor": import_floor(FLOOR),
            },
            runs,
        )
        results.overhead(
            f"command: espsec device boot, {size} app",
            medians["espsec"],
            medians["python"],
            "python -c pass",
            at_most_ms=100,
        )
        results.overhead(
            f"import floor of the command ({', '.join(FLOOR)})",
            medians["floor"],
            medians["python"],
            "python -c pass",
        )
    report(results, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
