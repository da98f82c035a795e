"""Secure Boot v2 signing keys: generation, loading and scheme detection.

Accepted keys are those the ROM can verify: RSA-3072 with e = 65537 (RSA-PSS) and
ECDSA on P-192, P-256 or P-384 (``espsecure generate-signing-key -v 2``).
"""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from espsec import _pem
from espsec._pem import PrivateKey as PrivateKey  # re-exported
from espsec._pem import PublicKey as PublicKey  # re-exported
from espsec.chips import ECDSA192, ECDSA256, ECDSA384, RSA3072, SCHEMES
from espsec.errors import KeyFormatError, UsageError

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    ECDSA192: ec.SECP192R1,
    ECDSA256: ec.SECP256R1,
    ECDSA384: ec.SECP384R1,
}
_CURVE_SCHEME = {"secp192r1": ECDSA192, "secp256r1": ECDSA256, "secp384r1": ECDSA384}
_KINDS = (_pem.rsa_kind(3072), *(_pem.ecdsa_kind(curve()) for curve in _CURVES.values()))
"""The keys the ROM verifies, for :mod:`espsec._pem`."""


def generate_private_key(scheme: str) -> bytes:
    """A new Secure Boot v2 signing key as PEM, from the OS entropy source.

    Written in the traditional OpenSSL PEM form ``espsecure generate-signing-key``
    writes, so either tool can use it.
    """
    key: PrivateKey
    if scheme == RSA3072:
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    elif scheme in _CURVES:
        key = ec.generate_private_key(_CURVES[scheme]())
    else:
        raise UsageError(f"unknown scheme {scheme!r} (expected one of: {', '.join(SCHEMES)})")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def scheme_of(key: PrivateKey | PublicKey) -> str:
    """The Secure Boot v2 scheme of ``key``; :class:`KeyFormatError` if the ROM has none."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size != 3072:
            raise KeyFormatError(f"RSA key has {key.key_size} bits; Secure Boot v2 needs RSA-3072")
        public = key if isinstance(key, rsa.RSAPublicKey) else key.public_key()
        if public.public_numbers().e != 65537:
            raise KeyFormatError("RSA key exponent must be 65537 for Secure Boot v2")
        return RSA3072
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        scheme = _CURVE_SCHEME.get(key.curve.name)
        if scheme is None:
            raise KeyFormatError(
                f"ECDSA key on curve {key.curve.name}; Secure Boot v2 needs P-192, P-256 or P-384"
            )
        return scheme
    raise KeyFormatError(
        f"{type(key).__name__} is not a Secure Boot v2 key type (expected RSA-3072 or ECDSA)"
    )


def load_private_key(pem: bytes) -> PrivateKey:
    """Load a PEM private signing key and check it is a Secure Boot v2 key.

    RSA key-consistency validation is skipped here (it costs ~0.1 s); every signature
    made with the key is verified against its public key before it is used instead,
    which catches a corrupt key and faulty signatures alike.
    """
    key = _pem.load_private_key(pem, kinds=_KINDS, unsafe_skip_rsa_key_validation=True)
    scheme_of(key)
    return key


def load_public_key(pem: bytes) -> PublicKey:
    """Load a PEM public key, or the public half of a PEM private key."""
    key = _pem.load_public_key(pem, kinds=_KINDS, accept_private=True)
    scheme_of(key)
    return key


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of ``key`` (``espsecure extract-public-key -v 2``)."""
    public = (
        key if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) else key.public_key()
    )
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hash_name(scheme: str) -> Literal["sha256", "sha384"]:
    """The image digest a scheme signs: SHA-384 for ECDSA P-384, SHA-256 otherwise."""
    return "sha384" if scheme == ECDSA384 else "sha256"
