"""Make the eFuse corpus of the audit tests with the real espefuse (``--virt`` burns).

Each state is a virtual eFuse file (``NAME.bin``, espefuse's ``--path-efuse-file``
format) and espefuse's ``summary --format json`` of it (``NAME.summary.json``). Keys are
fixed bytes, so a run gives the same files again; ``tests/compat/test_audit_corpus.py``
checks that the committed files are what this espefuse makes.

Usage: ``.venv/bin/python tests/audit/data/make_efuse_corpus.py [OUT_DIR]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "efuse"
ESPEFUSE = Path(sys.executable).with_name("espefuse")

KEY_A = bytes(range(1, 33))
"""The flash-encryption key of the states (32 bytes 01..20)."""
KEY_B = bytes(range(0x41, 0x61))
HMAC = bytes(range(0x81, 0xA1))
DIGEST = bytes.fromhex("5c" * 32)
"""A Secure Boot key digest (any 32 bytes: the audit only sees that a slot holds one)."""

STATES: dict[str, tuple[str, list[list[str]]]] = {
    # name: (chip, espefuse commands in order)
    "s3-blank": ("esp32s3", []),
    # What the development-mode first boot burns: an XTS key and an odd counter.
    "s3-development": (
        "esp32s3",
        [
            ["burn-key", "BLOCK_KEY0", "@KEY_A", "XTS_AES_128_KEY"],
            ["burn-efuse", "SPI_BOOT_CRYPT_CNT", "1"],
        ],
    ),
    # What a release-mode, Secure Boot V2 production line burns (host-based workflow).
    "s3-release": (
        "esp32s3",
        [
            ["burn-key", "BLOCK_KEY0", "@KEY_A", "XTS_AES_128_KEY"],
            ["burn-key", "BLOCK_KEY1", "@DIGEST", "SECURE_BOOT_DIGEST0"],
            ["burn-key", "BLOCK_KEY5", "@HMAC", "HMAC_UP"],
            [
                "burn-efuse",
                "SECURE_BOOT_KEY_REVOKE1",
                "1",
                "SECURE_BOOT_KEY_REVOKE2",
                "1",
                "SPI_BOOT_CRYPT_CNT",
                "7",
                "DIS_DOWNLOAD_MANUAL_ENCRYPT",
                "1",
                "DIS_DOWNLOAD_ICACHE",
                "1",
                "DIS_DOWNLOAD_DCACHE",
                "1",
                "DIS_PAD_JTAG",
                "1",
                "DIS_USB_JTAG",
                "1",
                "DIS_DIRECT_BOOT",
                "1",
                "ENABLE_SECURITY_DOWNLOAD",
                "1",
                "SECURE_BOOT_EN",
                "1",
            ],
            ["write-protect-efuse", "SPI_BOOT_CRYPT_CNT", "RD_DIS"],
        ],
    ),
    # A flash-encryption key burned without read protection (espefuse --no-read-protect).
    "s3-readable-key": (
        "esp32s3",
        [["burn-key", "--no-read-protect", "BLOCK_KEY0", "@KEY_B", "XTS_AES_128_KEY"]],
    ),
    "p4-release": (
        "esp32p4",
        [
            ["burn-key", "BLOCK_KEY0", "@KEY_A", "XTS_AES_128_KEY"],
            ["burn-key", "BLOCK_KEY1", "@DIGEST", "SECURE_BOOT_DIGEST0"],
            [
                "burn-efuse",
                "SECURE_BOOT_KEY_REVOKE1",
                "1",
                "SECURE_BOOT_KEY_REVOKE2",
                "1",
                "SPI_BOOT_CRYPT_CNT",
                "7",
                "DIS_DOWNLOAD_MANUAL_ENCRYPT",
                "1",
                "SPI_DOWNLOAD_MSPI_DIS",
                "1",
                "DIS_PAD_JTAG",
                "1",
                "DIS_USB_JTAG",
                "1",
                "DIS_DIRECT_BOOT",
                "1",
                "ENABLE_SECURITY_DOWNLOAD",
                "1",
                "SECURE_BOOT_EN",
                "1",
            ],
            ["write-protect-efuse", "SPI_BOOT_CRYPT_CNT", "RD_DIS"],
        ],
    ),
}


def make(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, data in (("KEY_A", KEY_A), ("KEY_B", KEY_B), ("HMAC", HMAC), ("DIGEST", DIGEST)):
            files[name] = Path(tmp) / f"{name}.bin"
            files[name].write_bytes(data)
        for state, (chip, commands) in STATES.items():
            efuse_file = out / f"{state}.bin"
            efuse_file.unlink(missing_ok=True)
            base = [str(ESPEFUSE), "--chip", chip, "--virt", "--path-efuse-file", str(efuse_file)]
            for command in [["summary"], *commands]:
                args = [str(files[a[1:]]) if a.startswith("@") else a for a in command]
                subprocess.run([*base, "--do-not-confirm", *args], check=True, capture_output=True)
            summary = out / f"{state}.summary.json"
            subprocess.run(
                [*base, "summary", "--format", "json", "--file", str(summary)],
                check=True,
                capture_output=True,
            )


if __name__ == "__main__":
    make(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
