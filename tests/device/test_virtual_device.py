"""The device folder: layout, persistence, flashing an ESP-IDF build folder."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from espsec import efuse
from espsec.device import FaultPlan, Outcome, VirtualDevice, WriteMode
from espsec.efuse import security_state
from espsec.errors import OutputExistsError, UnsupportedError, UsageError
from espsec.sdkconfig import BootloaderConfig

from .kit import FE_DEV, OTA0, OTA_TABLE, app, bootloader

FLASH = 1 << 20


def flashed(path: Path, config: BootloaderConfig = FE_DEV) -> VirtualDevice:
    dev = VirtualDevice.create(path, "esp32s3", FLASH, config=config)
    dev.write_files(
        [(0, bootloader(), "bl"), (0x8000, OTA_TABLE.to_bytes(), "pt"), (OTA0, app(), "app")]
    )
    return dev


def test_create_writes_the_documented_folder(tmp_path):
    VirtualDevice.create(tmp_path / "dev", "esp32s3", FLASH)
    files = sorted(p.name for p in (tmp_path / "dev").iterdir())
    assert files == ["device.json", "efuse.bin", "efuse.bin.espsec", "flash.bin"]
    meta = json.loads((tmp_path / "dev" / "device.json").read_text())
    assert (meta["chip"], meta["flash_size"]) == ("esp32s3", FLASH)
    assert stat.S_IMODE((tmp_path / "dev" / "efuse.bin.espsec").stat().st_mode) == 0o600
    assert (tmp_path / "dev" / "flash.bin").read_bytes() == b"\xff" * FLASH
    assert len((tmp_path / "dev" / "efuse.bin").read_bytes()) == 0x200


def test_create_refuses_to_overwrite_a_device(tmp_path):
    VirtualDevice.create(tmp_path, "esp32s3", FLASH)
    with pytest.raises(OutputExistsError, match="refusing to overwrite"):
        VirtualDevice.create(tmp_path, "esp32p4", FLASH)


def test_unsupported_chip_and_mismatched_sdkconfig_are_refused():
    with pytest.raises(UnsupportedError, match="no virtual device for ESP32-C3"):
        VirtualDevice.new("esp32c3", FLASH)
    with pytest.raises(UsageError, match="the sdkconfig is for esp32p4"):
        VirtualDevice.new(
            "esp32s3", FLASH, config=BootloaderConfig.from_options(idf_target="esp32p4")
        )


def test_boot_is_saved_and_the_hardware_key_survives_reopening(tmp_path):
    flashed(tmp_path)
    assert VirtualDevice.open(tmp_path).boot().ok  # first boot: key generated, flash encrypted
    again = VirtualDevice.open(tmp_path)
    assert security_state(again.efuses).flash_encryption_enabled
    assert again.config == FE_DEV
    report = again.boot()  # the key is read-protected: only the sidecar has it
    assert report.ok and report.stage(report.stages[0].stage).images[0].decrypted
    assert efuse.load(tmp_path / "efuse.bin").read_block("BLOCK_KEY0") == bytes(32)


def test_power_cut_leaves_everything_written_on_disk(tmp_path):
    flashed(tmp_path)
    dev = VirtualDevice.open(tmp_path)
    cut = dev.boot(fault_plan=FaultPlan(5), predict=False)
    assert cut.outcome is Outcome.POWER_LOST
    reopened = VirtualDevice.open(tmp_path)
    assert reopened.efuses == dev.efuses
    assert bytes(reopened.flash.data) == bytes(dev.flash.data)


def test_context_manager_saves_after_app_calls_and_power_cuts(tmp_path):
    flashed(tmp_path, BootloaderConfig.from_options())
    with VirtualDevice.open(tmp_path) as dev:
        dev.boot()
        dev.running.partition("nvs").erase_sector(0)
        dev.running.partition("nvs").write(0, b"\0" * 4)
    assert (tmp_path / "flash.bin").read_bytes()[0x9000:0x9004] == b"\0" * 4


def test_copy_is_independent():
    dev = VirtualDevice.new("esp32s3", FLASH)
    twin = dev.copy()
    efuse.burn(twin.efuses, {"SECURE_BOOT_EN": 1})
    twin.write_flash(0, b"\0" * 4)
    assert not security_state(dev.efuses).secure_boot_enabled
    assert dev.flash.read_raw(0, 4) == b"\xff" * 4


def test_write_files_refuses_two_files_in_one_sector():
    dev = VirtualDevice.new("esp32s3", FLASH)
    with pytest.raises(UsageError, match="overlaps the sectors"):
        dev.write_files([(0x1000, b"\0" * 4, "a"), (0x1800, b"\0" * 4, "b")])


def test_write_erases_the_sectors_it_covers():
    dev = VirtualDevice.new("esp32s3", FLASH)
    dev.write_flash(0x1000, b"\0" * 0x1000)
    dev.write_flash(0x1000, b"\x12\x34\x56\x78")
    assert dev.flash.read_raw(0x1000, 8) == b"\x12\x34\x56\x78" + b"\xff" * 4


def test_encrypted_write_needs_a_key():
    with pytest.raises(UsageError, match="no flash encryption key"):
        VirtualDevice.new("esp32s3", FLASH).write_flash(0, b"\0" * 16, mode=WriteMode.ENCRYPT)


def _build_dir(root: Path, chip: str = "esp32s3") -> Path:
    build = root / "build"
    (build / "bootloader").mkdir(parents=True)
    (build / "partition_table").mkdir()
    (build / "bootloader" / "bootloader.bin").write_bytes(bootloader())
    (build / "partition_table" / "partition-table.bin").write_bytes(OTA_TABLE.to_bytes())
    (build / "app.bin").write_bytes(app("4.5.6"))
    (build / "ota_data_initial.bin").write_bytes(b"\xff" * 0x2000)
    args = {
        "flash_settings": {"flash_mode": "dio", "flash_size": "2MB", "flash_freq": "80m"},
        "flash_files": {
            "0x0": "bootloader/bootloader.bin",
            "0x8000": "partition_table/partition-table.bin",
            "0xd000": "ota_data_initial.bin",
            "0x10000": "app.bin",
        },
        "partition-table": {"offset": "0x8000", "file": "partition_table/partition-table.bin"},
        "extra_esptool_args": {"chip": chip, "before": "default_reset", "after": "hard_reset"},
    }
    (build / "flasher_args.json").write_text(json.dumps(args))
    (root / "sdkconfig").write_text(
        'CONFIG_IDF_TARGET="esp32s3"\nCONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y\n'
    )
    return build


def test_flash_build_dir_writes_flasher_args_files_and_records_sdkconfig(tmp_path):
    build = _build_dir(tmp_path)
    dev = VirtualDevice.create(tmp_path / "dev", "esp32s3", FLASH)
    written = dev.flash_build_dir(build)
    assert [f.offset for f in written] == [0x0, 0x8000, 0xD000, 0x10000]
    reopened = VirtualDevice.open(tmp_path / "dev")
    assert reopened.config.bootloader_app_rollback_enable
    report = reopened.boot()
    assert report.ok and report.app.version == "4.5.6"


def test_flash_build_dir_for_another_chip_is_refused(tmp_path):
    build = _build_dir(tmp_path, chip="esp32p4")
    with pytest.raises(UsageError, match="the build is for esp32p4"):
        VirtualDevice.new("esp32s3", FLASH).flash_build_dir(build)


def _file_states(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(folder.iterdir())
    }


def test_a_boot_that_changes_nothing_writes_no_file(tmp_path):
    flashed(tmp_path)
    VirtualDevice.open(tmp_path).boot()  # first boot: burns keys, encrypts flash
    before = _file_states(tmp_path)
    report = VirtualDevice.open(tmp_path).boot()
    assert report.ok and report.flash_writes_made == report.efuse_writes_made == 0
    assert _file_states(tmp_path) == before


def test_a_save_writes_changed_flash_sectors_in_place(tmp_path, monkeypatch):
    flashed(tmp_path, BootloaderConfig.from_options())
    dev = VirtualDevice.open(tmp_path)
    inode = (tmp_path / "flash.bin").stat().st_ino
    written: list[tuple[int, int]] = []
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        written.append((offset, len(data)))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    dev.write_files([(0x9000, b"\0" * 4, "nvs")])  # saves
    assert written == [(0x9000, 0x1000)]
    assert (tmp_path / "flash.bin").stat().st_ino == inode
    assert bytes(VirtualDevice.open(tmp_path).flash.data) == bytes(dev.flash.data)


def test_a_missing_flash_file_is_written_whole_on_the_next_save(tmp_path):
    dev = flashed(tmp_path, BootloaderConfig.from_options())
    (tmp_path / "flash.bin").unlink()
    dev.save()
    assert (tmp_path / "flash.bin").read_bytes() == bytes(dev.flash.data)


def test_an_efuse_burn_is_saved_and_a_new_folder_gets_every_file(tmp_path):
    dev = flashed(tmp_path / "a", BootloaderConfig.from_options())
    efuse.burn(dev.efuses, {"SECURE_BOOT_EN": 1})
    dev.save()
    assert security_state(VirtualDevice.open(tmp_path / "a").efuses).secure_boot_enabled
    dev.save(tmp_path / "b")
    copy = VirtualDevice.open(tmp_path / "b")
    assert copy.efuses == dev.efuses
    assert bytes(copy.flash.data) == bytes(dev.flash.data)
