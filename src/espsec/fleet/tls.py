"""The fleet server's TLS identity: a private CA and a server certificate, made on first start.

Devices (and the admin CLI) trust the CA certificate, or pin the server certificate.
Keys are ECDSA P-256, written 0600 and never overwritten.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from espsec import _pem
from espsec._io import read_bytes, write_atomic, write_secret
from espsec.errors import EspsecError, UsageError

CA_DAYS = 3650
SERVER_DAYS = 825
WARN_DAYS = 30
"""The server warns when its certificate expires within this many days..."""
REFUSE_DAYS = 7
"""...and refuses to start within this many (``espsec fleet tls renew`` first)."""
CA_KEY = "ca-key.pem"


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the server's certificate chain and key, and of the CA devices trust."""

    server_cert: Path
    server_key: Path
    ca_cert: Path | None


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(hostnames: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def generate_tls(
    tls_dir: Path,
    hostnames: tuple[str, ...],
    *,
    now: datetime.datetime | None = None,
    ca_key_output: Path | None = None,
    server_days: int = SERVER_DAYS,
) -> TlsFiles:
    """Create ``ca.pem``/``ca-key.pem`` and ``server.pem``/``server-key.pem`` in ``tls_dir``.

    ``ca_key_output``: write the CA key there instead (keep it offline; ``renew_tls``
    then needs it back).
    """
    if not hostnames:
        raise UsageError("the server certificate needs at least one hostname or IP address")
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(hours=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"espsec fleet CA {secrets.token_hex(4)}")]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(tls_dir / "server.pem", tls_dir / "server-key.pem", tls_dir / "ca.pem")
    write_secret(ca_key_output or tls_dir / CA_KEY, _key_pem(ca_key))
    assert files.ca_cert is not None
    write_atomic(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    _issue_server(files, ca_cert, ca_key, hostnames, start, server_days, new_key=True)
    return files


def _issue_server(
    files: TlsFiles,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hostnames: tuple[str, ...],
    start: datetime.datetime,
    days: int,
    *,
    new_key: bool,
) -> None:
    """Sign a server certificate for ``hostnames`` and write it (and a new key)."""
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_name = ca_cert.subject
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(_san(hostnames), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    if new_key and not files.server_key.exists():
        write_secret(files.server_key, _key_pem(key))
    else:
        # Renewal: the new key replaces the old one atomically, still 0600.
        write_atomic(files.server_key, _key_pem(key), mode=0o600)
    write_atomic(files.server_cert, cert.public_bytes(serialization.Encoding.PEM))


def ensure_tls(tls_dir: Path, hostnames: tuple[str, ...]) -> TlsFiles:
    """The TLS files in ``tls_dir``, generated on first use."""
    files = TlsFiles(tls_dir / "server.pem", tls_dir / "server-key.pem", tls_dir / "ca.pem")
    if files.server_cert.exists() and files.server_key.exists():
        return files
    if files.server_key.exists() or (tls_dir / "ca-key.pem").exists():
        raise UsageError(
            "TLS folder holds keys but no server certificate; remove it to regenerate",
            source=str(tls_dir),
        )
    return generate_tls(tls_dir, hostnames)


def days_left(cert_path: Path, *, now: datetime.datetime | None = None) -> float:
    """Days until the certificate at ``cert_path`` expires (negative once it has)."""
    try:
        cert = _pem.load_certificate(read_bytes(cert_path, what="server certificate"))
    except EspsecError as exc:
        raise EspsecError(
            f"cannot load the server certificate and key ({exc.message})", source=str(cert_path)
        ) from None
    moment = now or datetime.datetime.now(datetime.UTC)
    return (cert.not_valid_after_utc - moment).total_seconds() / 86400


def check_expiry(cert_path: Path, *, now: datetime.datetime | None = None) -> str | None:
    """``None`` when the certificate is good for a while, a warning within
    :data:`WARN_DAYS` of its expiry; :class:`EspsecError` within :data:`REFUSE_DAYS`."""
    left = days_left(cert_path, now=now)
    if left < REFUSE_DAYS:
        state = "expired" if left < 0 else f"expires in {left:.1f} days"
        raise EspsecError(
            f"the server certificate {state}: run `espsec fleet tls renew STATE_DIR`",
            source=str(cert_path),
        )
    if left < WARN_DAYS:
        return (
            f"the server certificate expires in {left:.0f} days: "
            "run `espsec fleet tls renew STATE_DIR`"
        )
    return None


def renew_tls(
    tls_dir: Path,
    hostnames: tuple[str, ...],
    *,
    ca_key_file: Path | None = None,
    now: datetime.datetime | None = None,
    days: int = SERVER_DAYS,
) -> TlsFiles:
    """Issue a new server certificate and key from the fleet's TLS CA.

    The CA key is read from ``ca_key_file`` when it is kept offline, else from the TLS
    folder. Devices keep trusting the same CA; a running server picks the new
    certificate up within a minute.
    """
    files = TlsFiles(tls_dir / "server.pem", tls_dir / "server-key.pem", tls_dir / "ca.pem")
    assert files.ca_cert is not None
    key_path = ca_key_file or tls_dir / CA_KEY
    if not files.ca_cert.exists():
        raise EspsecError(
            "no TLS CA here (the server makes it on first start)", source=str(tls_dir)
        )
    if not key_path.exists():
        raise EspsecError(
            "the TLS CA key is not in the state folder (kept offline?): give it with --ca-key",
            source=str(key_path),
        )
    ca_cert = _pem.load_certificate(read_bytes(files.ca_cert, what="CA certificate"),
                                    source=str(files.ca_cert))  # fmt: skip
    ca_key = _pem.load_private_key(read_bytes(key_path, what="CA key"), source=str(key_path))
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey) or (
        ca_key.public_key().public_numbers() != ca_cert.public_key().public_numbers()  # type: ignore[union-attr]
    ):
        raise EspsecError("this key is not the TLS CA's key", source=str(key_path))
    if days < REFUSE_DAYS + 1 or days > SERVER_DAYS:
        raise UsageError(f"a server certificate lasts {REFUSE_DAYS + 1} to {SERVER_DAYS} days")
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(hours=1)
    _issue_server(files, ca_cert, ca_key, hostnames, start, days, new_key=False)
    return files
