"""NVS partitions made on the host, flashed to the virtual device, read back as its app does."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from espsec import efuse
from espsec.cli.main import main
from espsec.device import VirtualDevice
from espsec.device.nvs import NvsInitError, read_device_nvs
from espsec.nvs import NvsKeys, generate_csv_partition
from espsec.sdkconfig import BootloaderConfig

from .kit import FACTORY, FACTORY_TABLE, app, bootloader, device

CSV = """key,type,encoding,value
wifi,namespace,,
ssid,data,string,factory-net
channel,data,u8,6
cert,data,hex2bin,00112233445566778899
"""
NVS_OFFSET, NVS_SIZE = 0x9000, 0x4000
NVS_KEYS_OFFSET = 0xA0000


def _values(contents) -> dict[str, object]:
    return {e["key"]: e["value"] for e in contents.to_json()["entries"]}


def test_plain_partition_reads_back_through_the_device(tmp_path):
    nvs = generate_csv_partition(CSV, NVS_SIZE)
    dev = device(
        BootloaderConfig.from_options(),
        boot=bootloader(),
        apps={FACTORY: app()},
        table=FACTORY_TABLE,
        extra=[(NVS_OFFSET, nvs, "nvs")],
    )
    dev.save(tmp_path / "dev")
    values = _values(read_device_nvs(VirtualDevice.open(tmp_path / "dev")))
    assert values["ssid"] == "factory-net" and values["channel"] == 6
    result = CliRunner().invoke(main, ["nvs", "dump", "--device", str(tmp_path / "dev"), "--json"])
    assert result.exit_code == 0, result.output
    assert "factory-net" in json.dumps(json.loads(result.stdout))


def test_hmac_encrypted_partition_reads_back_with_the_efuse_key():
    hmac_key = os.urandom(32)
    keys = NvsKeys.from_hmac_key(hmac_key)
    nvs = generate_csv_partition(CSV, NVS_SIZE, keys=keys)
    config = BootloaderConfig.from_options(
        secure_flash_enc_enabled=True,
        nvs_encryption=True,
        nvs_sec_key_protection_scheme="hmac",
        nvs_sec_hmac_efuse_key_id=3,
    )
    dev = device(
        config,
        boot=bootloader(),
        apps={FACTORY: app()},
        table=FACTORY_TABLE,
        extra=[(NVS_OFFSET, nvs, "nvs")],
    )
    efuse.burn_key(dev.efuses, "BLOCK_KEY3", hmac_key, "HMAC_UP")
    assert dev.boot().app is not None
    assert _values(read_device_nvs(dev))["cert"] == "00112233445566778899"


def test_nvs_keys_partition_protected_by_flash_encryption_is_used():
    keys = NvsKeys.generate()
    nvs = generate_csv_partition(CSV, NVS_SIZE, keys=keys)
    config = BootloaderConfig.from_options(secure_flash_enc_enabled=True, nvs_encryption=True)
    dev = device(
        config,
        boot=bootloader(),
        apps={FACTORY: app()},
        table=FACTORY_TABLE,
        extra=[(NVS_OFFSET, nvs, "nvs"), (NVS_KEYS_OFFSET, keys.to_bytes(), "nvs_keys")],
    )
    dev.boot()  # first boot encrypts nvs_keys in place (ESP-IDF always encrypts it)
    assert dev.flash.read_raw(NVS_KEYS_OFFSET, 64) != keys.to_bytes()[:64]
    assert _values(read_device_nvs(dev))["ssid"] == "factory-net"


def test_reading_nvs_before_the_app_made_its_keys_is_refused_and_changes_nothing():
    config = BootloaderConfig.from_options(secure_flash_enc_enabled=True, nvs_encryption=True)
    dev = device(config, boot=bootloader(), apps={FACTORY: app()}, table=FACTORY_TABLE)
    before = dev.flash.read_raw(0, dev.flash.size)
    with pytest.raises(NvsInitError, match="ESP_ERR_NVS_KEYS_NOT_INITIALIZED"):
        read_device_nvs(dev)
    assert dev.flash.read_raw(0, dev.flash.size) == before
