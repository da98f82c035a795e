"""Key generation and loading: only keys the ROM can verify get through."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from espsec import secure_boot
from espsec.errors import KeyFormatError


def _pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize("scheme", ["rsa3072", "ecdsa192", "ecdsa256", "ecdsa384"])
def test_generated_key_has_the_requested_scheme(scheme, sb_keys):
    assert secure_boot.scheme_of(sb_keys[scheme]) == scheme


def test_rejects_rsa_2048():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(KeyFormatError, match="RSA-2048"):
        secure_boot.load_private_key(_pem(key))


def test_rejects_unsupported_curve():
    key = ec.generate_private_key(ec.SECP521R1())
    with pytest.raises(KeyFormatError, match="P-521"):
        secure_boot.load_private_key(_pem(key))


def test_rejects_ed25519():
    with pytest.raises(KeyFormatError):
        secure_boot.load_private_key(_pem(ed25519.Ed25519PrivateKey.generate()))


@pytest.mark.parametrize(
    "data", [b"", b"hello", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_rejects_pem_that_is_not_a_key(data):
    with pytest.raises(KeyFormatError):
        secure_boot.load_private_key(data)


def test_public_key_where_private_expected_says_so(sb_key_dir):
    with pytest.raises(KeyFormatError, match="public key"):
        secure_boot.load_private_key((sb_key_dir / "rsa3072.pub.pem").read_bytes())


def test_error_messages_carry_no_key_material(sb_key_dir):
    pem = (sb_key_dir / "ecdsa256.pem").read_bytes()
    broken = pem.replace(b"M", b"!", 3)
    with pytest.raises(KeyFormatError) as info:
        secure_boot.load_private_key(broken)
    assert pem.decode().splitlines()[1][:20] not in str(info.value)
