"""Fixtures shared by the flash-encryption tests: a partition table and a build folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from espsec.image.partition_table import PartitionTable

FE_CSV = """# Name, Type, SubType, Offset, Size, Flags
nvs,      data, nvs,      0x9000,  0x4000,
otadata,  data, ota,      0xd000,  0x2000,
phy_init, data, phy,      0xf000,  0x1000,
nvs_key,  data, nvs_keys, 0x10000, 0x1000,
factory,  app,  factory,  0x20000, 0x100000,
ota_0,    app,  ota_0,    0x120000, 0x100000,
storage,  data, fat,      0x220000, 0x10000, encrypted
spiffs,   data, spiffs,   0x230000, 0x10000,
"""


@pytest.fixture
def fe_csv() -> str:
    """A table with every kind of partition whole-flash encryption treats differently."""
    return FE_CSV


@pytest.fixture
def fe_table() -> PartitionTable:
    """:data:`FE_CSV` as a table."""
    return PartitionTable.from_csv(FE_CSV)


def _make_build_dir(root: Path, *, chip: str = "esp32s3", flash_size: str = "4MB") -> Path:
    build = root / "build"
    (build / "bootloader").mkdir(parents=True)
    (build / "partition_table").mkdir()
    boot_offset = "0x2000" if chip == "esp32p4" else "0x0"
    (build / "bootloader" / "bootloader.bin").write_bytes(os.urandom(0x4F00))
    table = PartitionTable.from_csv(FE_CSV).to_bytes()
    (build / "partition_table" / "partition-table.bin").write_bytes(table)
    (build / "app.bin").write_bytes(os.urandom(0x12340))
    (build / "ota_data_initial.bin").write_bytes(b"\xff" * 0x2000)
    settings = {"flash_mode": "dio", "flash_size": flash_size, "flash_freq": "80m"}
    args = {
        "write_flash_args": [
            "--flash_mode",
            "dio",
            "--flash_size",
            flash_size,
            "--flash_freq",
            "80m",
        ],
        "flash_settings": settings,
        "flash_files": {
            boot_offset: "bootloader/bootloader.bin",
            "0x20000": "app.bin",
            "0x8000": "partition_table/partition-table.bin",
            "0xd000": "ota_data_initial.bin",
        },
        "bootloader": {
            "offset": boot_offset,
            "file": "bootloader/bootloader.bin",
            "encrypted": "false",
        },
        "app": {"offset": "0x20000", "file": "app.bin", "encrypted": "false"},
        "partition-table": {
            "offset": "0x8000",
            "file": "partition_table/partition-table.bin",
            "encrypted": "false",
        },
        "otadata": {"offset": "0xd000", "file": "ota_data_initial.bin", "encrypted": "false"},
        "extra_esptool_args": {
            "after": "hard_reset",
            "before": "default_reset",
            "stub": True,
            "chip": chip,
        },
    }
    (build / "flasher_args.json").write_text(json.dumps(args, indent=4))
    return build


@pytest.fixture
def make_build_dir() -> Callable[..., Path]:
    """Make a folder shaped like ESP-IDF's ``build/`` (``flasher_args.json`` and files)."""
    return _make_build_dir
