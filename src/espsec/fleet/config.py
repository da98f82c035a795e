"""A fleet's state folder: configuration, manifest key, admin token digest.

Layout::

    fleet.json             trusted Secure Boot key digests, revoked slots, policy
    manifest-key.pem       ECDSA P-256 manifest signing key (0600)
    manifest-key.pub.pem   its public key: provision devices with it
    fleet.sqlite3          releases, cohorts, devices, reports
    blobs/<sha256>         release payloads, content-addressed
    tls/                   CA and server certificate (made on first start)
    device-ca.pem          the CA device client certificates must chain to (mutual TLS)
    device-ca-key.pem      its key, when the fleet made the CA itself (0600)

The admin token itself is never stored, only its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from espsec import secure_boot
from espsec._io import read_bytes, write_atomic, write_secret
from espsec.errors import EspsecError, FormatError, UsageError
from espsec.ota.manifest import generate_manifest_key, load_manifest_private_key
from espsec.secure_boot.keys import public_key_pem

CONFIG_FILE = "fleet.json"
MANIFEST_KEY = "manifest-key.pem"
MANIFEST_PUB = "manifest-key.pub.pem"
DB_FILE = "fleet.sqlite3"
BLOB_DIR = "blobs"
TLS_DIR = "tls"
DEVICE_CA = "device-ca.pem"
DEVICE_CA_KEY = "device-ca-key.pem"
DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_MANIFEST_TTL = 600
DEFAULT_MAX_UPLOAD = 64 << 20


@dataclass(frozen=True)
class FleetConfig:
    """What the fleet trusts and how it answers."""

    key_digests: tuple[bytes | None, ...]
    """Secure Boot v2 eFuse key digests, slot n at index n (``None`` = empty slot)."""
    revoked: tuple[int, ...] = ()
    hostnames: tuple[str, ...] = DEFAULT_HOSTNAMES
    manifest_ttl: int = DEFAULT_MANIFEST_TTL
    """Seconds a manifest stays valid."""
    max_upload: int = DEFAULT_MAX_UPLOAD
    admin_token_sha256: bytes = field(default=b"", repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "key_digests": [d.hex() if d else None for d in self.key_digests],
            "revoked": list(self.revoked),
            "hostnames": list(self.hostnames),
            "manifest_ttl": self.manifest_ttl,
            "max_upload": self.max_upload,
            "admin_token_sha256": self.admin_token_sha256.hex(),
        }

    @classmethod
    def from_json(cls, obj: Any) -> FleetConfig:
        try:
            digests = tuple(bytes.fromhex(d) if d else None for d in obj["key_digests"])
            if any(d is not None and len(d) != 32 for d in digests) or not 1 <= len(digests) <= 3:
                raise ValueError("key digests")
            return cls(
                key_digests=digests,
                revoked=tuple(int(n) for n in obj.get("revoked", [])),
                hostnames=tuple(str(h) for h in obj.get("hostnames", DEFAULT_HOSTNAMES)),
                manifest_ttl=int(obj.get("manifest_ttl", DEFAULT_MANIFEST_TTL)),
                max_upload=int(obj.get("max_upload", DEFAULT_MAX_UPLOAD)),
                admin_token_sha256=bytes.fromhex(obj["admin_token_sha256"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"fleet configuration is invalid ({exc})") from None

    def token_ok(self, token: str) -> bool:
        """Constant-time check of an admin token against the stored digest."""
        given = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        return bool(self.admin_token_sha256) and hmac.compare_digest(given, self.admin_token_sha256)


def digests_from(
    keys: Sequence[secure_boot.PublicKey], digests: Sequence[bytes | None]
) -> tuple[bytes | None, ...]:
    """eFuse slots filled from explicit digests first, then from public keys."""
    slots = list(digests) + [secure_boot.key_digest(k) for k in keys]
    if not slots or all(d is None for d in slots):
        raise UsageError("a fleet needs at least one Secure Boot key or key digest to trust")
    if len(slots) > 3:
        raise UsageError(f"at most 3 Secure Boot key digests (eFuse slots 0-2), got {len(slots)}")
    return tuple(slots)


def init_fleet(
    state_dir: Path,
    *,
    key_digests: Sequence[bytes | None],
    revoked: Sequence[int] = (),
    hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
    manifest_ttl: int = DEFAULT_MANIFEST_TTL,
    device_ca_pem: bytes | None = None,
) -> str:
    """Create a fleet state folder; return the admin token (shown once, stored hashed).

    ``device_ca_pem``: the CA that device certificates must chain to; without it the fleet
    makes its own device CA (``device-ca.pem`` and a 0600 ``device-ca-key.pem``).
    """
    if device_ca_pem is not None:
        _check_device_ca(device_ca_pem)
    if (state_dir / CONFIG_FILE).exists():
        raise UsageError("fleet already initialised here", source=str(state_dir))
    if not 1 <= len(key_digests) <= 3 or all(d is None for d in key_digests):
        raise UsageError("give 1 to 3 Secure Boot key digests (eFuse slots 0-2)")
    if any(n not in range(len(key_digests)) for n in revoked):
        raise UsageError("a revoked slot must be one of the configured slots")
    if not 30 <= manifest_ttl <= 7 * 86400:
        raise UsageError("manifest TTL must be between 30 s and 7 days")
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (state_dir / BLOB_DIR).mkdir(mode=0o700, exist_ok=True)
    token = secrets.token_urlsafe(32)
    config = FleetConfig(
        key_digests=tuple(key_digests),
        revoked=tuple(revoked),
        hostnames=tuple(hostnames),
        manifest_ttl=manifest_ttl,
        admin_token_sha256=hashlib.sha256(token.encode()).digest(),
    )
    pem = generate_manifest_key()
    write_secret(state_dir / MANIFEST_KEY, pem)
    write_atomic(state_dir / MANIFEST_PUB, public_key_pem(load_manifest_private_key(pem)))
    if device_ca_pem is None:
        from cryptography.hazmat.primitives import serialization

        from espsec.identity.tls import generate_device_ca

        ca_cert, ca_key = generate_device_ca("espsec fleet device CA")
        write_secret(
            state_dir / DEVICE_CA_KEY,
            ca_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        device_ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    write_atomic(state_dir / DEVICE_CA, device_ca_pem)
    write_atomic(
        state_dir / CONFIG_FILE, json.dumps(config.to_json(), indent=2).encode(), mode=0o600
    )
    return token


def _check_device_ca(pem: bytes) -> None:
    from cryptography import x509

    from espsec._pem import load_certificates

    for cert in load_certificates(pem, source="--device-ca"):
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise FormatError(
                "not a CA certificate",
                field="basicConstraints",
                expected="CA:TRUE",
                found=cert.subject.rfc4514_string(),
                source="--device-ca",
            )


def device_ca_signer(state_dir: Path) -> tuple[Any, Any]:
    """The fleet-made device CA (certificate, private key), to issue device certificates.

    Refused when the CA came from ``--device-ca``: its key is not the fleet's.
    """
    from espsec._pem import load_certificate, load_private_key

    key_path = state_dir / DEVICE_CA_KEY
    if not key_path.exists():
        raise EspsecError(
            "the fleet's device CA key is not here (the CA was given with --device-ca): "
            "issue device certificates with that CA",
            source=str(state_dir),
        )
    cert = load_certificate(load_device_ca(state_dir), source=str(state_dir / DEVICE_CA))
    key = load_private_key(read_bytes(key_path, what="device CA key"), source=str(key_path))
    return cert, key


def load_device_ca(state_dir: Path) -> bytes:
    """The device CA PEM (what client certificates must chain to)."""
    path = state_dir / DEVICE_CA
    if not path.exists():
        raise EspsecError(
            "the fleet has no device CA, so no device can authenticate: re-create it with "
            "`espsec fleet init --device-ca CA.pem`",
            source=str(state_dir),
        )
    return read_bytes(path, what="device CA")


def load_config(state_dir: Path) -> FleetConfig:
    """Read ``fleet.json`` from a state folder."""
    path = state_dir / CONFIG_FILE
    if not path.exists():
        raise EspsecError(
            "not a fleet state folder (run `espsec fleet init` first)", source=str(state_dir)
        )
    try:
        obj = json.loads(read_bytes(path, what="fleet configuration"))
    except ValueError:
        raise FormatError("fleet configuration is not JSON", source=str(path)) from None
    try:
        return FleetConfig.from_json(obj)
    except FormatError as exc:
        exc.source = str(path)
        raise
