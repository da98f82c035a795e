"""The one loader for PEM keys and certificates, with one error shape.

Every key or certificate espsec reads (Secure Boot signing keys, OTA encryption keys,
the fleet's manifest key, TLS trust anchors, ECDSA keys burned into eFuses) goes through
this module, so a wrong file always fails the same way: one :class:`PemError` that names
the file, what was expected (``an RSA-3072 or ECDSA P-256 private key in PEM``) and what
was found (``a public key``, ``an X.509 certificate``, ``no PEM data``). Messages name
PEM labels and key types only, never key bytes.

It sits beside :mod:`espsec.errors` because the lowest layer that reads keys is
:mod:`espsec.efuse` (``burn-key`` takes an ECDSA key as PEM). Keys are returned as
pyca/cryptography objects; only RSA and ECDSA keys are ever returned.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

from espsec.errors import FormatError, KeyFormatError

if TYPE_CHECKING:  # loaded by the certificate functions: key-only commands skip it
    from cryptography import x509

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

RSA = "RSA"
ECDSA = "ECDSA"
"""Families for ``kinds``: any RSA key size, any ECDSA curve."""

_NIST_CURVES = {
    "secp192r1": "P-192",
    "secp224r1": "P-224",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}
_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_CERT_LABELS = {"CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE"}


class PemError(FormatError, KeyFormatError):
    """A key or certificate file that is not what the caller needs.

    Both a :class:`~espsec.errors.FormatError` (``expected`` / ``found``) and a
    :class:`~espsec.errors.KeyFormatError`.
    """

    def __init__(self, what: str, *, expected: str, found: str, source: str | None) -> None:
        super().__init__(what, expected=expected, found=found, source=source)


# -- describing keys and files -------------------------------------------------------------


def key_kind(key: PrivateKeyTypes | PublicKeyTypes) -> str:
    """A key's type as error messages name it: ``RSA-3072``, ``ECDSA P-256``, ``Ed25519``."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return rsa_kind(key.key_size)
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return ecdsa_kind(key.curve)
    if isinstance(key, dsa.DSAPrivateKey | dsa.DSAPublicKey):
        return f"DSA-{key.key_size}"
    names: list[tuple[type, str]] = [
        (ed25519.Ed25519PrivateKey, "Ed25519"),
        (ed25519.Ed25519PublicKey, "Ed25519"),
        (ed448.Ed448PrivateKey, "Ed448"),
        (ed448.Ed448PublicKey, "Ed448"),
        (x25519.X25519PrivateKey, "X25519"),
        (x25519.X25519PublicKey, "X25519"),
        (x448.X448PrivateKey, "X448"),
        (x448.X448PublicKey, "X448"),
    ]
    return next((name for cls, name in names if isinstance(key, cls)), type(key).__name__)


def ecdsa_kind(curve: ec.EllipticCurve) -> str:
    """An ECDSA curve as error messages name it: ``ECDSA P-256``."""
    return f"{ECDSA} {_NIST_CURVES.get(curve.name, curve.name)}"


def rsa_kind(bits: int) -> str:
    """An RSA key size as error messages name it: ``RSA-3072``."""
    return f"{RSA}-{bits}"


def _a(noun: str) -> str:
    """``noun`` with its indefinite article, as the letters are spoken (an RSA, a DSA)."""
    return f"{'an' if noun[:1] in 'AEFHILMNORSXaeiou' else 'a'} {noun}"


def _family(kind: str) -> str:
    return re.split(r"[- ]", kind, maxsplit=1)[0]


def _accepts(kind: str, kinds: Collection[str] | None) -> bool:
    family = _family(kind)
    if kinds is None:
        return family in (RSA, ECDSA)
    return kind in kinds or family in kinds


def _expected(kinds: Collection[str] | None, noun: str, encoding: str = "PEM") -> str:
    """``an RSA-3072 or ECDSA P-256/P-384 private key in PEM``."""
    wanted = list(kinds) if kinds is not None else [RSA, ECDSA]
    parts: list[str] = []
    for family in dict.fromkeys(_family(k) for k in wanted):
        members = [k for k in wanted if _family(k) == family]
        if family in members:
            parts.append(family)
        elif family == ECDSA:
            parts.append(f"{ECDSA} " + "/".join(k.split(" ", 1)[1] for k in members))
        else:
            parts.append("/".join(members))
    return _a(f"{' or '.join(parts)} {noun} in {encoding}")


def _labels(data: bytes) -> list[str]:
    return [m.group(1).decode("ascii") for m in _LABEL.finditer(data)]


def _is_private(label: str) -> bool:
    return label.endswith("PRIVATE KEY") and label != "ENCRYPTED PRIVATE KEY"


def _describe_label(label: str) -> str:
    if label == "ENCRYPTED PRIVATE KEY":
        return "an encrypted private key"
    if label.endswith("PRIVATE KEY"):
        return "a private key"
    if label.endswith("PUBLIC KEY"):
        return "a public key"
    if label in _CERT_LABELS:
        return "an X.509 certificate"
    if label.endswith("CERTIFICATE REQUEST"):
        return "a certificate signing request"
    if label == "X509 CRL":
        return "a certificate revocation list"
    if label == "EC PARAMETERS":
        return "EC parameters but no key"
    return f"a PEM {label} block"


def is_pem(data: bytes) -> bool:
    """Whether ``data`` holds a PEM block (rather than DER or raw bytes)."""
    return _LABEL.search(data) is not None


def describe(data: bytes) -> str:
    """What ``data`` holds, for an error's ``found``: ``a public key``, ``no PEM data`` ..."""
    labels = _labels(data)
    if labels:
        meaningful = [label for label in labels if label != "EC PARAMETERS"] or labels
        return _describe_label(meaningful[0])
    if not data.strip():
        return "an empty file"
    if data[:1] == b"\x30":
        return "binary DER data, not PEM"
    return "no PEM data"


def _fail(what: str, expected: str, found: str, source: str | None) -> PemError:
    return PemError(what, expected=expected, found=found, source=source)


# -- keys ------------------------------------------------------------------------------------


def _load_private(
    data: bytes,
    kinds: Collection[str] | None,
    source: str | None,
    expected: str,
    skip_rsa_validation: bool,
    allow_der: bool = False,
) -> PrivateKey:
    labels = _labels(data)
    der = allow_der and not labels
    if not der and not any(_is_private(label) for label in labels):
        raise _fail("not a usable key file", expected, describe(data), source)
    key: PrivateKeyTypes
    try:
        if der:
            key = serialization.load_der_private_key(
                data, password=None, unsafe_skip_rsa_key_validation=skip_rsa_validation
            )
        else:
            key = serialization.load_pem_private_key(
                data, password=None, unsafe_skip_rsa_key_validation=skip_rsa_validation
            )
    except TypeError:
        raise _fail("not a usable key file", expected, "an encrypted private key", source) from None
    except UnsupportedAlgorithm:
        raise _fail(
            "not a usable key file", expected, "a private key of an unsupported type", source
        ) from None
    except ValueError:
        raise _fail("not a usable key file", expected, _malformed(data, der), source) from None
    kind = key_kind(key)
    if not _accepts(kind, kinds) or not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    ):
        raise _fail("not a usable key file", expected, _a(f"{kind} private key"), source)
    return key


def _malformed(data: bytes, der: bool) -> str:
    if not der:
        return "malformed PEM data"
    return "malformed DER data" if data[:1] == b"\x30" else describe(data)


def load_private_key(
    data: bytes,
    *,
    kinds: Collection[str] | None = None,
    source: str | None = None,
    unsafe_skip_rsa_key_validation: bool = False,
    allow_der: bool = False,
) -> PrivateKey:
    """An unencrypted PEM (or, with ``allow_der``, DER) private key of one of ``kinds``
    (``RSA-3072``, ``ECDSA P-256``, or a whole family ``RSA`` / ``ECDSA``; ``None``: any
    RSA or ECDSA key).

    Raises :class:`PemError` naming ``source`` for anything else: a public key, a
    certificate, an encrypted key, malformed data, or a key of another type or size.
    ``unsafe_skip_rsa_key_validation`` skips pyca's slow RSA consistency check (only for
    callers that verify every signature they make).
    """
    encoding = "PEM or DER" if allow_der else "PEM"
    return _load_private(
        data,
        kinds,
        source,
        _expected(kinds, "private key", encoding),
        unsafe_skip_rsa_key_validation,
        allow_der,
    )


def load_public_key(
    data: bytes,
    *,
    kinds: Collection[str] | None = None,
    source: str | None = None,
    accept_private: bool = False,
) -> PublicKey:
    """A PEM public key of one of ``kinds`` (see :func:`load_private_key`).

    ``accept_private``: a private key file gives its public half.
    """
    expected = _expected(kinds, "public or private key" if accept_private else "public key")
    labels = _labels(data)
    if accept_private and any(_is_private(label) for label in labels):
        return _load_private(data, kinds, source, expected, True).public_key()
    if not any(label.endswith("PUBLIC KEY") for label in labels):
        raise _fail("not a usable key file", expected, describe(data), source)
    key: PublicKeyTypes
    try:
        key = serialization.load_pem_public_key(data)
    except UnsupportedAlgorithm:
        raise _fail(
            "not a usable key file", expected, "a public key of an unsupported type", source
        ) from None
    except ValueError:
        raise _fail("not a usable key file", expected, "malformed PEM data", source) from None
    kind = key_kind(key)
    if not _accepts(kind, kinds) or not isinstance(
        key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    ):
        raise _fail("not a usable key file", expected, _a(f"{kind} public key"), source)
    return key


# -- certificates ----------------------------------------------------------------------------


def load_certificates(data: bytes, *, source: str | None = None) -> list[x509.Certificate]:
    """Every X.509 certificate in a PEM bundle (at least one)."""
    expected = _a("X.509 certificate in PEM")
    if not any(label in _CERT_LABELS for label in _labels(data)):
        raise _fail("not a usable certificate file", expected, describe(data), source)
    try:
        from cryptography import x509

        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise _fail(
            "not a usable certificate file", expected, "malformed PEM data", source
        ) from None


def load_certificate(
    data: bytes, *, source: str | None = None, allow_der: bool = False
) -> x509.Certificate:
    """One X.509 certificate: the first of a PEM file, or (``allow_der``) a DER file."""
    if allow_der and not _labels(data):
        try:
            from cryptography import x509

            return x509.load_der_x509_certificate(data)
        except ValueError:
            raise _fail(
                "not a usable certificate file",
                _a("X.509 certificate in PEM or DER"),
                _malformed(data, True),
                source,
            ) from None
    return load_certificates(data, source=source)[0]
