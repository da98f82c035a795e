"""The first stage: the mask ROM loads the second-stage bootloader, and verifies it.

* The bootloader sits at the chip's ``ESP_ROM_BOOTLOADER_OFFSET_FLASH`` (0x0 on ESP32-S3,
  0x2000 on ESP32-P4). With ``SPI_BOOT_CRYPT_CNT`` odd the ROM reads it through the
  flash-encryption engine.
* The ROM checks the image container (magic, segments, checksum).
* With ``SECURE_BOOT_EN`` it verifies the Secure Boot v2 signature sector against the
  ``SECURE_BOOT_DIGESTn`` slots, honouring ``SECURE_BOOT_KEY_REVOKEn``: the bootloader
  boots if any block verifies with a key whose digest is in a non-revoked slot
  (``ets_secure_boot_verify_bootloader_with_keys``).
* With ``SECURE_BOOT_AGGRESSIVE_REVOKE`` a trusted key whose signature fails is revoked
  at once (``docs/en/security/secure-boot-v2.rst``, "Aggressive Approach"), if no earlier
  block verified: what the ROM does after a verified block is not documented
  (``docs/adr/0010-aggressive-revocation-after-a-verified-block.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from espsec.chips import revision_name
from espsec.device.hardware import Hardware
from espsec.device.image_check import LoadedImage, SignaturePolicy, efuse_trust, load_image
from espsec.device.image_check import revoked_by_failure as _revoked
from espsec.efuse import BurnRefused, Transaction, security_state
from espsec.errors import UsageError


@dataclass(frozen=True)
class RomResult:
    """What the ROM loaded, or why it refused."""

    bootloader: LoadedImage | None
    refusal: str | None
    step: str | None = None
    """The ROM step behind the refusal (the ROM is closed source: named by what it does,
    or by its ``ets_*`` entry point where ESP-IDF's headers name one)."""

    @property
    def ok(self) -> bool:
        return self.refusal is None


def rom_stage(hw: Hardware, *, dry_run: bool = False) -> RomResult:
    """Load and (with Secure Boot) verify the bootloader; ``dry_run`` burns nothing."""
    log = hw.log
    state = security_state(hw.efuses)
    offset = hw.chip.bootloader_offset
    decrypt = state.flash_encryption_enabled
    log.note(
        f"SPI_BOOT_CRYPT_CNT = 0b{state.flash_crypt_cnt:03b}: flash encryption "
        + ("on, bootloader read through the XTS-AES engine" if decrypt else "off, plain read")
    )
    if decrypt:
        key = hw.flash.engine_key()
        if key is None:
            refusal = "flash encryption is on but no XTS-AES key is burned: the ROM reads noise"
            log.fail(refusal)
            return RomResult(None, refusal, "ROM: read the bootloader through the XTS-AES engine")
        log.note(f"XTS-AES key: {key.purpose} in {', '.join(key.blocks)}")
    policy = None
    if state.secure_boot_enabled:
        trust = efuse_trust(hw.efuses)
        schemes = hw.rom_schemes
        policy = SignaturePolicy.of(trust, schemes)
        log.note(f"SECURE_BOOT_EN = 1: verifying the bootloader against {trust.source}")
        for gate in hw.chip.gated_schemes:
            if gate.scheme in schemes:
                log.note(f"{gate.efuse} = 1: the ROM verifies {gate.scheme} signatures only")
            elif hw.chip_rev < gate.since:
                log.note(
                    f"{hw.chip.display_name} {revision_name(hw.chip_rev)} ROM: no {gate.scheme} "
                    f"Secure Boot (from {revision_name(gate.since)})"
                )
            else:
                log.note(f"{gate.efuse} = 0: the ROM does not verify {gate.scheme} signatures")
    else:
        log.note("SECURE_BOOT_EN = 0: bootloader not verified")
    try:
        loaded = load_image(
            hw.flash,
            what="bootloader",
            offset=offset,
            limit=hw.flash.size - offset,
            decrypt=decrypt,
            chip=hw.chip,
            chip_rev=None,
            kind="bootloader",
            verify_hash=False,
            signature=policy,
        )
    except UsageError as exc:  # e.g. the XTS key is unknown to the model
        log.fail(exc.message)
        return RomResult(None, exc.message, "ROM: read the bootloader through the XTS-AES engine")
    log.image(loaded.check)
    report = loaded.check.signature
    if state.secure_boot_enabled and state.aggressive_revoke and report is not None:
        revocation = _revoked(report)
        for slot in revocation.undocumented:
            log.note(
                f"aggressive revocation: the block for SECURE_BOOT_DIGEST{slot} failed after an "
                "earlier block verified; the ROM's documentation does not say whether it checks "
                "blocks after a verified one (closed source): assumed not, slot not revoked"
            )
        for slot in revocation.revoke:
            if dry_run:
                log.note(f"aggressive revocation would burn SECURE_BOOT_KEY_REVOKE{slot}")
                continue
            try:
                hw.burn(
                    Transaction().burn(f"SECURE_BOOT_KEY_REVOKE{slot}", 1),
                    f"aggressive revocation: the key in SECURE_BOOT_DIGEST{slot} failed",
                )
                log.note(f"aggressive revocation: SECURE_BOOT_KEY_REVOKE{slot} burned")
            except BurnRefused as exc:
                log.note(f"aggressive revocation of slot {slot} not burned: {exc.message}")
    if not loaded.ok:
        refusal = f"ROM: bootloader at 0x{offset:x} refused: {loaded.check.reason}"
        log.fail(refusal)
        step = (
            "ROM: ets_secure_boot_verify_bootloader_with_keys"
            if any(c.name == "signature" and not c.ok for c in loaded.check.checks)
            else "ROM: load the second-stage bootloader image"
        )
        return RomResult(loaded, refusal, step)
    verified = loaded.check.efuse_slot
    if verified is not None:
        log.note(f"bootloader verified with the key in SECURE_BOOT_DIGEST{verified}")
    log.note(f"bootloader loaded from 0x{offset:x}")
    return RomResult(loaded, None)
