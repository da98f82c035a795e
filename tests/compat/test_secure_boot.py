"""Oracle: espsecure (PyPI esptool) and espsec accept each other's Secure Boot v2 output."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from espsec import secure_boot
from espsec.chips import get_chip
from espsec.errors import UsageError

from .conftest import run_tool

SCHEMES = ["rsa3072", "ecdsa192", "ecdsa256", "ecdsa384"]


def _image_for(scheme: str, s3_app: bytes, p4_app: bytes) -> bytes:
    return s3_app if scheme == "rsa3072" else p4_app


def _espsecure_verifies(key: Path, signed: Path) -> None:
    out = run_tool("espsecure", "verify-signature", "-v", "2", "-k", key, signed)
    assert "verification successful" in out.stdout


def _espsecure_signs(key: Path, unsigned: Path, output: Path) -> None:
    run_tool("espsecure", "sign-data", "-v", "2", "-k", key, "-o", output, unsigned)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_espsecure_verifies_our_signature(tmp_path, sb_key_dir, sb_keys, s3_app, p4_app, scheme):
    signed = secure_boot.sign(_image_for(scheme, s3_app, p4_app), [sb_keys[scheme]])
    (tmp_path / "signed.bin").write_bytes(signed)
    _espsecure_verifies(sb_key_dir / f"{scheme}.pub.pem", tmp_path / "signed.bin")


def test_espsecure_verifies_multi_key_and_appended(tmp_path, sb_key_dir, sb_keys, s3_app):
    two = secure_boot.sign(s3_app, [sb_keys["rsa3072"], sb_keys["rsa3072-b"]])
    three = secure_boot.sign(two, [sb_keys["rsa3072-c"]], append=True)
    (tmp_path / "signed.bin").write_bytes(three)
    for name in ("rsa3072", "rsa3072-b", "rsa3072-c"):
        _espsecure_verifies(sb_key_dir / f"{name}.pem", tmp_path / "signed.bin")
    info = run_tool("espsecure", "signature-info-v2", tmp_path / "signed.bin").stdout
    for n, name in enumerate(("rsa3072", "rsa3072-b", "rsa3072-c")):
        digest = secure_boot.key_digest(sb_keys[name])
        assert f"Public key digest for block {n}: {' '.join(f'{b:02x}' for b in digest)}" in info


@pytest.mark.parametrize("scheme", ["rsa3072", "ecdsa256"])
def test_espsecure_verifies_our_block_from_external_signature(
    tmp_path, sb_key_dir, sb_keys, s3_app, p4_app, scheme
):
    image = _image_for(scheme, s3_app, p4_app)
    key = sb_keys[scheme]
    digest = secure_boot.signing_digest(image, scheme)
    if scheme == "rsa3072":
        sig = key.sign(
            digest,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            utils.Prehashed(hashes.SHA256()),
        )
    else:
        sig = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    signed = secure_boot.sign(
        image, external=[secure_boot.ExternalSignature(key.public_key(), sig)]
    )
    (tmp_path / "signed.bin").write_bytes(signed)
    _espsecure_verifies(sb_key_dir / f"{scheme}.pub.pem", tmp_path / "signed.bin")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_we_verify_espsecure_signature(tmp_path, sb_key_dir, sb_keys, s3_app, p4_app, scheme):
    (tmp_path / "app.bin").write_bytes(_image_for(scheme, s3_app, p4_app))
    _espsecure_signs(sb_key_dir / f"{scheme}.pem", tmp_path / "app.bin", tmp_path / "signed.bin")
    signed = (tmp_path / "signed.bin").read_bytes()
    assert (
        secure_boot.sign(_image_for(scheme, s3_app, p4_app), [sb_keys[scheme]])[:-4096]
        == signed[:-4096]
    )
    report = secure_boot.verify(signed, key_digests=[secure_boot.key_digest(sb_keys[scheme])])
    assert report.ok and report.verified.slot == 0


def test_we_append_to_espsecure_signed_image(tmp_path, sb_key_dir, sb_keys, s3_app):
    (tmp_path / "app.bin").write_bytes(s3_app)
    _espsecure_signs(sb_key_dir / "rsa3072.pem", tmp_path / "app.bin", tmp_path / "one.bin")
    two = secure_boot.sign((tmp_path / "one.bin").read_bytes(), [sb_keys["rsa3072-b"]], append=True)
    (tmp_path / "two.bin").write_bytes(two)
    for name in ("rsa3072", "rsa3072-b"):
        _espsecure_verifies(sb_key_dir / f"{name}.pem", tmp_path / "two.bin")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_key_digest_equals_espsecure(tmp_path, sb_key_dir, sb_keys, scheme):
    run_tool(
        "espsecure",
        "digest-sbv2-public-key",
        "-k",
        sb_key_dir / f"{scheme}.pub.pem",
        "-o",
        tmp_path / "d.bin",
    )
    assert (tmp_path / "d.bin").read_bytes() == secure_boot.key_digest(sb_keys[scheme])


def test_espsecure_uses_keys_we_generate(tmp_path, s3_app):
    key = tmp_path / "k.pem"
    key.write_bytes(secure_boot.generate_private_key("rsa3072"))
    (tmp_path / "app.bin").write_bytes(s3_app)
    _espsecure_signs(key, tmp_path / "app.bin", tmp_path / "s.bin")
    signed = (tmp_path / "s.bin").read_bytes()
    assert secure_boot.verify(signed, keys=[secure_boot.load_private_key(key.read_bytes())]).ok


def test_we_refuse_what_espsecure_would_sign_for_wrong_chip(sb_keys, s3_app):
    """espsecure signs anything; we refuse an ECDSA block for an ESP32-S3 image."""
    with pytest.raises(UsageError, match="ESP32-S3 ROM does not accept"):
        secure_boot.sign(s3_app, [sb_keys["ecdsa256"]], chip=get_chip("esp32s3"))
