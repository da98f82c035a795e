"""Key files for eFuse burns: raw bytes pass through, ECDSA PEMs give their scalar, any
other PEM or a digest of the wrong size is refused in one line naming the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from espsec import _pem, secure_boot
from espsec.efuse import keys
from espsec.errors import EspsecError, KeyFormatError, UsageError

KEY = bytes(range(32))


def fake_digest(pem: bytes) -> bytes:
    return hashlib.sha256(pem).digest()


def sb_digest(pem: bytes) -> bytes:
    return secure_boot.key_digest(secure_boot.load_public_key(pem))


def pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_raw_key_bytes_are_burned_as_the_file_holds_them():
    assert keys.key_bytes(KEY, "XTS_AES_128_KEY") == KEY
    assert keys.key_bytes(b"\x00" * 5, "HMAC_UP") == b"\x00" * 5  # sizes: checked on staging


@pytest.mark.parametrize(("curve", "size"), [(ec.SECP192R1(), 24), (ec.SECP256R1(), 32)])
def test_ecdsa_key_pem_gives_its_big_endian_scalar(curve, size):
    key = ec.generate_private_key(curve)
    scalar = keys.key_bytes(pkcs8(key), "ECDSA_KEY")
    assert scalar == key.private_numbers().private_value.to_bytes(size, "big")


def test_pem_for_a_raw_key_purpose_is_a_usage_error():
    pem = pkcs8(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(UsageError, match="HMAC_UP key file holds raw key bytes, found a PEM"):
        keys.key_bytes(pem, "hmac_up")


def test_public_key_pem_for_an_ecdsa_purpose_names_the_file(tmp_path: Path):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ecdsa.pub.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(_pem.PemError) as info:
        keys.read_key_file(path, "ECDSA_KEY")
    assert info.value.source == str(path) and info.value.found == "a public key"
    assert "ECDSA P-192/P-256/P-384 private key in PEM" in str(info.value)


def test_missing_key_file_is_one_line_naming_it(tmp_path: Path):
    with pytest.raises(EspsecError, match="key file not found") as info:
        keys.read_key_file(tmp_path / "nokey.bin", "HMAC_UP")
    assert info.value.source == str(tmp_path / "nokey.bin")


def test_digest_comes_from_a_key_pem_or_32_raw_bytes(sb_key_dir: Path):
    pem = (sb_key_dir / "rsa3072.pub.pem").read_bytes()
    assert keys.digest_bytes(pem, sb_digest) == sb_digest(pem)
    digest = bytes(range(32))
    assert keys.digest_bytes(digest, fake_digest) == digest
    with pytest.raises(KeyFormatError, match="32-byte digest file, found 5 bytes"):
        keys.digest_bytes(b"short", fake_digest)


def test_digest_file_must_hold_32_bytes(tmp_path: Path):
    path = tmp_path / "digest.bin"
    path.write_bytes(bytes(31))
    with pytest.raises(UsageError, match="32 bytes, found 31") as info:
        keys.read_digest_file(path)
    assert info.value.source == str(path)
    path.write_bytes(bytes(32))
    assert keys.read_digest_file(path) == bytes(32)


def test_public_key_digest_errors_name_the_file(tmp_path: Path, sb_key_dir: Path):
    pub = sb_key_dir / "ecdsa256.pub.pem"
    assert keys.read_public_key_digest(pub, sb_digest) == sb_digest(pub.read_bytes())
    bad = tmp_path / "cert.pem"
    bad.write_bytes(b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n")
    with pytest.raises(_pem.PemError) as info:
        keys.read_public_key_digest(bad, sb_digest)
    assert info.value.source == str(bad) and info.value.found == "an X.509 certificate"


def test_plan_files_are_read_relative_to_the_plan_folder(tmp_path: Path, sb_key_dir: Path):
    (tmp_path / "k.bin").write_bytes(KEY)
    (tmp_path / "pub.pem").write_bytes((sb_key_dir / "ecdsa256.pub.pem").read_bytes())
    files = keys.KeyFiles(tmp_path, sb_digest)
    assert files.key("k.bin", "HMAC_UP") == KEY
    assert files.digest("pub.pem") == sb_digest((tmp_path / "pub.pem").read_bytes())
    (tmp_path / "odd.bin").write_bytes(bytes(7))
    with pytest.raises(KeyFormatError) as info:
        files.digest("odd.bin")
    assert info.value.source == str(tmp_path / "odd.bin")
