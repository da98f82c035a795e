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

from espsec._io import write_atomic, write_secret
from espsec.errors import UsageError

CA_DAYS = 3650
SERVER_DAYS = 825


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
    tls_dir: Path, hostnames: tuple[str, ...], *, now: datetime.datetime | None = None
) -> TlsFiles:
    """Create ``ca.pem``/``ca-key.pem`` and ``server.pem``/``server-key.pem`` in ``tls_dir``."""
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
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=SERVER_DAYS))
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
    files = TlsFiles(tls_dir / "server.pem", tls_dir / "server-key.pem", tls_dir / "ca.pem")
    write_secret(tls_dir / "ca-key.pem", _key_pem(ca_key))
    write_secret(files.server_key, _key_pem(key))
    write_atomic(files.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    assert files.ca_cert is not None
    write_atomic(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


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
