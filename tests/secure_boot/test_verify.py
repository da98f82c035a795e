"""Verification against keys and against eFuse key digests, as the ROM does it."""

from __future__ import annotations

import pytest

from espsec import secure_boot
from espsec.errors import FormatError, UsageError
from espsec.secure_boot import SECTOR_SIZE, BlockVerdict


@pytest.fixture(scope="module")
def two_signed(s3_app, sb_keys):
    return secure_boot.sign(s3_app, [sb_keys["rsa3072"], sb_keys["rsa3072-b"]])


def test_accepts_with_public_key(two_signed, sb_keys):
    report = secure_boot.verify(two_signed, keys=[sb_keys["rsa3072-b"].public_key()])
    assert report.ok and report.verified.index == 1
    assert report.blocks[0].verdict is BlockVerdict.KEY_NOT_TRUSTED
    assert report.blocks[2].verdict is BlockVerdict.EMPTY


def test_rejects_tampered_image(two_signed, sb_keys):
    tampered = bytearray(two_signed)
    tampered[0x100] ^= 1
    report = secure_boot.verify(bytes(tampered), keys=[sb_keys["rsa3072"]])
    assert not report.ok
    assert report.blocks[0].verdict is BlockVerdict.IMAGE_DIGEST_MISMATCH


def test_rejects_forged_signature_with_recomputed_digest(two_signed, sb_keys):
    """An attacker who edits the image and fixes the block digest and CRC still fails."""
    import hashlib
    import zlib

    data = bytearray(two_signed)
    data[0x100] ^= 1
    content = bytes(data[:-SECTOR_SIZE])
    block = bytearray(data[-SECTOR_SIZE : -SECTOR_SIZE + 1216])
    block[4:36] = hashlib.sha256(content).digest()
    block[1196:1200] = zlib.crc32(bytes(block[:1196])).to_bytes(4, "little")
    data[-SECTOR_SIZE : -SECTOR_SIZE + 1216] = block
    report = secure_boot.verify(bytes(data), keys=[sb_keys["rsa3072"]])
    assert report.blocks[0].verdict is BlockVerdict.BAD_SIGNATURE
    assert not report.ok


def test_rejects_image_signed_by_untrusted_key(two_signed, sb_keys):
    report = secure_boot.verify(two_signed, keys=[sb_keys["rsa3072-c"]])
    assert not report.ok
    assert "key not trusted" in report.reason


def test_efuse_digests_report_which_slot_verified(two_signed, sb_keys):
    digests = [
        secure_boot.key_digest(sb_keys["rsa3072-c"]),
        secure_boot.key_digest(sb_keys["rsa3072-b"]),
        None,
    ]
    report = secure_boot.verify(two_signed, key_digests=digests)
    assert report.ok
    assert report.verified.index == 1 and report.verified.slot == 1


def test_rejects_image_signed_by_revoked_key(s3_app, sb_keys):
    signed = secure_boot.sign(s3_app, [sb_keys["rsa3072"]])
    digests = [secure_boot.key_digest(sb_keys["rsa3072"]), None, None]
    report = secure_boot.verify(signed, key_digests=digests, revoked={0})
    assert not report.ok
    assert report.blocks[0].verdict is BlockVerdict.KEY_REVOKED and report.blocks[0].slot == 0


def test_second_block_still_verifies_when_first_key_revoked(two_signed, sb_keys):
    digests = [
        secure_boot.key_digest(sb_keys["rsa3072"]),
        secure_boot.key_digest(sb_keys["rsa3072-b"]),
    ]
    report = secure_boot.verify(two_signed, key_digests=digests, revoked={0})
    assert report.ok and report.verified.slot == 1


def test_corrupt_crc_is_reported_not_trusted(two_signed, sb_keys):
    data = bytearray(two_signed)
    data[-SECTOR_SIZE + 500] ^= 0xFF
    report = secure_boot.verify(bytes(data), keys=[sb_keys["rsa3072"]])
    assert report.blocks[0].verdict is BlockVerdict.CORRUPT
    assert not report.ok


def test_unaligned_or_short_image_is_reported_as_not_signed(two_signed, sb_keys, s3_app):
    for bad in (two_signed[:-1], two_signed[:4096], two_signed + b"\xff", s3_app):
        with pytest.raises(FormatError, match="image is not signed"):
            secure_boot.verify(bad, keys=[sb_keys["rsa3072"]])
        with pytest.raises(FormatError, match="image is not signed"):
            secure_boot.info(bad)
        with pytest.raises(FormatError, match="image is not signed"):
            secure_boot.sign(bad, [sb_keys["rsa3072"]], append=True)


def test_verify_needs_something_to_trust(two_signed):
    with pytest.raises(UsageError):
        secure_boot.verify(two_signed)


def test_info_reports_each_slot(two_signed, sb_keys):
    infos = secure_boot.info(two_signed)
    assert [i.state.value for i in infos] == ["valid", "valid", "empty"]
    assert infos[1].key_digest == secure_boot.key_digest(sb_keys["rsa3072-b"])
    assert all(i.image_digest_matches for i in infos[:2])


def _edit_block_and_fix_crc(signed: bytes, pos: int, mask: int) -> bytes:
    import zlib

    data = bytearray(signed)
    start = len(data) - SECTOR_SIZE
    data[start + pos] ^= mask
    data[start + 1196 : start + 1200] = zlib.crc32(bytes(data[start : start + 1196])).to_bytes(
        4, "little"
    )
    return bytes(data)


def test_block_with_even_rsa_modulus_is_corrupt_not_a_crash(two_signed, sb_keys):
    forged = _edit_block_and_fix_crc(two_signed, 36, 0x01)  # low bit of n
    report = secure_boot.verify(forged, keys=[sb_keys["rsa3072"]])
    assert report.blocks[0].verdict is BlockVerdict.CORRUPT
    assert "even" in report.blocks[0].detail
    assert secure_boot.info(forged)[0].state.value == "malformed"


@pytest.mark.parametrize("pos", [36 + 384 + 4, 36 + 384 + 4 + 384])  # rinv, M'
def test_block_whose_stored_rinv_or_mdash_differ_is_refused_as_the_rom_would(
    two_signed, sb_keys, pos
):
    """The ROM hashes the stored key bytes, so its eFuse digest check fails on such a block."""
    forged = _edit_block_and_fix_crc(two_signed, pos, 0x01)
    digests = [secure_boot.key_digest(sb_keys["rsa3072"]), None, None]
    report = secure_boot.verify(forged, key_digests=digests)
    assert report.blocks[0].verdict is BlockVerdict.CORRUPT
    assert not report.ok
