"""Signers: where a Secure Boot v2 signature is made (a key file, or an HSM).

A :class:`Signer` holds a public key and signs an image digest inside itself, returning
what a signature block stores: RSA-PSS bytes (MGF1-SHA256, salt 32) or ECDSA r‖s
big-endian at fixed width. :class:`KeySigner` wraps a private key in memory;
:class:`espsec.secure_boot.pkcs11.Pkcs11Signer` keeps the key inside a PKCS#11 token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from espsec.secure_boot.crypto import sign_digest
from espsec.secure_boot.keys import PrivateKey, PublicKey


@runtime_checkable
class Signer(Protocol):
    """Something that signs Secure Boot v2 digests with one key."""

    def public_key(self) -> PublicKey:
        """The public half of the signing key."""
        ...

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a prehashed image digest (the form :func:`crypto.sign_digest` returns)."""
        ...


@dataclass(frozen=True)
class KeySigner:
    """A signer over a private key held in memory (a key file)."""

    key: PrivateKey = field(repr=False)

    def public_key(self) -> PublicKey:
        """The public half of the key."""
        return self.key.public_key()

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign with the in-memory key."""
        return sign_digest(self.key, digest)


def as_signer(key: PrivateKey | Signer) -> Signer:
    """``key`` as a :class:`Signer` (a private key is wrapped in :class:`KeySigner`)."""
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return KeySigner(key)
    return key


def as_signers(keys: Sequence[PrivateKey | Signer]) -> list[Signer]:
    """Every key of ``keys`` as a :class:`Signer`."""
    return [as_signer(k) for k in keys]
