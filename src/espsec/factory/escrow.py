"""Escrow: a device's host-generated secrets wrapped to an escrow public key.

When the spec names ``[keys] escrow``, the secrets are kept only in this wrapped form
(the private key to open them is held elsewhere, offline). Two schemes, chosen by the
key: RSA (RSA-OAEP-SHA256 wraps a fresh AES-256-GCM key) or EC P-256/P-384 (ECIES:
ephemeral ECDH, HKDF-SHA256, AES-256-GCM). The serial is the GCM associated data, so a
blob cannot be moved to another device's record.

Blob: ``b"ESPSEC-ESCROW1" ‖ scheme (1 byte) ‖ len (2 bytes BE) ‖ wrapped key or
ephemeral point ‖ nonce (12) ‖ ciphertext+tag``.
"""

from __future__ import annotations

import os
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from espsec import _pem
from espsec._io import PathLike, read_bytes
from espsec.errors import FormatError, UsageError, VerificationError

MAGIC = b"ESPSEC-ESCROW1"
RSA_OAEP = 1
ECIES = 2
EscrowPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
EscrowPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_INFO = b"espsec factory escrow v1"


def load_escrow_key(path: PathLike) -> EscrowPublicKey:
    """The escrow public key (PEM): RSA of at least 2048 bits, or EC P-256/P-384."""
    data = read_bytes(path, what="escrow public key")
    key = _pem.load_public_key(data, source=str(path))
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise UsageError(
                f"escrow RSA key has {key.key_size} bits; at least 2048", source=str(path)
            )
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return key
    raise UsageError("escrow key must be RSA or EC P-256/P-384", source=str(path))


def _kdf(shared: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=_INFO).derive(shared)


def wrap(public: EscrowPublicKey, secret: bytes, serial: str) -> bytes:
    """Encrypt ``secret`` to the escrow key, bound to ``serial``."""
    cek = AESGCM.generate_key(256)
    if isinstance(public, rsa.RSAPublicKey):
        scheme, header = RSA_OAEP, public.encrypt(cek, _OAEP)
    else:
        eph = ec.generate_private_key(public.curve)
        cek = _kdf(eph.exchange(ec.ECDH(), public))
        scheme = ECIES
        header = eph.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    nonce = os.urandom(12)
    body = AESGCM(cek).encrypt(nonce, secret, serial.encode())
    return MAGIC + struct.pack(">BH", scheme, len(header)) + header + nonce + body


def unwrap(private: EscrowPrivateKey, blob: bytes, serial: str) -> bytes:
    """Open an escrow blob with the escrow private key (the recovery side)."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 3:
        raise FormatError("not an escrow blob", offset=0, field="magic")
    scheme, size = struct.unpack_from(">BH", blob, len(MAGIC))
    pos = len(MAGIC) + 3
    header, nonce, body = (
        blob[pos : pos + size],
        blob[pos + size : pos + size + 12],
        blob[pos + size + 12 :],
    )
    try:
        if scheme == RSA_OAEP and isinstance(private, rsa.RSAPrivateKey):
            cek = private.decrypt(header, _OAEP)
        elif scheme == ECIES and isinstance(private, ec.EllipticCurvePrivateKey):
            eph = ec.EllipticCurvePublicKey.from_encoded_point(private.curve, header)
            cek = _kdf(private.exchange(ec.ECDH(), eph))
        else:
            raise FormatError("escrow scheme does not match the key", field="scheme", found=scheme)
        return AESGCM(cek).decrypt(nonce, body, serial.encode())
    except (ValueError, Exception) as exc:
        if isinstance(exc, FormatError):
            raise
        raise VerificationError("escrow blob does not open with this key for this serial") from None
