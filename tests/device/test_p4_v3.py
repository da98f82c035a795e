"""ESP32-P4 v3: ECDSA-P384 Secure Boot and the XTS-AES pseudo rounds, as silicon does them.

ESP-IDF v6.0 builds for P4 v3.1 by default (``ESP32P4_REV_MIN_301``). Its first boot burns
``SECURE_BOOT_SHA384_EN`` for a P-384 build (``esp32p4/secure_boot_secure_features.c``),
and ``XTS_DPA_PSEUDO_LEVEL`` when the build's minimum revision is v3.0+
(``flash_encryption_secure_features.c``, ``spi_flash_encrypt_ll_is_pseudo_rounds_
function_supported``); from then on the ROM verifies the bootloader with SHA-384 and
P-384 keys only. A chip before v3.0 has neither eFuse and no P-384 Secure Boot.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from espsec import secure_boot
from espsec.chips import get_chip
from espsec.device import Outcome
from espsec.efuse import Transaction, security_state
from espsec.errors import UsageError
from espsec.image import build_bootloader_image
from espsec.sdkconfig import BootloaderConfig

from .kit import OTA0, app, device, signed

VECTORS = Path(__file__).parents[1] / "vectors"
P4 = get_chip("esp32p4")
V3_BUILD = 301
"""``CONFIG_ESP_REV_MIN_FULL`` of an ESP-IDF v6.0 ESP32-P4 build (``ESP32P4_REV_MIN_301``)."""


@pytest.fixture(scope="module")
def p384() -> secure_boot.PrivateKey:
    """ESP-IDF's own P-384 Secure Boot test key (tools/test_apps/security/secure_boot)."""
    pem = VECTORS / "esp-idf/tools/test_apps/security/secure_boot/test_ecdsa_p384_key.pem"
    return secure_boot.load_private_key(pem.read_bytes())


def p384_config(**options: object) -> BootloaderConfig:
    return BootloaderConfig.from_options(
        idf_target="esp32p4",
        secure_boot=True,
        secure_boot_insecure=True,
        secure_boot_v2_force_enable_ecdsa=True,
        secure_signed_apps_scheme="ECDSA_V2",
        secure_boot_ecdsa_key_len="BITS_384",
        **options,
    )


def v3_bootloader(min_rev: int = V3_BUILD) -> bytes:
    return build_bootloader_image(P4, min_chip_rev_full=min_rev)


def v3_app(version: str = "1.0.0") -> bytes:
    return app(version, chip="esp32p4", min_chip_rev_full=V3_BUILD)


def test_p384_secure_boot_from_first_boot_to_a_signed_ota(p384, sb_keys):
    dev = device(
        p384_config(),
        chip="esp32p4",
        boot=signed(v3_bootloader(), p384),
        apps={OTA0: signed(v3_app(), p384)},
    )
    assert dev.efuses.revision == 301  # a new virtual P4 is the newest revision known
    first = dev.boot()
    assert first.ok, first.refusal
    efuses = dev.efuses
    assert efuses.get_int("SECURE_BOOT_SHA384_EN") == 1
    state = security_state(efuses)
    assert state.secure_boot_enabled and state.digest_slots[0].valid
    assert bytes.fromhex(state.digest_slots[0].digest or "") == secure_boot.key_digest(p384)
    # From the next boot on, the ROM verifies the bootloader with SHA-384 and P-384.
    again = dev.boot()
    assert again.ok, again.refusal
    rom = again.passes[-1].stages[0]
    assert "SECURE_BOOT_SHA384_EN = 1: the ROM verifies ecdsa384 signatures only" in rom.notes
    assert rom.images[0].efuse_slot == 0
    # A signed OTA update: accepted when signed with the P-384 key...
    runtime = dev.running
    assert runtime is not None
    result = runtime.install(signed(v3_app("2.0.0"), p384))
    assert result.ok, result.reasons
    after = runtime.reboot()
    assert after.ok and after.app is not None and after.app.version == "2.0.0"
    # ...and refused when signed with any other key, even a valid P-256 one.
    runtime = dev.running
    assert runtime is not None
    refused = runtime.install(signed(v3_app("3.0.0"), sb_keys["ecdsa256"]))
    assert not refused.ok


def test_a_v3_build_is_refused_by_a_v0_chip(p384):
    dev = device(
        p384_config(),
        chip="esp32p4",
        boot=signed(v3_bootloader(), p384),
        apps={OTA0: signed(v3_app(), p384)},
        revision=0,
    )
    blank = dev.efuses.copy()
    report = dev.boot()
    assert report.outcome is not Outcome.RUNNING
    assert "image needs a newer chip than v0.0" in (report.refusal or "")
    assert dev.efuses == blank  # nothing burned


def test_p384_secure_boot_is_refused_on_a_v0_chip_even_for_a_build_that_boots_there(p384):
    """A P-384 build for chips before v3.0 (Kconfig forbids it): the first boot fails
    before burning anything, since the chip has no SECURE_BOOT_SHA384_EN."""
    old_app = app(chip="esp32p4")  # v0.0 .. v1.99
    dev = device(
        p384_config(),
        chip="esp32p4",
        boot=signed(v3_bootloader(min_rev=0), p384),
        apps={OTA0: signed(old_app, p384)},
        revision=100,
    )
    blank = dev.efuses.copy()
    report = dev.boot()
    assert report.outcome is not Outcome.RUNNING
    assert "ecdsa384 Secure Boot needs ESP32-P4 v3.0 or later" in json.dumps(report.to_json())
    assert dev.efuses == blank


def test_rom_refuses_a_p384_bootloader_until_sha384_en_is_burned(p384):
    """Secure Boot enabled by hand without SECURE_BOOT_SHA384_EN: the v3 ROM computes
    SHA-256 digests and accepts no P-384 signature block."""
    dev = device(
        p384_config(),
        chip="esp32p4",
        boot=signed(v3_bootloader(), p384),
        apps={OTA0: signed(v3_app(), p384)},
    )
    tx = Transaction().burn_key_digest(
        "BLOCK_KEY0", secure_boot.key_digest(p384), "SECURE_BOOT_DIGEST0"
    )
    tx.burn("SECURE_BOOT_EN", 1).apply(dev.efuses)
    report = dev.boot()
    assert report.outcome is not Outcome.RUNNING
    rom = report.passes[-1].stages[0]
    assert "SECURE_BOOT_SHA384_EN = 0: the ROM does not verify ecdsa384 signatures" in rom.notes
    assert report.refusal_step == "ROM: ets_secure_boot_verify_bootloader_with_keys"
    Transaction().burn("SECURE_BOOT_SHA384_EN", 1).apply(dev.efuses)
    assert dev.boot().ok


def test_release_mode_burns_the_pseudo_round_level_for_a_v3_build(p384):
    config = BootloaderConfig.from_options(
        idf_target="esp32p4", secure_flash_enc_enabled=True, secure_flash_encryption_mode="release"
    )
    assert config.secure_flash_pseudo_round_func  # Kconfig: default y in release mode
    dev = device(config, chip="esp32p4", boot=v3_bootloader(), apps={OTA0: v3_app()})
    report = dev.boot()
    assert report.ok, report.refusal
    assert dev.efuses.get_int("XTS_DPA_PSEUDO_LEVEL") == 1  # STRENGTH_LOW
    assert "XTS_DPA_PSEUDO_LEVEL = 1" in json.dumps(report.to_json())


def test_a_build_for_older_chips_leaves_the_pseudo_rounds_off():
    """``spi_flash_encrypt_ll_is_pseudo_rounds_function_supported`` is false for a build
    whose minimum revision is below v3.0, whatever chip it runs on."""
    config = BootloaderConfig.from_options(
        idf_target="esp32p4", secure_flash_enc_enabled=True, secure_flash_encryption_mode="release"
    )
    dev = device(config, chip="esp32p4", boot=v3_bootloader(min_rev=0), apps={OTA0: v3_app()})
    report = dev.boot()
    assert report.ok, report.refusal
    assert dev.efuses.get_int("XTS_DPA_PSEUDO_LEVEL") == 0


def test_a_build_for_p4_before_v3_has_neither_p384_secure_boot_nor_pseudo_rounds():
    """ESP-IDF v6.0 Kconfig: both options depend on !ESP32P4_SELECTS_REV_LESS_V3."""
    old = {"ESP32P4_SELECTS_REV_LESS_V3": True}
    with pytest.raises(UsageError, match="ESP32P4_SELECTS_REV_LESS_V3"):
        p384_config(raw=old)
    config = BootloaderConfig.from_options(
        idf_target="esp32p4",
        secure_flash_enc_enabled=True,
        secure_flash_encryption_mode="release",
        raw=old,
    )
    assert not config.secure_flash_pseudo_round_func
