"""End-to-end boots of the virtual device: ROM, bootloader, rollback, anti-rollback, first
boot (Secure Boot v2, flash encryption), each behaviour and attack in its own test.

Expected behaviour comes from ESP-IDF's bootloader sources (cited in the docstrings of
``espsec.device``); images are built and signed by espsec here, and by espsecure in
``tests/compat/test_device_compat.py``.
"""

from __future__ import annotations

import dataclasses

import pytest

from espsec import efuse, secure_boot
from espsec.device import Outcome, Stage, VirtualDevice, WriteMode
from espsec.device.boot_select import ota
from espsec.efuse import security_state
from espsec.errors import UsageError
from espsec.flash_encryption import FlashCipher
from espsec.image.otadata import OtaData, OtaImgState, OtaSelectEntry
from espsec.sdkconfig import BootloaderConfig
from espsec.secure_boot import SignatureBlock, read_sector

from .kit import (
    AGGRESSIVE,
    FACTORY_TABLE,
    FE_DEV,
    LOCKED,
    OTA0,
    OTA1,
    PLAIN,
    ROLLBACK,
    SECURE,
    app,
    bootloader,
    device,
    flip,
    signed,
)

OTADATA = 0xD000


def write_otadata(dev: VirtualDevice, *entries: OtaSelectEntry) -> None:
    """Flash an otadata partition holding ``entries`` (plain, over UART)."""
    padded = list(entries) + [OtaData().entries[0]] * (2 - len(entries))
    dev.write_flash(OTADATA, OtaData((padded[0], padded[1])).to_bytes(), name="otadata")


def burn_digests(dev: VirtualDevice, *keys: secure_boot.PrivateKey, enable: bool = True) -> None:
    """What espefuse burn-key-digest + burn-efuse SECURE_BOOT_EN would do."""
    for n, key in enumerate(keys):
        efuse.burn_key_digest(
            dev.efuses, f"BLOCK_KEY{n}", secure_boot.key_digest(key), f"SECURE_BOOT_DIGEST{n}"
        )
    if enable:
        efuse.burn(dev.efuses, {"SECURE_BOOT_EN": 1})


def with_bad_signature(signed_image: bytes) -> bytes:
    """Block 0 re-signed with garbage: CRC and image digest still right, signature wrong."""
    content, sector = secure_boot.split_signed(signed_image)
    block = read_sector(sector)[0].block
    assert block is not None
    bad = dataclasses.replace(block, signature=bytes(b ^ 0x55 for b in block.signature))
    raw = bad.to_bytes()
    assert SignatureBlock.parse(raw).key_digest == block.key_digest
    return content + raw + sector[len(raw) :]


# -- ROM ------------------------------------------------------------------------------


def test_rom_boots_plain_bootloader_and_factory_app():
    dev = device(PLAIN, boot=bootloader(), apps={0x10000: app("1.2.3")}, table=FACTORY_TABLE)
    report = dev.boot()
    assert report.outcome is Outcome.RUNNING
    assert report.app is not None
    assert (report.app.partition, report.app.version) == ("factory", "1.2.3")
    rom = report.stage(Stage.ROM)
    assert rom is not None and rom.images[0].decrypted is False
    assert report.efuse_burns == ()


def test_rom_refuses_erased_flash():
    dev = VirtualDevice.new("esp32s3", 1 << 20)
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "invalid magic byte 0xff" in report.refusal


def test_rom_refuses_bootloader_with_bad_checksum():
    boot = bytearray(bootloader())
    boot[0x200] ^= 0xFF  # inside the first segment's data
    dev = device(PLAIN, boot=bytes(boot), apps={OTA0: app()})
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert report.refusal.startswith("ROM: bootloader at 0x0 refused: checksum")


def test_rom_refuses_unsigned_bootloader_when_secure_boot_enabled(k0):
    dev = device(PLAIN, boot=bootloader(), apps={OTA0: app()})
    burn_digests(dev, k0)
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "signature: no signature blocks" in report.refusal


def test_rom_refuses_bootloader_signed_by_untrusted_key(k0, rogue):
    dev = device(PLAIN, boot=signed(bootloader(), rogue), apps={OTA0: app()})
    burn_digests(dev, k0)
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "block 0: key not trusted" in report.refusal


def test_rom_refuses_bootloader_signed_only_by_revoked_key(k0, k1):
    dev = device(PLAIN, boot=signed(bootloader(), k0), apps={OTA0: app()})
    burn_digests(dev, k0, k1)
    efuse.burn(dev.efuses, {"SECURE_BOOT_KEY_REVOKE0": 1})
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "block 0: key revoked" in report.refusal


def test_rom_accepts_bootloader_when_another_block_matches_unrevoked_slot(k0, k1):
    dev = device(PLAIN, boot=signed(bootloader(), k0, k1), apps={OTA0: app()})
    burn_digests(dev, k0, k1)
    efuse.burn(dev.efuses, {"SECURE_BOOT_KEY_REVOKE0": 1})
    report = dev.boot()
    rom = report.stage(Stage.ROM)
    assert rom is not None and rom.ok
    assert rom.images[0].efuse_slot == 1
    verdicts = [b.verdict.value for b in rom.images[0].signature.blocks]
    assert verdicts[:2] == ["key revoked", "verified"]


def test_rom_aggressive_revocation_burns_key_revoke_for_failed_signature(k0, k1):
    boot = with_bad_signature(signed(bootloader(), k0, k1))
    dev = device(PLAIN, boot=boot, apps={OTA0: app()})
    burn_digests(dev, k0, k1)
    efuse.burn(dev.efuses, {"SECURE_BOOT_AGGRESSIVE_REVOKE": 1})
    report = dev.boot()
    # block 1 (key 1) still verifies: the bootloader boots, but slot 0 is now revoked
    assert report.stage(Stage.ROM).ok
    assert "burn-efuse SECURE_BOOT_KEY_REVOKE0 1" in report.burned
    assert security_state(dev.efuses).digest_slots[0].revoked


def test_rom_without_aggressive_revocation_keeps_the_key(k0, k1):
    dev = device(PLAIN, boot=with_bad_signature(signed(bootloader(), k0, k1)), apps={OTA0: app()})
    burn_digests(dev, k0, k1)
    dev.boot()
    assert not security_state(dev.efuses).digest_slots[0].revoked


def test_rom_aggressive_revocation_skips_image_digest_mismatch(k0):
    tampered = flip(signed(bootloader(), k0), 0x300)
    dev = device(PLAIN, boot=tampered, apps={OTA0: app()})
    burn_digests(dev, k0)
    efuse.burn(dev.efuses, {"SECURE_BOOT_AGGRESSIVE_REVOKE": 1})
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert not security_state(dev.efuses).digest_slots[0].revoked


# -- bootloader: partition table and image checks -------------------------------------


def test_boot_refuses_partition_table_with_bad_md5():
    dev = device(PLAIN, boot=bootloader(), apps={OTA0: app()})
    table = bytearray(dev.flash.read_raw(0x8000, 0x1000))
    table[0x20 * 5 + 16] ^= 0xFF  # a byte of the MD5 entry's digest
    dev.write_flash(0x8000, bytes(table))
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "incorrect MD5 checksum" in report.refusal


def test_boot_refuses_missing_partition_table():
    dev = VirtualDevice.new("esp32s3", 1 << 20)
    dev.write_flash(0, bootloader())
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "partition 0 invalid magic number 0xffff" in report.refusal


def test_boot_first_boot_without_factory_records_ota_0_in_otadata():
    dev = device(PLAIN, boot=bootloader(), apps={OTA0: app()})
    report = dev.boot()
    assert report.app.partition == "ota_0"
    otadata = OtaData.parse(dev.flash.read_raw(OTADATA, 0x2000))
    assert otadata[0].ota_seq == 1 and otadata[0].ota_state == OtaImgState.VALID


def test_boot_refuses_app_for_another_chip():
    p4_app = app(chip="esp32p4")
    dev = device(PLAIN, boot=bootloader(), apps={OTA0: p4_app})
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "chip: offset 0xc chip_id: image is not for ESP32-S3" in report.refusal


def test_boot_refuses_app_needing_newer_chip_revision():
    # A new virtual ESP32-S3 is v0.2, the newest revision the chip data knows.
    dev = device(PLAIN, boot=bootloader(), apps={OTA0: app(min_chip_rev_full=3)})
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "image needs a newer chip than v0.2" in report.refusal


def test_boot_refuses_app_with_bad_checksum():
    dev = device(PLAIN, boot=bootloader(), apps={OTA0: flip(app(), 0x120)})
    report = dev.boot()
    assert "ota_0: checksum: calculated" in report.refusal


def test_boot_refuses_app_with_bad_appended_hash():
    image = bytearray(app())
    image[-1] ^= 0xFF  # last byte of the appended SHA-256
    dev = device(PLAIN, boot=bootloader(), apps={OTA0: bytes(image)})
    report = dev.boot()
    assert "ota_0: hash: appended SHA-256 does not match the image" in report.refusal


def test_boot_falls_back_to_other_slot_when_selected_app_is_corrupt():
    dev = device(
        ROLLBACK, boot=bootloader(), apps={OTA0: app("1.0.0"), OTA1: flip(app("2.0.0"), 0x150)}
    )
    write_otadata(
        dev, OtaSelectEntry.make(1, OtaImgState.VALID), OtaSelectEntry.make(2, OtaImgState.VALID)
    )
    report = dev.boot()
    assert report.app.partition == "ota_0"
    assert [i.what for i in report.stage(Stage.BOOTLOADER).images] == ["ota_1", "ota_0"]


# -- rollback and anti-rollback -------------------------------------------------------


def rollback_device() -> VirtualDevice:
    dev = device(ROLLBACK, boot=bootloader(), apps={OTA0: app("1.0.0", 1)})
    assert dev.boot().ok
    return dev


def test_new_app_boots_pending_verify_then_valid_when_confirmed():
    dev = rollback_device()
    assert dev.running.install(app("2.0.0", 2)).ok
    report = dev.running.reboot()
    assert (report.app.partition, report.app.ota_state) == ("ota_1", "PENDING_VERIFY")
    result = dev.running.mark_app_valid()
    assert result.ok and result.secure_version_burn == 2
    again = dev.boot()
    assert (again.app.partition, again.app.ota_state) == ("ota_1", "VALID")
    assert security_state(dev.efuses).secure_version == 2


def test_unconfirmed_app_is_aborted_and_the_old_app_boots():
    dev = rollback_device()
    dev.running.install(app("2.0.0", 2))
    assert dev.running.reboot().app.partition == "ota_1"
    report = dev.boot()  # reset without esp_ota_mark_app_valid_cancel_rollback
    assert report.app.partition == "ota_0"
    assert dev.running.state_of(ota(1)) == "ABORTED"
    assert "PENDING_VERIFY -> ABORTED" in " ".join(report.stage(Stage.BOOTLOADER).notes)


def test_app_marked_invalid_rolls_back_on_reboot():
    dev = rollback_device()
    dev.running.install(app("2.0.0", 2))
    dev.running.reboot()
    assert dev.running.mark_app_invalid_rollback().ok
    report = dev.running.reboot()
    assert report.app.partition == "ota_0"
    assert dev.running.state_of(ota(1)) == "INVALID"


def test_boot_refuses_app_with_lower_secure_version_than_efuse():
    dev = device(ROLLBACK, boot=bootloader(), apps={OTA0: app("1.0.0", 3), OTA1: app("0.9", 2)})
    assert dev.boot().ok  # first boot burns secure version 3
    write_otadata(
        dev, OtaSelectEntry.make(1, OtaImgState.VALID), OtaSelectEntry.make(2, OtaImgState.VALID)
    )
    report = dev.boot()
    assert report.app.partition == "ota_0"
    assert "ota_1 secure_version 2 < eFuse 3: skipped" in report.stage(Stage.BOOTLOADER).notes


def test_set_boot_partition_refuses_lower_secure_version_and_erases_it():
    dev = device(ROLLBACK, boot=bootloader(), apps={OTA0: app("1.0.0", 3)})
    dev.boot()
    assert dev.running.write_image(ota(1), app("0.9", 2)).ok
    result = dev.running.set_boot_partition(ota(1))
    assert result.error is not None and result.error.value == "ESP_ERR_OTA_SMALL_SEC_VER"
    assert set(dev.flash.read_raw(OTA1, 0x1000)) == {0xFF}


def test_boot_burns_secure_version_when_selected_entry_is_valid():
    dev = device(ROLLBACK, boot=bootloader(), apps={OTA0: app("1.0.0", 1), OTA1: app("2.0.0", 4)})
    dev.boot()
    write_otadata(
        dev, OtaSelectEntry.make(1, OtaImgState.VALID), OtaSelectEntry.make(2, OtaImgState.VALID)
    )
    report = dev.boot()
    assert report.app.partition == "ota_1"
    assert "burn eFuse secure version 1 -> 4" in [b.reason for b in report.efuse_burns]
    assert security_state(dev.efuses).secure_version == 4


# -- first boot: Secure Boot v2 -------------------------------------------------------


def sb_device(
    sb_bootloader: bytes, image: bytes, config: BootloaderConfig = SECURE
) -> VirtualDevice:
    return device(config, boot=sb_bootloader, apps={OTA0: image})


def test_first_boot_enables_secure_boot_and_burns_bootloader_digests(sb_bootloader, k0, k1):
    dev = sb_device(sb_bootloader, signed(app(), k0))
    report = dev.boot()
    assert report.ok
    state = security_state(dev.efuses)
    assert state.secure_boot_enabled
    digests = [s.digest for s in state.digest_slots]
    assert digests[:2] == [secure_boot.key_digest(k0).hex(), secure_boot.key_digest(k1).hex()]
    stage = report.stage(Stage.SECURE_BOOT_ENABLE)
    assert stage is not None and [b.blocks for b in stage.efuse_burns] == [
        ("BLOCK_KEY1", "BLOCK_KEY0", "BLOCK0", "BLOCK0 (WR_DIS)")  # WR_DIS last: IDF v6.1+
    ]


def test_first_boot_revokes_unused_digest_slots(sb_bootloader, k0):
    dev = sb_device(sb_bootloader, signed(app(), k0))
    dev.boot()
    assert [s.revoked for s in security_state(dev.efuses).digest_slots] == [False, False, True]


def test_first_boot_keeps_unused_slots_with_allow_unused_digest_slots(sb_bootloader, k0):
    config = BootloaderConfig.from_options(
        secure_boot=True, secure_boot_insecure=True, secure_boot_allow_unused_digest_slots=True
    )
    dev = sb_device(sb_bootloader, signed(app(), k0), config)
    dev.boot()
    assert not any(s.revoked for s in security_state(dev.efuses).digest_slots)


def test_first_boot_disables_jtag_and_enables_secure_download_mode(sb_bootloader, k0):
    dev = sb_device(sb_bootloader, signed(app(), k0))
    dev.boot()
    state = security_state(dev.efuses)
    assert state.jtag.mode == "hard-disabled" and state.jtag.usb_jtag_disabled
    assert dev.efuses.get_int("SOFT_DIS_JTAG") == 0b111
    assert state.download_mode == "secure"
    assert dev.efuses.get_int("DIS_DIRECT_BOOT") == 1
    assert not dev.efuses.is_writeable("RD_DIS")  # WR_DIS_RD_DIS: no FE in this config


def test_first_boot_disables_download_mode_when_configured(sb_bootloader, k0):
    config = BootloaderConfig.from_options(
        secure_boot=True, secure_uart_rom_dl_mode="SECURE_DISABLE_ROM_DL_MODE"
    )
    dev = sb_device(sb_bootloader, signed(app(), k0), config)
    dev.boot()
    assert security_state(dev.efuses).download_mode == "disabled"
    with pytest.raises(UsageError, match="download mode is disabled"):
        dev.write_flash(OTA1, app())


def test_first_boot_refuses_app_not_signed_by_a_bootloader_key(sb_bootloader, rogue):
    dev = sb_device(sb_bootloader, signed(app(), rogue))
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "no application key digest matches the bootloader key digest" in report.refusal
    assert report.refusal_step == "esp_secure_boot_v2_permanently_enable"
    assert not report.stage(Stage.SECURE_BOOT_ENABLE).ok
    assert report.efuse_burns == ()
    assert not security_state(dev.efuses).secure_boot_enabled


def test_first_boot_refuses_unsigned_bootloader(k0):
    dev = device(SECURE, boot=bootloader(), apps={OTA0: signed(app(), k0)})
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "bootloader image appears invalid" in report.refusal
    assert report.refusal_step == "esp_secure_boot_v2_permanently_enable"
    assert report.efuse_burns == ()


def test_first_boot_uses_preburned_digest(k0):
    dev = device(SECURE, boot=signed(bootloader(), k0), apps={OTA0: signed(app(), k0)})
    burn_digests(dev, k0, enable=False)
    report = dev.boot()
    assert report.ok
    assert any(
        "pre-loaded public key digest" in n for n in report.stage(Stage.SECURE_BOOT_ENABLE).notes
    )
    assert security_state(dev.efuses).digest_slots[0].block == "BLOCK_KEY0"


def test_second_boot_verifies_app_against_efuse_slot(sb_bootloader, k1):
    dev = sb_device(sb_bootloader, signed(app(), k1))
    dev.boot()
    report = dev.boot()
    assert report.ok and report.app.efuse_slot == 1
    assert report.stage(Stage.SECURE_BOOT_ENABLE) is None
    assert report.efuse_burns == ()


def secured(sb_bootloader: bytes, k0) -> VirtualDevice:
    dev = sb_device(sb_bootloader, signed(app("1.0.0"), k0))
    assert dev.boot().ok
    return dev


def test_boot_refuses_tampered_app(sb_bootloader, k0):
    dev = secured(sb_bootloader, k0)
    image = bytearray(dev.flash.read_raw(OTA0, 0x14000))
    image[0x1000] ^= 0x01  # inside the code; SB v2 trusts only the signature
    dev.write_flash(OTA0, bytes(image))
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "ota_0: checksum" in report.refusal or "image digest mismatch" in report.refusal


def test_boot_refuses_app_whose_checksum_was_fixed_after_tampering(sb_bootloader, k0):
    from espsec.image import EspImage

    dev = secured(sb_bootloader, k0)
    good = signed(app("1.0.0"), k0)
    parsed = EspImage.parse(good)
    seg = parsed.segments[1]
    evil = dataclasses.replace(seg, data=flip(seg.data, 16))
    rebuilt = EspImage.create(parsed.header, [parsed.segments[0], evil, *parsed.segments[2:]])
    body = rebuilt.to_bytes()
    forged = body + b"\xff" * (len(good) - 4096 - len(body)) + good[-4096:]
    dev.write_flash(OTA0, forged)
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "ota_0: signature: block 0: image digest mismatch" in report.refusal


def test_boot_refuses_app_signed_by_revoked_key(sb_bootloader, k0, k1):
    dev = secured(sb_bootloader, k0)
    efuse.burn(dev.efuses, {"SECURE_BOOT_KEY_REVOKE1": 1})
    dev.write_flash(OTA0, signed(app("2.0.0"), k1))
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "ota_0: signature: block 0: key revoked" in report.refusal


def test_boot_refuses_app_signed_by_untrusted_key(sb_bootloader, k0, rogue):
    dev = secured(sb_bootloader, k0)
    dev.write_flash(OTA0, signed(app("2.0.0"), rogue))
    report = dev.boot()
    assert "ota_0: signature: block 0: key not trusted" in report.refusal


def test_boot_refuses_unsigned_app_after_secure_boot(sb_bootloader, k0):
    dev = secured(sb_bootloader, k0)
    dev.write_flash(OTA0, app("2.0.0").ljust(0x14000, b"\xff"))  # old signature erased too
    report = dev.boot()
    assert "ota_0: signature: no signature blocks" in report.refusal


def test_bootloader_never_revokes_app_keys_even_with_aggressive_revocation(sb_bootloader, k0):
    dev = device(AGGRESSIVE, boot=sb_bootloader, apps={OTA0: signed(app(), k0)})
    assert dev.boot().ok
    assert dev.efuses.get_int("SECURE_BOOT_AGGRESSIVE_REVOKE") == 1
    dev.write_flash(OTA0, with_bad_signature(signed(app("2.0.0"), k0)))
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED and "bad signature" in report.refusal
    assert not any(s.revoked for s in security_state(dev.efuses).digest_slots[:2])


# -- first boot: flash encryption -----------------------------------------------------


def fe_key(dev: VirtualDevice) -> bytes:
    """The XTS key as a key file holds it (test-only access to the hardware view)."""
    from espsec.device.flash import flash_encryption_key

    found = flash_encryption_key(dev.efuses)
    assert found is not None
    return found[1].material


def test_first_boot_flash_encryption_development_mode():
    dev = device(FE_DEV, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    report = dev.boot()
    assert report.ok and len(report.passes) == 2
    assert report.passes[0].ended == "reset: flash encryption enabled"
    state = security_state(dev.efuses)
    assert state.flash_crypt_cnt == 0b001 and state.flash_encryption_mode == "development"
    assert dev.efuses.get_int("DIS_DOWNLOAD_MANUAL_ENCRYPT") == 0  # ALLOW_ENC in dev mode
    block = dev.efuses.layout.block(state.flash_encryption_key and "BLOCK_KEY0")
    assert dev.efuses.is_read_protected(block) and dev.efuses.is_write_protected(block)
    assert dev.flash.read_raw(0x10000, 16) != app()[:16]
    assert report.passes[1].stages[0].images[0].decrypted


def test_first_boot_flash_encryption_release_mode_locks_down(sb_bootloader, k0):
    dev = device(LOCKED, boot=sb_bootloader, apps={OTA0: signed(app("1.0.0", 1), k0)})
    report = dev.boot()
    assert report.ok
    state = security_state(dev.efuses)
    assert state.flash_crypt_cnt == 0b111 and state.flash_encryption_mode == "release"
    for name in ("DIS_DOWNLOAD_MANUAL_ENCRYPT", "DIS_DOWNLOAD_ICACHE", "DIS_DOWNLOAD_DCACHE"):
        assert dev.efuses.get_int(name) == 1, name
    assert not dev.efuses.is_writeable("RD_DIS")  # WR_DIS_RD_DIS, after the key's RD_DIS
    assert not dev.efuses.is_writeable("DIS_ICACHE")  # WR_DIS bit 2
    assert state.secure_boot_enabled and state.download_mode == "secure"
    stages = [s.stage for s in report.passes[0].stages]
    assert stages == [
        Stage.ROM,
        Stage.BOOTLOADER,
        Stage.SECURE_BOOT_ENABLE,
        Stage.FLASH_ENCRYPTION_ENABLE,
    ]


def test_first_boot_burns_secure_boot_before_flash_encryption(sb_bootloader, k0):
    dev = device(LOCKED, boot=sb_bootloader, apps={OTA0: signed(app("1.0.0", 1), k0)})
    report = dev.boot()
    reasons = [b.reason for b in report.efuse_burns]
    assert reasons == [
        "burn eFuse secure version 0 -> 1",
        "esp_secure_boot_v2_permanently_enable",
        "esp_flash_encrypt_init",
        "esp_flash_encrypt_enable",
    ]
    encrypt = [w.what for w in report.flash_writes if w.encrypted]
    assert encrypt[:2] == ["encrypt bootloader in place", "encrypt partition table in place"]


def test_first_boot_encrypts_exactly_the_partitions_esp_idf_encrypts():
    nvs_data = b"NVS!" * 1024
    dev = device(
        FE_DEV,
        boot=bootloader(),
        apps={0x10000: app()},
        table=FACTORY_TABLE,
        extra=[(0x9000, nvs_data, "nvs"), (0xA1000, b"secret" * 100 + b"\0\0\0\0", "storage")],
    )
    report = dev.boot()
    names = {w.what for w in report.flash_writes}
    assert {
        "encrypt partition 'otadata' in place",
        "encrypt partition 'factory' in place",
        "encrypt partition 'nvs_keys' in place",
        "encrypt partition 'storage' in place",
    } <= names
    assert "encrypt partition 'nvs' in place" not in names
    assert "encrypt partition 'ota_0' in place" not in names  # no valid image: left alone
    assert dev.flash.read_raw(0x9000, len(nvs_data)) == nvs_data
    cipher = FlashCipher(fe_key(dev))
    assert cipher.decrypt(dev.flash.read_raw(0xA1000, 16), 0xA1000) == b"secretsecretsecr"
    assert dev.running.partition("storage").read(0, 6) == b"secret"


def test_first_boot_encrypts_only_the_image_length_of_app_partitions():
    dev = device(FE_DEV, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    report = dev.boot()
    factory = next(
        w for w in report.flash_writes if w.what == "encrypt partition 'factory' in place"
    )
    assert factory.length == -(-len(app()) // 0x1000) * 0x1000 < 0x30000


def test_first_boot_uses_preburned_flash_encryption_key():
    key = bytes(range(32))
    dev = device(FE_DEV, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    efuse.burn_key(dev.efuses, "BLOCK_KEY3", key, "XTS_AES_128_KEY")
    report = dev.boot()
    assert report.ok
    fe = report.stage(Stage.FLASH_ENCRYPTION_ENABLE)
    assert any("pre-loaded flash encryption key in BLOCK_KEY3" in n for n in fe.notes)
    assert FlashCipher(key).decrypt(dev.flash.read_raw(0x10000, 32), 0x10000) == app()[:32]


def test_first_boot_refuses_preburned_key_left_readable():
    dev = device(FE_DEV, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    efuse.burn_key(
        dev.efuses, "BLOCK_KEY0", bytes(range(32)), "XTS_AES_128_KEY", read_protect=False
    )
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "invalid key state in BLOCK_KEY0" in report.refusal
    assert dev.flash.read_raw(0x10000, 16) == app()[:16]  # nothing encrypted


def test_first_boot_with_aes256_key_uses_two_key_blocks():
    config = BootloaderConfig.from_options(
        secure_flash_enc_enabled=True, secure_flash_encryption_keysize="AES256"
    )
    dev = device(config, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    assert dev.boot().ok
    assert security_state(dev.efuses).flash_encryption_key == "XTS_AES_256_KEY"
    assert len(fe_key(dev)) == 64


def test_plaintext_uart_write_after_encryption_does_not_boot():
    dev = device(FE_DEV, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    dev.boot()
    dev.write_flash(0x10000, app("9.9.9"))  # plain: the cache decrypts it to noise
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert "no bootable app partition (factory: " in report.refusal  # noise, not an image


def test_rom_encrypted_write_boots_in_development_mode():
    dev = device(FE_DEV, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    dev.boot()
    dev.write_flash(0x10000, app("2.0.0"), mode=WriteMode.ENCRYPT)
    report = dev.boot()
    assert report.ok and report.app.version == "2.0.0"


def test_rom_refuses_to_encrypt_in_release_mode(sb_bootloader, k0):
    dev = device(LOCKED, boot=sb_bootloader, apps={OTA0: signed(app("1.0.0", 1), k0)})
    dev.boot()
    with pytest.raises(UsageError, match="DIS_DOWNLOAD_MANUAL_ENCRYPT"):
        dev.write_flash(OTA1, app(), mode=WriteMode.ENCRYPT)


def test_pre_encrypted_write_boots_when_host_holds_the_key():
    key = bytes(range(100, 132))
    dev = device(FE_DEV, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    efuse.burn_key(dev.efuses, "BLOCK_KEY0", key, "XTS_AES_128_KEY")
    dev.boot()
    image = app("3.0.0")
    image += b"\xff" * (-len(image) % 16)
    dev.write_flash(0x10000, FlashCipher(key).encrypt(image, 0x10000), mode=WriteMode.PRE_ENCRYPTED)
    assert dev.boot().app.version == "3.0.0"


# -- ESP32-P4 -------------------------------------------------------------------------


def test_esp32p4_first_boot_with_ecdsa_secure_boot_and_flash_encryption(sb_keys):
    key = sb_keys["ecdsa256"]
    # ESP-IDF offers ECDSA Secure Boot on the P4 only as a potentially insecure option
    # (SECURE_BOOT_V2_ECDSA_INSECURE, hardware errata): Kconfig needs both switches.
    config = BootloaderConfig.from_options(
        idf_target="esp32p4",
        secure_boot=True,
        secure_boot_insecure=True,
        secure_boot_v2_force_enable_ecdsa=True,
        secure_signed_apps_scheme="ECDSA_V2",
        secure_flash_enc_enabled=True,
    )
    dev = device(
        config,
        chip="esp32p4",
        boot=signed(bootloader("esp32p4"), key),
        # A new virtual ESP32-P4 is v3.1: the app is built for it (ESP-IDF v6.0's default).
        apps={OTA0: signed(app(chip="esp32p4", min_chip_rev_full=301), key)},
    )
    report = dev.boot()
    assert report.ok, report.refusal
    rom = report.passes[-1].stages[0]
    assert rom.images[0].offset == 0x2000 and rom.images[0].decrypted
    assert report.app.efuse_slot == 0
    assert dev.efuses.get_int("SPI_DOWNLOAD_MSPI_DIS") == 1  # no ALLOW_CACHE
    assert dev.efuses.get_int("DIS_DOWNLOAD_MANUAL_ENCRYPT") == 0  # dev mode: ALLOW_ENC
    assert security_state(dev.efuses).secure_boot_enabled
