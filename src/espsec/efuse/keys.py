"""Key files for eFuse burns: the bytes ``burn-key`` burns, the digest ``burn-key-digest`` burns.

A key file holds the raw key bytes, as ``espefuse burn-key`` reads them; for the
``ECDSA_KEY*`` purposes it may instead be an ECDSA private key in PEM, whose scalar is
burned (big-endian, as ``espefuse`` reads a PEM). Sizes and byte order are checked and
applied by :class:`~espsec.efuse.BurnKey` when it is staged.

A Secure Boot v2 digest comes from 32 raw bytes (``espsecure digest-sbv2-public-key``)
or from a signing key's PEM. Computing a key's digest is
:func:`espsec.secure_boot.key_digest`'s job, a layer above eFuses, so the functions that
accept a PEM take it as ``pem_digest`` (bytes of a PEM -> 32-byte digest).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from espsec import _pem
from espsec._io import PathLike, read_bytes
from espsec.efuse.burn import KEY_BYTES
from espsec.errors import KeyFormatError, UsageError, with_source

PemDigest = Callable[[bytes], bytes]
"""The Secure Boot v2 key digest of a PEM public or private key."""
PemScheme = Callable[[bytes], str]
"""The Secure Boot v2 scheme (``rsa3072``, ``ecdsa256``…) of a PEM public or private key."""

_ECDSA_KINDS = tuple(_pem.ecdsa_kind(c) for c in (ec.SECP192R1(), ec.SECP256R1(), ec.SECP384R1()))


def key_bytes(data: bytes, purpose: str) -> bytes:
    """The key ``burn-key`` burns from a key file's contents: the raw bytes, or for an
    ``ECDSA_KEY*`` purpose the scalar of an ECDSA private key PEM."""
    if not _pem.is_pem(data):
        return data
    if not purpose.upper().startswith("ECDSA_KEY"):
        raise UsageError(f"a {purpose.upper()} key file holds raw key bytes, found a PEM file")
    key = _pem.load_private_key(data, kinds=_ECDSA_KINDS)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    size = (key.curve.key_size + 7) // 8
    return key.private_numbers().private_value.to_bytes(size, "big")


def digest_bytes(data: bytes, pem_digest: PemDigest) -> bytes:
    """A Secure Boot digest from a digest file's contents: a key PEM, or 32 raw bytes."""
    if _pem.is_pem(data):
        return pem_digest(data)
    if len(data) == KEY_BYTES:
        return data
    raise KeyFormatError(
        f"expected a PEM key or a {KEY_BYTES}-byte digest file, found {len(data)} bytes"
    )


def read_key_file(path: PathLike, purpose: str) -> bytes:
    """:func:`key_bytes` of the file ``path``; errors name the file."""
    data = read_bytes(path, what="key file")
    with with_source(str(path)):
        return key_bytes(data, purpose)


def read_digest_file(path: PathLike) -> bytes:
    """The 32 raw bytes of a digest file (``espsecure digest-sbv2-public-key`` output)."""
    data = read_bytes(path, what="digest file")
    if len(data) != KEY_BYTES:
        raise UsageError(
            f"a digest file holds {KEY_BYTES} bytes, found {len(data)}", source=str(path)
        )
    return data


def read_public_key_digest(path: PathLike, pem_digest: PemDigest) -> bytes:
    """The Secure Boot v2 digest of the signing key (public or private PEM) in ``path``."""
    data = read_bytes(path, what="public key file")
    with with_source(str(path)):
        return pem_digest(data)


class KeyFiles:
    """Reads the key and digest files a burn plan names, relative to ``folder``
    (a :class:`~espsec.efuse.PlanResolver`)."""

    def __init__(
        self, folder: PathLike, pem_digest: PemDigest, pem_scheme: PemScheme | None = None
    ) -> None:
        self.folder = Path(folder)
        self._pem_digest = pem_digest
        self._pem_scheme = pem_scheme

    def key(self, path: str, purpose: str) -> bytes:
        return read_key_file(self.folder / path, purpose)

    def digest(self, path: str) -> bytes:
        where = self.folder / path
        data = read_bytes(where, what="key file")
        with with_source(str(where)):
            return digest_bytes(data, self._pem_digest)

    def scheme(self, path: str) -> str | None:
        """The scheme of a key file (``None`` for a raw digest, or with no ``pem_scheme``)."""
        where = self.folder / path
        data = read_bytes(where, what="key file")
        if self._pem_scheme is None or not _pem.is_pem(data):
            return None
        with with_source(str(where)):
            return self._pem_scheme(data)
