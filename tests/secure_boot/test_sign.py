"""Signing: layout, multi-key, append, external signatures and refusals."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from espsec import secure_boot
from espsec.chips import get_chip
from espsec.errors import FormatError, UsageError, VerificationError
from espsec.secure_boot import SECTOR_SIZE, SlotState


def _valid_blocks(signed: bytes) -> int:
    slots = secure_boot.read_sector(signed[-SECTOR_SIZE:])
    return sum(s.state is SlotState.VALID for s in slots)


def test_pads_with_ff_to_4k_and_appends_one_sector(s3_app, sb_keys):
    signed = secure_boot.sign(s3_app, [sb_keys["rsa3072"]])
    padded = -(-len(s3_app) // SECTOR_SIZE) * SECTOR_SIZE
    assert len(signed) == padded + SECTOR_SIZE
    assert signed[: len(s3_app)] == s3_app
    assert signed[len(s3_app) : padded] == b"\xff" * (padded - len(s3_app))
    assert signed[-SECTOR_SIZE + 1216 :] == b"\xff" * (SECTOR_SIZE - 1216)


def test_block_layout_rsa(s3_app, sb_keys):
    signed = secure_boot.sign(s3_app, [sb_keys["rsa3072"]])
    block = signed[-SECTOR_SIZE : -SECTOR_SIZE + 1216]
    assert block[:4] == b"\xe7\x02\x00\x00"
    assert block[1200:1216] == bytes(16)
    assert (
        secure_boot.key_digest(sb_keys["rsa3072"])
        == __import__("hashlib").sha256(block[36:812]).digest()
    )


@pytest.mark.parametrize("scheme", ["ecdsa192", "ecdsa256", "ecdsa384"])
def test_each_ecdsa_scheme_signs_for_p4(p4_app, sb_keys, scheme):
    signed = secure_boot.sign(p4_app, [sb_keys[scheme]])
    block = signed[-SECTOR_SIZE:][:1216]
    assert block[:2] == b"\xe7\x03"
    assert block[2] == (1 if scheme == "ecdsa384" else 0)
    assert secure_boot.verify(signed, keys=[sb_keys[scheme]]).ok


def test_three_keys_in_one_call(s3_app, sb_keys):
    keys = [sb_keys["rsa3072"], sb_keys["rsa3072-b"], sb_keys["rsa3072-c"]]
    signed = secure_boot.sign(s3_app, keys)
    assert _valid_blocks(signed) == 3
    for key in keys:
        assert secure_boot.verify(signed, keys=[key]).ok


def test_append_adds_blocks_and_keeps_old_ones(s3_app, sb_keys):
    once = secure_boot.sign(s3_app, [sb_keys["rsa3072"]])
    twice = secure_boot.sign(once, [sb_keys["rsa3072-b"]], append=True)
    assert len(twice) == len(once)
    assert twice[-SECTOR_SIZE:][:1216] == once[-SECTOR_SIZE:][:1216]
    assert _valid_blocks(twice) == 2


def test_refuses_a_fourth_block(s3_app, sb_keys):
    full = secure_boot.sign(
        s3_app, [sb_keys["rsa3072"], sb_keys["rsa3072-b"], sb_keys["rsa3072-c"]]
    )
    with pytest.raises(UsageError, match="at most 3"):
        secure_boot.sign(full, [sb_keys["rsa3072-b"]], append=True)
    with pytest.raises(UsageError, match="at most 3"):
        secure_boot.sign(full, [sb_keys["rsa3072"]], append=True)


def test_refuses_ecdsa_on_esp32s3(s3_app, sb_keys):
    with pytest.raises(UsageError, match=r"ESP32-S3 ROM does not accept .*ecdsa256"):
        secure_boot.sign(s3_app, [sb_keys["ecdsa256"]])


def test_refuses_mixed_schemes_in_one_sector(p4_app, sb_keys):
    with pytest.raises(UsageError, match="mix schemes"):
        secure_boot.sign(p4_app, [sb_keys["rsa3072"], sb_keys["ecdsa256"]])


def test_refuses_same_key_twice(s3_app, sb_keys):
    once = secure_boot.sign(s3_app, [sb_keys["rsa3072"]])
    with pytest.raises(UsageError, match="twice"):
        secure_boot.sign(once, [sb_keys["rsa3072"]], append=True)


def test_refuses_to_sign_an_already_signed_image_without_append(s3_app, sb_keys):
    once = secure_boot.sign(s3_app, [sb_keys["rsa3072"]])
    with pytest.raises(UsageError, match="already signed"):
        secure_boot.sign(once, [sb_keys["rsa3072-b"]])


def test_append_to_unsigned_image_is_refused(s3_app, sb_keys):
    with pytest.raises(FormatError):
        secure_boot.sign(
            secure_boot.pad_to_sector(s3_app) + b"\xff" * 4096, [sb_keys["rsa3072"]], append=True
        )


def test_refuses_data_that_is_not_an_esp_image(sb_keys):
    with pytest.raises(FormatError, match="magic"):
        secure_boot.sign(b"\x00" * 5000, [sb_keys["rsa3072"]])


def test_refuses_image_for_another_chip(s3_app, sb_keys):
    with pytest.raises(UsageError, match="not ESP32-P4"):
        secure_boot.sign(s3_app, [sb_keys["rsa3072"]], chip=get_chip("esp32p4"))


def test_external_rsa_pss_signature(s3_app, sb_keys):
    key = sb_keys["rsa3072"]
    digest = secure_boot.signing_digest(s3_app, "rsa3072")
    sig = key.sign(
        digest,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        utils.Prehashed(hashes.SHA256()),
    )
    ext = secure_boot.ExternalSignature(key.public_key(), sig)
    signed = secure_boot.sign(s3_app, external=[ext])
    assert secure_boot.verify(signed, keys=[key.public_key()]).ok


@pytest.mark.parametrize("form", ["der", "raw"])
@pytest.mark.parametrize("scheme", ["ecdsa256", "ecdsa384"])
def test_external_ecdsa_signature_der_or_raw(p4_app, sb_keys, scheme, form):
    key = sb_keys[scheme]
    digest = secure_boot.signing_digest(p4_app, scheme)
    algo = hashes.SHA384() if scheme == "ecdsa384" else hashes.SHA256()
    der = key.sign(digest, ec.ECDSA(utils.Prehashed(algo)))
    if form == "raw":
        r, s = utils.decode_dss_signature(der)
        n = 48 if scheme == "ecdsa384" else 32
        sig = r.to_bytes(n, "big") + s.to_bytes(n, "big")
    else:
        sig = der
    signed = secure_boot.sign(
        p4_app, external=[secure_boot.ExternalSignature(key.public_key(), sig)]
    )
    assert secure_boot.verify(signed, keys=[key]).ok


def test_external_pkcs1v15_signature_is_refused_with_reason(s3_app, sb_keys):
    key = sb_keys["rsa3072"]
    digest = secure_boot.signing_digest(s3_app, "rsa3072")
    sig = key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    with pytest.raises(VerificationError, match="RSA-PSS"):
        secure_boot.sign(s3_app, external=[secure_boot.ExternalSignature(key.public_key(), sig)])


def test_external_signature_by_other_key_is_refused(s3_app, sb_keys):
    digest = secure_boot.signing_digest(s3_app, "rsa3072")
    sig = sb_keys["rsa3072-b"].sign(
        digest,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        utils.Prehashed(hashes.SHA256()),
    )
    with pytest.raises(VerificationError):
        secure_boot.sign(
            s3_app, external=[secure_boot.ExternalSignature(sb_keys["rsa3072"].public_key(), sig)]
        )


def test_signing_digest_for_append_covers_content_without_sector(s3_app, sb_keys):
    once = secure_boot.sign(s3_app, [sb_keys["rsa3072"]])
    assert secure_boot.signing_digest(once, "rsa3072", append=True) == secure_boot.signing_digest(
        s3_app, "rsa3072"
    )
