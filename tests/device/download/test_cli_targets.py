"""``espsec efuse`` on a virtual device goes through its download mode: no back door."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
