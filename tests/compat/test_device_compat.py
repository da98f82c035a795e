"""Oracles for the virtual device: images signed by espsecure boot on it; its flash after
first-boot encryption decrypts with ``espsecure decrypt-flash-data`` to what was flashed;
espefuse reads its eFuse file and sees the state the first boot burned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from espsec import efuse, secure_boot
from espsec.chips import get_chip
from espsec.device import Stage, VirtualDevice, WriteMode
from espsec.device.flash import flash_encryption_key
from espsec.image import build_app_image, build_bootloader_image
from espsec.image.partition_table import PartitionTable
from espsec.sdkconfig import BootloaderConfig

from .conftest import run_tool

CHIP = get_chip("esp32s3")
TABLE = PartitionTable.from_csv(
    """nvs,      data, nvs,     0x9000,  0x4000,
otadata,  data, ota,     0xd000,  0x2000,
phy_init, data, phy,     0xf000,  0x1000,
ota_0,    app,  ota_0,   0x10000, 0x30000,
ota_1,    app,  ota_1,   0x40000, 0x30000,
"""
)
LOCKED = BootloaderConfig.from_options(
    secure_boot=True,
    secure_flash_enc_enabled=True,
    secure_flash_encryption_mode="release",
    bootloader_app_rollback_enable=True,
    bootloader_app_anti_rollback=True,
)


def espsecure_sign(tmp: Path, key: Path, image: bytes, name: str) -> bytes:
    (tmp / f"{name}.bin").write_bytes(image)
    run_tool(
        "espsecure", "sign-data", "-v", "2", "-k", key, "-o", tmp / f"{name}-signed.bin",
        tmp / f"{name}.bin",
    )  # fmt: skip
    return (tmp / f"{name}-signed.bin").read_bytes()


@pytest.fixture(scope="module")
def booted(tmp_path_factory, sb_key_dir) -> tuple[Path, dict[int, bytes], VirtualDevice]:
    """A device flashed with espsecure-signed images, after its first boot."""
    tmp = tmp_path_factory.mktemp("device")
    key = sb_key_dir / "rsa3072.pem"
    bootloader = espsecure_sign(tmp, key, build_bootloader_image(CHIP), "bootloader")
    app = espsecure_sign(tmp, key, build_app_image(CHIP, version="1.0.0", secure_version=1), "app")
    flashed = {0x0: bootloader, 0x8000: TABLE.to_bytes(), 0x10000: app}
    dev = VirtualDevice.create(tmp / "dev", "esp32s3", 1 << 20, config=LOCKED)
    dev.write_files([(offset, data, hex(offset)) for offset, data in flashed.items()])
    report = dev.boot()
    assert report.ok, report.refusal
    assert report.stage(Stage.FLASH_ENCRYPTION_ENABLE) is not None
    return tmp, flashed, dev


def test_device_boots_bootloader_and_app_signed_by_espsecure(booted, sb_keys):
    _, _, dev = booted
    report = dev.boot()
    assert report.ok and report.app.version == "1.0.0"
    digest = secure_boot.key_digest(sb_keys["rsa3072"]).hex()
    assert efuse.security_state(dev.efuses).digest_slots[0].digest == digest
    assert report.app.efuse_slot == 0
    assert report.stage(Stage.ROM).images[0].efuse_slot == 0


@pytest.mark.parametrize("offset", [0x0, 0x8000, 0x10000])
def test_flash_after_first_boot_decrypts_with_espsecure_to_the_flashed_plaintext(
    booted, tmp_path, offset
):
    _, flashed, dev = booted
    found = flash_encryption_key(dev.efuses)
    assert found is not None
    key_file = tmp_path / "key.bin"
    key_file.write_bytes(found[1].material)
    plain = flashed[offset]
    length = -(-len(plain) // 16) * 16
    dump = tmp_path / "dump.bin"
    dump.write_bytes(dev.flash.read_raw(offset, length))
    assert dev.flash.read_raw(offset, 64) != plain[:64]  # really encrypted
    run_tool(
        "espsecure", "decrypt-flash-data", "--aes-xts", "-k", key_file, "-a", hex(offset),
        "-o", tmp_path / "plain.bin", dump,
    )  # fmt: skip
    assert (tmp_path / "plain.bin").read_bytes()[: len(plain)] == plain


def test_espefuse_reads_the_state_the_first_boot_burned(booted):
    tmp, _, _ = booted
    out = run_tool(
        "espefuse", "--chip", "esp32s3", "--virt", "--path-efuse-file", tmp / "dev" / "efuse.bin",
        "summary", "--format", "json",
    ).stdout  # fmt: skip
    fields = json.loads(out[out.index("{") :])
    assert fields["SECURE_BOOT_EN"]["value"] is True
    assert fields["KEY_PURPOSE_0"]["value"] == "SECURE_BOOT_DIGEST0"
    assert fields["KEY_PURPOSE_1"]["value"] == "XTS_AES_128_KEY"
    assert fields["BLOCK_KEY1"]["readable"] is False
    assert fields["SECURE_BOOT_KEY_REVOKE1"]["value"] is True
    assert fields["SECURE_BOOT_KEY_REVOKE2"]["value"] is True
    assert fields["DIS_DOWNLOAD_MANUAL_ENCRYPT"]["value"] is True
    assert fields["ENABLE_SECURITY_DOWNLOAD"]["value"] is True
    assert fields["SPI_BOOT_CRYPT_CNT"]["value"] == "Enable"
    assert fields["SECURE_VERSION"]["value"] == 1


def test_image_encrypted_by_espsecure_boots_as_a_pre_encrypted_write(tmp_path):
    key = bytes(range(1, 33))
    (tmp_path / "key.bin").write_bytes(key)
    config = BootloaderConfig.from_options(secure_flash_enc_enabled=True)
    dev = VirtualDevice.new("esp32s3", 1 << 20, config=config)
    efuse.burn_key(dev.efuses, "BLOCK_KEY0", key, "XTS_AES_128_KEY")
    dev.write_files(
        [
            (0, build_bootloader_image(CHIP), "bootloader"),
            (0x8000, TABLE.to_bytes(), "table"),
            (0x10000, build_app_image(CHIP, version="1.0.0"), "app"),
        ]
    )
    assert dev.boot().ok
    app = build_app_image(CHIP, version="7.0.0")
    (tmp_path / "app.bin").write_bytes(app + b"\xff" * (-len(app) % 16))
    run_tool(
        "espsecure", "encrypt-flash-data", "--aes-xts", "-k", tmp_path / "key.bin",
        "-a", "0x10000", "-o", tmp_path / "app.enc", tmp_path / "app.bin",
    )  # fmt: skip
    dev.write_flash(0x10000, (tmp_path / "app.enc").read_bytes(), mode=WriteMode.PRE_ENCRYPTED)
    report = dev.boot()
    assert report.ok and report.app.version == "7.0.0"
