"""The bootloader configuration a device folder keeps, and the one a build folder gives.

device.json holds it in kconfgen's sdkconfig.json shape, read back through the same
resolver as any input; nothing is written out as sdkconfig text to be parsed again.
"""

from __future__ import annotations

import json

import pytest

from espsec.device import VirtualDevice
from espsec.device.virtual_device import DEVICE_FILE, config_from_build_dir
from espsec.errors import FormatError
from espsec.sdkconfig import BootloaderConfig, SdkconfigError

from .kit import LOCKED

FLASH = 1 << 20


def test_device_json_keeps_the_configuration_as_kconfgen_json(tmp_path):
    VirtualDevice.create(tmp_path, "esp32s3", FLASH, config=LOCKED)
    stored = json.loads((tmp_path / DEVICE_FILE).read_text())["bootloader_config"]
    assert stored["SECURE_FLASH_ENCRYPTION_MODE_RELEASE"] is True
    assert stored["IDF_TARGET"] == "esp32s3"
    assert VirtualDevice.open(tmp_path).config == LOCKED


def test_device_folder_with_sdkconfig_text_still_opens(tmp_path):
    VirtualDevice.create(tmp_path, "esp32s3", FLASH)
    meta = json.loads((tmp_path / DEVICE_FILE).read_text())
    meta["bootloader_config"] = 'CONFIG_IDF_TARGET="esp32s3"\nCONFIG_SECURE_BOOT=y\n'
    (tmp_path / DEVICE_FILE).write_text(json.dumps(meta))
    assert VirtualDevice.open(tmp_path).config.secure_boot_v2_enabled


@pytest.mark.parametrize(
    ("stored", "error", "match"),
    [
        (["SECURE_BOOT"], FormatError, "bootloader_config: not an sdkconfig.json object"),
        ({"SECURE_BOT": True}, SdkconfigError, "CONFIG_SECURE_BOT: unknown option"),
        ({"BOOTLOADER_APP_ANTI_ROLLBACK": True}, SdkconfigError, "depends on"),
    ],
)
def test_bad_stored_configuration_is_one_error_naming_device_json(tmp_path, stored, error, match):
    VirtualDevice.create(tmp_path, "esp32s3", FLASH)
    meta = json.loads((tmp_path / DEVICE_FILE).read_text())
    meta["bootloader_config"] = stored
    (tmp_path / DEVICE_FILE).write_text(json.dumps(meta))
    with pytest.raises(error, match=match) as err:
        VirtualDevice.open(tmp_path)
    assert str(err.value).startswith(str(tmp_path / DEVICE_FILE))


def test_build_folder_kconfgen_json_is_read_directly(tmp_path):
    build = tmp_path / "build"
    (build / "config").mkdir(parents=True)
    document = {
        "IDF_TARGET": "esp32p4",
        "SECURE_FLASH_ENC_ENABLED": True,
        "PARTITION_TABLE_OFFSET": 0x10000,  # kconfgen writes hex options as numbers
        "FREERTOS_HZ": 1000,
    }
    (build / "config" / "sdkconfig.json").write_text(json.dumps(document))
    config = config_from_build_dir(build)
    assert config == BootloaderConfig.from_json(document)
    assert config is not None and config.partition_table_offset == 0x10000
    assert config.raw["FREERTOS_HZ"] == 1000


def test_build_folder_sdkconfig_json_with_a_misspelt_option_names_the_file(tmp_path):
    build = tmp_path / "build"
    (build / "config").mkdir(parents=True)
    json_file = build / "config" / "sdkconfig.json"
    json_file.write_text(json.dumps({"SECURE_BOOT_ALOW_JTAG": True}))
    with pytest.raises(SdkconfigError, match="CONFIG_SECURE_BOOT_ALOW_JTAG: unknown option") as err:
        config_from_build_dir(build)
    assert str(err.value).startswith(str(json_file))
