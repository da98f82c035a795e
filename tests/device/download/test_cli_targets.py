"""``espsec efuse`` on a virtual device goes through its download mode: no back door."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from espsec import efuse
from espsec.cli.main import main
from espsec.device import VirtualDevice


def run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["efuse", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout + result.stderr


def test_efuse_file_of_a_device_folder_is_refused_and_names_device(tmp_path: Path):
    VirtualDevice.create(tmp_path / "dev", "esp32s3", 1 << 20)
    before = hashlib.sha256((tmp_path / "dev" / "efuse.bin").read_bytes()).hexdigest()
    code, out = run("burn", "--efuse-file", tmp_path / "dev" / "efuse.bin", "SECURE_VERSION", "1")
    assert code == 2 and f"--device {tmp_path / 'dev'}" in out
    after = hashlib.sha256((tmp_path / "dev" / "efuse.bin").read_bytes()).hexdigest()
    assert before == after


def test_offline_efuse_files_are_still_burned_directly(tmp_path: Path):
    efuse.create(tmp_path / "efuse.bin", "esp32s3")
    code, _ = run("burn", "--efuse-file", tmp_path / "efuse.bin", "SECURE_VERSION", "1")
    assert code == 0 and efuse.load(tmp_path / "efuse.bin").get_int("SECURE_VERSION") == 1


def test_exactly_one_target_is_required(tmp_path: Path):
    efuse.create(tmp_path / "efuse.bin", "esp32s3")
    code, out = run("summary")
    assert code == 2 and "--efuse-file, --device or --port" in out
    code, _ = run("summary", "--efuse-file", tmp_path / "efuse.bin", "--port", "socket://x:1")
    assert code == 2


def run_device(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["device", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout + result.stderr


def test_device_flash_goes_through_download_mode(tmp_path: Path):
    VirtualDevice.create(tmp_path / "dev", "esp32p4", 1 << 20)
    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 20)
    code, out = run_device("flash", tmp_path / "dev", "--write", "0x20000", tmp_path / "data.bin")
    assert code == 0, out
    flash = VirtualDevice.open(tmp_path / "dev").flash
    assert flash.read_raw(0x20000, 5120) == bytes(range(256)) * 20


@pytest.mark.slow
def test_device_flash_is_refused_when_download_mode_is_disabled(tmp_path: Path):
    dev = VirtualDevice.create(tmp_path / "dev", "esp32s3", 1 << 20)
    efuse.burn(dev.efuses, {"DIS_DOWNLOAD_MODE": 1})
    dev.save()
    (tmp_path / "data.bin").write_bytes(b"\x00" * 64)
    code, out = run_device("flash", tmp_path / "dev", "--write", "0x20000", tmp_path / "data.bin")
    assert code == 1 and "Failed to connect" in out
    assert VirtualDevice.open(tmp_path / "dev").flash.read_raw(0x20000, 64) == b"\xff" * 64


def test_secure_version_above_every_app_on_the_device_burns_with_a_warning(tmp_path: Path):
    """``--device``: the apps in flash are known, so a SECURE_VERSION none of them reaches
    is warned about; the burn is not blocked, and the next boot indeed finds nothing."""
    from ..kit import OTA0, ROLLBACK, app, bootloader, device

    dev = device(ROLLBACK, boot=bootloader(), apps={OTA0: app("1.0.0", 1)})
    dev.save(tmp_path / "dev")
    result = CliRunner().invoke(
        main, ["efuse", "burn", "--device", str(tmp_path / "dev"), "SECURE_VERSION", "0x3"]
    )
    assert result.exit_code == 0, result.output
    assert "warning SECURE_VERSION_ABOVE_APPS: eFuse secure version 2 is above every app" in (
        result.stderr
    )
    assert "highest app secure version is 1" in result.stderr
    code, out = run_device("boot", tmp_path / "dev")
    assert code == 1 and "refused" in out


def test_secure_version_the_apps_reach_burns_without_a_warning(tmp_path: Path):
    from ..kit import OTA0, ROLLBACK, app, bootloader, device

    device(ROLLBACK, boot=bootloader(), apps={OTA0: app("1.0.0", 2)}).save(tmp_path / "dev")
    code, out = run("burn", "--device", tmp_path / "dev", "SECURE_VERSION", "0x3")
    assert code == 0 and "SECURE_VERSION_ABOVE_APPS" not in out
    assert run_device("boot", tmp_path / "dev")[0] == 0
