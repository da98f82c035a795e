"""The virtual device answers as silicon running ESP-IDF master does, where it used not to.

Each test pins one hardware behaviour and names, in its docstring, the ESP-IDF function
(or the ROM's documented behaviour) it follows.
"""

from __future__ import annotations

import dataclasses

from espsec import efuse, secure_boot
from espsec.device import Outcome, Stage
from espsec.efuse import security_state
from espsec.secure_boot import SignatureBlock, read_sector

from .kit import OTA0, PLAIN, app, bootloader, device, signed


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
