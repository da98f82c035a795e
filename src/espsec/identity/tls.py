"""TLS contexts for mutual authentication: device certificates, bundle trust, client keys.

* :func:`generate_device_ca` / :func:`issue_device_certificate`: the CA a fleet trusts and
  the certificates it issues to devices. A device's ``device_id`` is its certificate's
  subject common name and a ``URI`` SAN ``urn:espsec:device:<id>``;
  :func:`device_id_of` reads it back (both must agree when both are present).
* :func:`bundle_trust_anchors`: a certificate bundle (subject + key only) as trust anchors
  OpenSSL accepts, so Python's TLS stack verifies a server as ``esp_crt_bundle_attach``
  does: the chain's top certificate must name a bundle subject as issuer and verify under
  the stored key. OpenSSL does not check a trust anchor's own signature, which is what lets
  an anchor carry only the bundle's name and key (ESP-IDF's cross-signed mode builds the
  same kind of synthetic root).
* :class:`ClientKey` and :func:`client_context`: the device side of mutual TLS. The key
  stays in the DS or ECDSA peripheral model until the handshake needs it; Python's ``ssl``
  can only sign with a key it holds, so it is handed over in an anonymous memory file
  for the duration of ``load_cert_chain`` and never written to disk
  (``docs/adr/0009-device-tls-key-in-peripheral.md`` says where the model stops).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import secrets
import ssl
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from espsec import _pem
from espsec.errors import EspsecError, UsageError, VerificationError
from espsec.identity.cert_bundle import CertBundle

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

DEVICE_URI_PREFIX = "urn:espsec:device:"
"""The SAN URI that names a device: ``urn:espsec:device:<device_id>``."""
DEVICE_CERT_DAYS = 3650
CA_DAYS = 7300


# -- device certificates ---------------------------------------------------------------------


def generate_device_ca(
    common_name: str = "espsec device CA", *, now: datetime.datetime | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new ECDSA P-256 CA for device certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(hours=1)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} {secrets.token_hex(4)}")]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def issue_device_certificate(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    device_id: str,
    public_key: PublicKey,
    *,
    days: int = DEVICE_CERT_DAYS,
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """A TLS client certificate for ``device_id`` (CN and SAN URI), signed by the CA."""
    if not device_id or any(c in device_id for c in ",/\\\0\n"):
        raise UsageError(f"device id {device_id!r} cannot go in a certificate")
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(hours=1)
    ca_public = ca_cert.public_key()
    if not isinstance(ca_public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise UsageError("the device CA key must be RSA or ECDSA")
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(DEVICE_URI_PREFIX + device_id)]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def device_id_of(cert: x509.Certificate) -> str | None:
    """The device id a client certificate names: its ``urn:espsec:device:`` SAN URI or,
    without one, its subject common name. ``None`` if it names none or two different ids."""
    ids: set[str] = set()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [
            u.removeprefix(DEVICE_URI_PREFIX)
            for u in san.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith(DEVICE_URI_PREFIX)
        ]
        ids.update(uris)
    except x509.ExtensionNotFound:
        pass
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not ids:
        ids.update(cns)
    elif cns and not set(cns) <= ids:
        return None
    return ids.pop() if len(ids) == 1 else None


# -- trusting a certificate bundle -----------------------------------------------------------


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


_ECDSA_SHA256 = _der(0x30, _der(0x06, bytes.fromhex("2a8648ce3d040302")))
_VALIDITY = _der(0x30, _der(0x18, b"19700101000000Z") + _der(0x18, b"99991231235959Z"))
_CA_EXTENSIONS = _der(
    0xA3,
    _der(
        0x30,
        _der(
            0x30,
            _der(0x06, bytes.fromhex("551d13"))  # basicConstraints
            + _der(0x01, b"\xff")
            + _der(0x04, _der(0x30, _der(0x01, b"\xff"))),
        ),
    ),
)


def bundle_trust_anchors(bundle: CertBundle) -> list[bytes]:
    """Each bundle root as a DER certificate OpenSSL takes as a trust anchor.

    The certificate carries the root's subject and key; its own signature (made with a
    throwaway key) is never checked, because OpenSSL does not verify trust anchors.
    """
    throwaway = ec.generate_private_key(ec.SECP256R1())
    anchors = []
    for i, entry in enumerate(bundle.entries):
        tbs = _der(
            0x30,
            _der(0xA0, _der(0x02, b"\x02"))
            + _der(0x02, (i + 1).to_bytes(((i + 1).bit_length() + 8) // 8, "big"))
            + _ECDSA_SHA256
            + entry.subject
            + _VALIDITY
            + entry.subject
            + entry.public_key
            + _CA_EXTENSIONS,
        )
        signature = throwaway.sign(tbs, ec.ECDSA(hashes.SHA256()))
        anchors.append(_der(0x30, tbs + _ECDSA_SHA256 + _der(0x03, b"\0" + signature)))
    return anchors


def bundle_trust_pem(bundle: CertBundle) -> bytes:
    """:func:`bundle_trust_anchors` as one PEM (for ``cadata``)."""
    return b"".join(
        _pem.load_certificate(d, allow_der=True).public_bytes(serialization.Encoding.PEM)
        for d in bundle_trust_anchors(bundle)
    )


# -- the device's side of mutual TLS ------------------------------------------------------------


@dataclass(frozen=True)
class ClientKey:
    """A client certificate chain and a handle to its private key.

    ``unlock`` asks the key's holder (the DS or ECDSA peripheral model, or a key file) for
    the key at handshake time; :attr:`source` says where it lives.
    """

    chain: tuple[x509.Certificate, ...]
    unlock: Callable[[], PrivateKey] = field(repr=False)
    source: str = "key file"

    def load_into(self, ctx: ssl.SSLContext) -> None:
        """Give ``ctx`` the chain and, for the duration of the call only, the key."""
        if not self.chain:
            raise UsageError("a client identity needs its certificate")
        key = self.unlock()
        public = self.chain[0].public_key()
        if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) or (
            public.public_numbers() != key.public_key().public_numbers()
        ):
            raise VerificationError(
                f"the device certificate is not for the key in the {self.source}"
            )
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with _anonymous_file(chain_pem) as cert_path, _anonymous_file(key_pem) as key_path:
            try:
                ctx.load_cert_chain(cert_path, key_path)
            except ssl.SSLError as exc:
                raise EspsecError(f"cannot use the client identity: {exc.reason}") from None


@contextlib.contextmanager
def _anonymous_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` that never names a file on disk (Linux ``memfd``), else a 0600
    file in a private temporary folder, removed on exit."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("espsec-tls", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="espsec-tls-") as folder:  # pragma: no cover
        path = Path(folder) / "blob"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            yield str(path)
        finally:
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class ServerTrust:
    """How a device verifies the server: a certificate bundle, CA PEM, or not at all."""

    bundle: CertBundle | None = None
    ca_pem: bytes | None = field(default=None, repr=False)
    skip_verify: bool = False
    """``CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY``: insecure, reported as a finding."""

    def __post_init__(self) -> None:
        given = (self.bundle is not None) + (self.ca_pem is not None) + self.skip_verify
        if given != 1:
            raise UsageError("trust a certificate bundle, a CA PEM, or skip verification")

    @property
    def findings(self) -> tuple[str, ...]:
        if self.skip_verify:
            return (
                "ESP_TLS_SKIP_SERVER_CERT_VERIFY: the device does not verify the server; "
                "anyone on the path can impersonate it",
            )
        return ()

    def cadata(self) -> str | None:
        if self.bundle is not None:
            return bundle_trust_pem(self.bundle).decode("ascii")
        if self.ca_pem is not None:
            return self.ca_pem.decode("ascii", "replace")
        return None


def client_context(trust: ServerTrust, client: ClientKey | None = None) -> ssl.SSLContext:
    """A device's TLS client context (TLS >= 1.2) with ``trust`` and, if given, its
    client identity for mutual authentication."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if trust.skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            ctx.load_verify_locations(cadata=trust.cadata())
        except (ssl.SSLError, ValueError):
            raise EspsecError("no usable trust anchor for the server") from None
        if trust.bundle is not None:
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if client is not None:
        client.load_into(ctx)
    return ctx


def chain_of(certs: Sequence[bytes]) -> tuple[x509.Certificate, ...]:
    """Certificates as stored (PEM with NUL, or DER), parsed."""
    return tuple(_pem.load_certificate(data.rstrip(b"\0"), allow_der=True) for data in certs)
