"""Building blocks for the virtual-device tests: tables, configurations, images, devices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

from espsec import secure_boot
from espsec.chips import get_chip
from espsec.device import VirtualDevice
from espsec.image import build_app_image, build_bootloader_image
from espsec.image.partition_table import PartitionTable
from espsec.sdkconfig import BootloaderConfig

FLASH_SIZE = 1 << 20
TABLE_OFFSET = 0x8000

OTA_TABLE = PartitionTable.from_csv(
    """nvs,      data, nvs,     0x9000,  0x4000,
otadata,  data, ota,     0xd000,  0x2000,
phy_init, data, phy,     0xf000,  0x1000,
ota_0,    app,  ota_0,   0x10000, 0x30000,
ota_1,    app,  ota_1,   0x40000, 0x30000,
nvs_keys, data, nvs_keys, 0x70000, 0x1000, encrypted
"""
)
"""Two OTA slots, no factory app (the first boot records ota_0 in otadata), and the
nvs_keys partition ``CONFIG_NVS_ENCRYPTION`` (on with flash encryption) keeps its keys in."""

FACTORY_TABLE = PartitionTable.from_csv(
    """nvs,      data, nvs,      0x9000,  0x4000,
otadata,  data, ota,      0xd000,  0x2000,
phy_init, data, phy,      0xf000,  0x1000,
factory,  app,  factory,  0x10000, 0x30000,
ota_0,    app,  ota_0,    0x40000, 0x30000,
ota_1,    app,  ota_1,    0x70000, 0x30000,
nvs_keys, data, nvs_keys, 0xa0000, 0x1000, encrypted
storage,  data, undefined, 0xa1000, 0x2000, encrypted
"""
)
"""A factory app, two OTA slots and data partitions (encrypted and not)."""

OTA0, OTA1, FACTORY = 0x10000, 0x40000, 0x10000

PLAIN = BootloaderConfig.from_options()
ROLLBACK = BootloaderConfig.from_options(
    bootloader_app_rollback_enable=True, bootloader_app_anti_rollback=True
)
SECURE = BootloaderConfig.from_options(secure_boot=True)
AGGRESSIVE = BootloaderConfig.from_options(
    secure_boot=True, secure_boot_enable_aggressive_key_revoke=True
)
FE_DEV = BootloaderConfig.from_options(secure_flash_enc_enabled=True)
LOCKED = BootloaderConfig.from_options(
    secure_boot=True,
    secure_flash_enc_enabled=True,
    secure_flash_encryption_mode="release",
    bootloader_app_rollback_enable=True,
    bootloader_app_anti_rollback=True,
)
"""The production configuration: Secure Boot v2, release-mode flash encryption,
rollback and anti-rollback (secure download mode by default)."""


@cache
def app(
    version: str = "1.0.0",
    secure_version: int = 0,
    chip: str = "esp32s3",
    **options: int,
) -> bytes:
    """A small synthetic app image (cached: images are deterministic)."""
    return build_app_image(
        get_chip(chip), version=version, secure_version=secure_version, code_size=512, **options
    )


@cache
def bootloader(chip: str = "esp32s3", version: int = 1) -> bytes:
    return build_bootloader_image(get_chip(chip), version=version)


def signed(image: bytes, *keys: secure_boot.PrivateKey) -> bytes:
    return secure_boot.sign(image, list(keys))


def device(
    config: BootloaderConfig,
    *,
    boot: bytes,
    apps: Mapping[int, bytes],
    table: PartitionTable = OTA_TABLE,
    chip: str = "esp32s3",
    flash_size: int = FLASH_SIZE,
    extra: Sequence[tuple[int, bytes, str]] = (),
    revision: int | None = None,
) -> VirtualDevice:
    """A blank chip (the newest revision, unless ``revision``) with bootloader, table
    and apps flashed over UART (plaintext)."""
    dev = VirtualDevice.new(chip, flash_size, config=config, revision=revision)
    files = [
        (get_chip(chip).bootloader_offset, boot, "bootloader"),
        (TABLE_OFFSET, table.to_bytes(), "partition table"),
        *((offset, data, f"app@0x{offset:x}") for offset, data in apps.items()),
        *extra,
    ]
    dev.write_files(files)
    return dev


def flip(image: bytes, offset: int) -> bytes:
    """``image`` with one bit of byte ``offset`` inverted."""
    data = bytearray(image)
    data[offset] ^= 0x01
    return bytes(data)
