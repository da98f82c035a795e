"""An ESP32-P4 v3 device through its download mode: espefuse and espsec read the chip
with its v3 eFuse table, and a P-384 key burned by espefuse arrives as 5-bit purposes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from espsec.cli.main import main
from espsec.device import VirtualDevice

P384_PEM = (
    Path(__file__).parents[2]
    / "vectors/esp-idf/components/esp_hal_security/test_apps/crypto/main/ecdsa"
    / "ecdsa384_priv_key.pem"
)


def efuse_cli(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["efuse", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout + result.stderr


def test_p384_key_burned_through_download_mode_lands_as_5_bit_purposes(tmp_path: Path):
    folder = tmp_path / "dev"
    VirtualDevice.create(folder, "esp32p4", 1 << 20)  # v3.1, the newest revision known
    code, out = efuse_cli("summary", "--device", folder, "--json")
    assert code == 0, out
    fields = json.loads(out)["fields"]
    assert {"KEY_PURPOSE_2_H", "SECURE_BOOT_SHA384_EN"} <= set(fields)
    code, out = efuse_cli("burn-key", "--device", folder, "BLOCK_KEY2", P384_PEM, "ECDSA_KEY_P384")
    assert code == 0, out
    efuses = VirtualDevice.open(folder).efuses
    names = [efuses.layout.purpose_name(efuses.key_purpose(b)) for b in efuses.layout.key_blocks]
    assert names[2:4] == ["ECDSA_KEY_P384_H", "ECDSA_KEY_P384_L"]
    assert efuses.is_read_protected("BLOCK_KEY2") and efuses.is_read_protected("BLOCK_KEY3")
    assert not efuses.key_purpose_writeable("BLOCK_KEY2")
