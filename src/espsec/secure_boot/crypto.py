"""The signature primitives of Secure Boot v2: RSA-PSS and ECDSA over a prehashed digest."""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from espsec.chips import ECDSA384
from espsec.errors import KeyFormatError
from espsec.secure_boot.keys import _CURVES, PrivateKey, PublicKey, hash_name, scheme_of
from espsec.secure_boot.signature_block import (
    _COORD_LEN,
    EcdsaPublicParams,
    PublicParams,
    RsaPublicParams,
    key_digest_of,
)

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def image_digest(content: bytes | memoryview, scheme: str) -> bytes:
    """The digest a block of ``scheme`` records for ``content`` (SHA-384 for P-384)."""
    return hashlib.new(hash_name(scheme), content).digest()


def _prehashed(scheme: str) -> utils.Prehashed:
    return utils.Prehashed(hashes.SHA384() if scheme == ECDSA384 else hashes.SHA256())


def public_params(key: PrivateKey | PublicKey) -> PublicParams:
    """The block encoding parameters of a key's public half."""
    scheme = scheme_of(key)
    public = (
        key if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) else key.public_key()
    )
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return RsaPublicParams(numbers.n, numbers.e)
    point = public.public_numbers()
    return EcdsaPublicParams(scheme, point.x, point.y)


def key_digest(key: PrivateKey | PublicKey) -> bytes:
    """The 32-byte digest burned into ``SECURE_BOOT_DIGESTn`` for ``key``
    (equal to ``espsecure digest-sbv2-public-key``)."""
    return key_digest_of(public_params(key))


def public_key_of(params: PublicParams) -> PublicKey:
    """A usable public key object from block parameters (:class:`KeyFormatError` if invalid)."""
    try:
        if isinstance(params, RsaPublicParams):
            return rsa.RSAPublicNumbers(params.e, params.n).public_key()
        curve = _CURVES[params.scheme]()
        return ec.EllipticCurvePublicNumbers(params.x, params.y, curve).public_key()
    except ValueError as exc:
        raise KeyFormatError(f"public key in signature block is invalid: {exc}") from None


def sign_digest(key: PrivateKey, digest: bytes) -> bytes:
    """Sign an image digest; RSA-PSS bytes, or ECDSA r‖s big-endian (fixed width)."""
    scheme = scheme_of(key)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, _PSS, _prehashed(scheme))
    der = key.sign(digest, ec.ECDSA(_prehashed(scheme)))
    return der_to_raw(der, scheme)


def der_to_raw(der: bytes, scheme: str) -> bytes:
    """ECDSA DER signature to fixed-width big-endian r‖s."""
    r, s = utils.decode_dss_signature(der)
    n = _COORD_LEN[scheme]
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def check_signature(public: PublicKey, digest: bytes, signature: bytes) -> bool:
    """True if ``signature`` (the form :func:`sign_digest` returns) is valid for ``digest``."""
    scheme = scheme_of(public)
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, digest, _PSS, _prehashed(scheme))
        else:
            n = _COORD_LEN[scheme]
            if len(signature) != 2 * n:
                return False
            r = int.from_bytes(signature[:n], "big")
            s = int.from_bytes(signature[n:], "big")
            der = utils.encode_dss_signature(r, s)
            public.verify(der, digest, ec.ECDSA(_prehashed(scheme)))
    except (InvalidSignature, ValueError):
        return False
    return True
