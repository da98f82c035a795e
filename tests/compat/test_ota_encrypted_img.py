"""esp_encrypted_img compatibility: a minimal independent reference, both directions.

The reference below is written from the format description only
(idf-extra-components ``esp_encrypted_img/tools/esp_enc_img_gen.py``'s layout): magic,
384-byte key block, 16-byte IV, bin_size, tag, 88 reserved bytes, AES-256-GCM without
AAD; RSA-3072 PKCS#1 v1.5 key wrap, or ECIES-P256 with HKDF-SHA256 info
``_esp_enc_img_ecc`` and a device scalar from PBKDF2-HMAC-SHA256(HMAC key, salt, 2048).
It shares no code with ``espsec.ota``.
"""

from __future__ import annotations

import hashlib
import os
import struct

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from espsec import ota

PLAIN = os.urandom(3000) + b"end"

# -- the reference ---------------------------------------------------------------------

_SALT = bytes.fromhex("0e2160642dae76d33448e43d7720123d9f3b1eceb88e573a4e8f7fb94ff0c869")


def ref_device_key(hmac_key: bytes) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.pbkdf2_hmac("sha256", hmac_key, _SALT, 2048), "big")
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _ref_gcm_key_ecies(shared: bytes, salt: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, b"_esp_enc_img_ecc").derive(shared)


def ref_encrypt(plain: bytes, pub: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    iv = os.urandom(16)
    if isinstance(pub, rsa.RSAPublicKey):
        key = os.urandom(32)
        block = pub.encrypt(key, padding.PKCS1v15())
    else:
        eph = ec.generate_private_key(ec.SECP256R1())
        salt = os.urandom(32)
        key = _ref_gcm_key_ecies(eph.exchange(ec.ECDH(), pub), salt)
        point = eph.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        block = point[1:] + salt + bytes(288)
    sealed = AESGCM(key).encrypt(iv, plain, None)
    header = struct.pack("<I", 0x0788B6CF) + block + iv + struct.pack("<I", len(plain))
    return header + sealed[-16:] + bytes(88) + sealed[:-16]


def ref_decrypt(blob: bytes, priv: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    assert struct.unpack_from("<I", blob)[0] == 0x0788B6CF
    block, iv = blob[4:388], blob[388:404]
    (size,) = struct.unpack_from("<I", blob, 404)
    tag = blob[408:424]
    if isinstance(priv, rsa.RSAPrivateKey):
        key = priv.decrypt(block, padding.PKCS1v15())
    else:
        server = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + block[:64])
        key = _ref_gcm_key_ecies(priv.exchange(ec.ECDH(), server), block[64:96])
    return AESGCM(key).decrypt(iv, blob[512 : 512 + size] + tag, None)


# -- tests -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key(sb_keys: dict[str, rsa.RSAPrivateKey]) -> rsa.RSAPrivateKey:
    key = sb_keys["rsa3072-c"]
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def test_reference_rsa_image_decrypts_with_espsec(rsa_key: rsa.RSAPrivateKey) -> None:
    assert ota.decrypt_image(ref_encrypt(PLAIN, rsa_key.public_key()), rsa_key) == PLAIN


def test_reference_ecies_image_decrypts_with_espsec_from_the_hmac_key() -> None:
    hmac_key = os.urandom(32)
    blob = ref_encrypt(PLAIN, ref_device_key(hmac_key).public_key())
    assert ota.decrypt_image(blob, ota.device_private_key(hmac_key)) == PLAIN


def test_espsec_rsa_image_decrypts_with_the_reference(rsa_key: rsa.RSAPrivateKey) -> None:
    assert ref_decrypt(ota.encrypt_image(PLAIN, rsa_key.public_key()), rsa_key) == PLAIN


def test_espsec_ecies_image_decrypts_with_the_reference() -> None:
    hmac_key = os.urandom(32)
    blob = ota.encrypt_image(PLAIN, ota.device_public_key(hmac_key))
    assert ref_decrypt(blob, ref_device_key(hmac_key)) == PLAIN


def test_device_key_matches_the_reference_derivation() -> None:
    for _ in range(3):
        hmac_key = os.urandom(32)
        ours = ota.device_public_key(hmac_key).public_numbers()
        assert ours == ref_device_key(hmac_key).public_key().public_numbers()
