"""The virtual device answers as silicon running ESP-IDF master does, where it used not to.

Each test pins one hardware behaviour and names, in its docstring, the ESP-IDF function
(or the ROM's documented behaviour) it follows.
"""

from __future__ import annotations

import dataclasses

from espsec import efuse, secure_boot
from espsec.device import Outcome, Stage
from espsec.efuse import security_state
from espsec.efuse.security import read_secure_version
from espsec.sdkconfig import BootloaderConfig
from espsec.secure_boot import SignatureBlock, read_sector

from .kit import OTA0, OTA1, PLAIN, SECURE, app, bootloader, device, signed


def _burn_digests(dev, *keys) -> None:
    for i, key in enumerate(keys):
        efuse.burn_key_digest(
            dev.efuses, f"BLOCK_KEY{i}", secure_boot.key_digest(key), f"SECURE_BOOT_DIGEST{i}"
        )
    efuse.burn(dev.efuses, {"SECURE_BOOT_EN": 1})


def _bad_signature_in_block(signed_image: bytes, index: int) -> bytes:
    """Block ``index`` re-signed with garbage: CRC and image digest right, signature wrong."""
    content, sector = secure_boot.split_signed(signed_image)
    blocks = read_sector(sector)
    size = len(blocks[0].block.to_bytes())  # type: ignore[union-attr]
    block = blocks[index].block
    assert block is not None
    bad = dataclasses.replace(block, signature=bytes(b ^ 0x55 for b in block.signature))
    raw = bad.to_bytes()
    assert SignatureBlock.parse(raw).key_digest == block.key_digest
    at = index * size
    return content + sector[:at] + raw + sector[at + len(raw) :]


# -- 6. aggressive revocation -----------------------------------------------------------


def test_aggressive_revocation_keeps_a_key_whose_block_fails_after_an_earlier_block_verified(
    k0, k1
):
    """ROM, ``SECURE_BOOT_AGGRESSIVE_REVOKE`` (secure-boot-v2.rst "Aggressive Approach"):
    only a key that fails step 3 before any block verified is documented to be revoked;
    the boot report says the later failure was left alone, and why."""
    boot = _bad_signature_in_block(signed(bootloader(), k0, k1), 1)
    dev = device(PLAIN, boot=boot, apps={OTA0: app()})
    _burn_digests(dev, k0, k1)
    efuse.burn(dev.efuses, {"SECURE_BOOT_AGGRESSIVE_REVOKE": 1})
    report = dev.boot()
    assert report.ok
    assert not security_state(dev.efuses).digest_slots[1].revoked
    rom = report.stage(Stage.ROM)
    assert rom is not None
    assert any("does not say" in n and "SECURE_BOOT_DIGEST1" in n for n in rom.notes)


def test_aggressive_revocation_revokes_a_key_that_fails_before_any_block_verified(k0, k1):
    """ROM, ``SECURE_BOOT_AGGRESSIVE_REVOKE``: "the key is revoked as soon as
    verification with this key fails" (block 0 fails, block 1 then verifies)."""
    boot = _bad_signature_in_block(signed(bootloader(), k0, k1), 0)
    dev = device(PLAIN, boot=boot, apps={OTA0: app()})
    _burn_digests(dev, k0, k1)
    efuse.burn(dev.efuses, {"SECURE_BOOT_AGGRESSIVE_REVOKE": 1})
    report = dev.boot()
    assert report.outcome is Outcome.RUNNING
    assert security_state(dev.efuses).digest_slots[0].revoked


# -- 8. the secure version software reads -------------------------------------------------


def test_secure_version_counts_only_the_low_bits_of_the_configured_field_width():
    """``esp_efuse_read_secure_version``: popcount of the low
    ``BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD`` bits; a bit above them does not count."""
    config = BootloaderConfig.from_options(
        bootloader_app_rollback_enable=True,
        bootloader_app_anti_rollback=True,
        bootloader_app_sec_ver_size_efuse_field=4,
    )
    dev = device(config, boot=bootloader(), apps={OTA0: app("1.0.0", 2)})
    efuse.burn(dev.efuses, {"SECURE_VERSION": 0b1000_0000_0011})  # 2, plus bit 11
    assert read_secure_version(dev.efuses, 4) == 2
    assert read_secure_version(dev.efuses, 16) == 3
    report = dev.boot()
    assert report.ok, report.refusal
    assert report.app.secure_version == 2


# -- 3. secure download mode over a disabled download mode --------------------------------


def test_secure_download_mode_request_succeeds_when_download_mode_is_already_disabled(k0):
    """``esp_efuse_enable_rom_secure_download_mode`` returns ``ESP_OK`` and burns nothing
    when ``DIS_DOWNLOAD_MODE`` is burned; Secure Boot is enabled and the app runs."""
    dev = device(SECURE, boot=signed(bootloader(), k0), apps={OTA0: signed(app(), k0)})
    efuse.burn(dev.efuses, {"DIS_DOWNLOAD_MODE": 1})
    report = dev.boot()
    assert report.ok, report.refusal
    assert security_state(dev.efuses).secure_boot_enabled
    assert dev.efuses.get_int("ENABLE_SECURITY_DOWNLOAD") == 0


# -- 4. SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE as Kconfig selects it ---------------------


def test_development_mode_from_sdkconfig_defaults_can_move_to_release_mode_later():
    """``esp_flash_encryption_enable_secure_features`` (esp32s3/flash_encryption_secure_
    features.c) write-protects ``DIS_ICACHE`` (WR_DIS bit 2) only without
    ``SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE``, which development mode selects (through
    ``SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC``); so the later ``esp_flash_encryption_
    set_release_mode`` burn of ``DIS_DOWNLOAD_MANUAL_ENCRYPT`` still lands."""
    config = BootloaderConfig.parse(
        "CONFIG_SECURE_FLASH_ENC_ENABLED=y\nCONFIG_SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT=y\n",
        source="sdkconfig.defaults",
    )
    assert config.secure_flash_skip_write_protection_cache
    dev = device(config, boot=bootloader(), apps={OTA0: app()})
    assert dev.boot().ok
    wr_dis_icache = dev.efuses.field("DIS_ICACHE").wr_dis
    assert wr_dis_icache is not None
    assert not dev.efuses.get_int("WR_DIS") >> wr_dis_icache & 1
    # the move to release mode: what esp_flash_encryption_set_release_mode burns
    efuse.burn(dev.efuses, {"DIS_DOWNLOAD_MANUAL_ENCRYPT": 1, "SPI_BOOT_CRYPT_CNT": 0b111})
    assert security_state(dev.efuses).flash_encryption_mode == "release"
    assert dev.boot().ok


# -- 2. side effects before a first-boot failure ------------------------------------------

SB_ANTI_ROLLBACK = BootloaderConfig.from_options(
    secure_boot=True, bootloader_app_rollback_enable=True, bootloader_app_anti_rollback=True
)


def test_first_boot_burns_secure_version_of_an_app_secure_boot_then_refuses_bricking_the_chip(
    sb_bootloader, k0, rogue
):
    """``bootloader_utility_load_boot_image``: ``set_actual_ota_seq`` writes otadata and
    burns ota_0's secure version (3) *before* ``load_image`` calls
    ``esp_secure_boot_v2_permanently_enable``, which fails (ota_0's key is not the
    bootloader's); the loop goes on and ``check_anti_rollback`` refuses ota_1
    (secure_version 1 < 3): no app boots, on this power-on or any other."""
    dev = device(
        SB_ANTI_ROLLBACK,
        boot=sb_bootloader,
        apps={OTA0: signed(app("3.0.0", 3), rogue), OTA1: signed(app("1.0.0", 1), k0)},
    )
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert read_secure_version(dev.efuses, 16) == 3
    assert not security_state(dev.efuses).secure_boot_enabled
    assert "ota_0: Secure Boot v2 failed" in report.refusal
    assert report.refusal_step == "esp_secure_boot_v2_permanently_enable"
    bootloader_notes = report.stage(Stage.BOOTLOADER).notes
    assert any("first-boot step failed" in n for n in bootloader_notes)
    again = dev.boot()
    assert again.outcome is Outcome.REFUSED  # bricked: ota_1 is below the eFuse for good


def test_first_boot_flash_encryption_failure_comes_after_the_secure_version_burn():
    """The same order for ``esp_flash_encrypt_init``: ``check_and_generate_encryption_keys``
    fails (no free key block), after ``set_actual_ota_seq`` burned the secure version."""
    config = BootloaderConfig.from_options(
        secure_flash_enc_enabled=True,
        bootloader_app_rollback_enable=True,
        bootloader_app_anti_rollback=True,
    )
    dev = device(config, boot=bootloader(), apps={OTA0: app("2.0.0", 2)})
    for i in range(6):  # every key block used
        efuse.burn_key(dev.efuses, f"BLOCK_KEY{i}", bytes([i + 1]) * 32, "USER")
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert read_secure_version(dev.efuses, 16) == 2
    assert report.refusal_step == "check_and_generate_encryption_keys"


# -- 5. signed apps without hardware Secure Boot ------------------------------------------

SIGNED_NO_SB = BootloaderConfig.from_options(
    secure_signed_apps_no_secure_boot=True,
    secure_signed_on_update_no_secure_boot=True,
    secure_flash_enc_enabled=True,
)


def test_signed_update_without_secure_boot_refuses_an_unsigned_or_foreign_ota_image(k0, rogue):
    """``esp_ota_end`` -> ``esp_image_verify`` with ``SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT``:
    the OTA image must be signed by a key of the running app's own signature blocks
    (``secure_boot_signatures_app.c: get_secure_boot_key_digests``)."""
    assert SIGNED_NO_SB.secure_signed_on_update
    dev = device(SIGNED_NO_SB, boot=bootloader(), apps={OTA0: signed(app(), k0)})
    assert dev.boot().ok
    runtime = dev.running
    assert runtime is not None
    assert not runtime.install(app("2.0.0")).ok  # unsigned
    assert not runtime.install(signed(app("2.0.0"), rogue)).ok
    assert runtime.install(signed(app("2.0.0"), k0)).ok
    assert runtime.reboot().app.version == "2.0.0"


def test_first_boot_encryption_covers_the_signature_sector_without_secure_boot(k0):
    """``encrypt_partition`` with ``SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT``: the app's
    image length plus ``esp_secure_boot_sig_block_size()``, so the signature sector is
    encrypted too and the running app can read its own keys through the cache."""
    image = signed(app(), k0)
    dev = device(SIGNED_NO_SB, boot=bootloader(), apps={OTA0: image})
    assert dev.boot().ok
    sector_at = len(image) - 0x1000
    assert dev.flash.read_raw(OTA0 + sector_at, 0x1000) != image[sector_at:]
    assert dev.flash.read(OTA0 + sector_at, 0x1000) == image[sector_at:]
