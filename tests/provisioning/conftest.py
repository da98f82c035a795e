"""Fixtures for provisioning tests: a booted virtual device with encrypted NVS, an AP
table, and protocomm instances served over HTTP."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from espsec.chips import get_chip
from espsec.device import VirtualDevice
from espsec.image import build_app_image, build_bootloader_image
from espsec.image.partition_table import PartitionTable
from espsec.provisioning.protocomm import srp
from espsec.sdkconfig import BootloaderConfig

from .helpers import APS, PASSWORD, USERNAME

TABLE = PartitionTable.from_csv(
    """nvs,      data, nvs,      0x9000,  0x4000,
otadata,  data, ota,      0xd000,  0x2000,
factory,  app,  factory,  0x10000, 0x30000,
nvs_keys, data, nvs_keys, 0x40000, 0x1000, encrypted
"""
)


@pytest.fixture(scope="session")
def sec2_creds() -> tuple[bytes, bytes]:
    salt = srp.new_salt()
    return salt, srp.verifier(USERNAME, PASSWORD, salt)


@pytest.fixture(scope="session")
def device_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A device with flash encryption (so NVS is encrypted), booted once."""
    chip = get_chip("esp32s3")
    folder = tmp_path_factory.mktemp("prov") / "dev"
    dev = VirtualDevice.new(
        "esp32s3", 1 << 20, config=BootloaderConfig.from_options(secure_flash_enc_enabled=True)
    )
    dev.write_files(
        [
            (chip.bootloader_offset, build_bootloader_image(chip), "bootloader"),
            (0x8000, TABLE.to_bytes(), "partition table"),
            (0x10000, build_app_image(chip, version="1.0.0", code_size=512), "app"),
        ]
    )
    assert dev.boot().ok
    dev.save(folder)
    (folder / "wifi_aps.json").write_text(json.dumps(APS))
    return folder


@pytest.fixture
def device_dir(device_template: Path, tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "dev"
    shutil.copytree(device_template, folder)
    yield folder
