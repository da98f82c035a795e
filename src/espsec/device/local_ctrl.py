"""ESP Local Control on the virtual device: properties, their NVS, and the HTTPS identity.

* The property table is ``DIR/local_ctrl.json`` (:func:`~espsec.provisioning.local_ctrl.
  parse_properties`); without one the device serves :data:`DEFAULT_PROPERTIES`.
* Persistent properties live in NVS namespace ``espsec_lctrl`` (key = property name).
* HTTPS: the certificate and key given (for example one issued under the fleet's CA or
  a certificate bundle root), else ``DIR/local_ctrl_cert.pem`` and
  ``DIR/local_ctrl_key.pem`` (0600), a self-signed P-256 certificate for ``localhost``
  and ``127.0.0.1`` generated on first use; clients pin it.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from espsec._io import read_bytes, write_atomic, write_secret
from espsec.device.provisioning import DeviceRuntimeService, SecurityOptions
from espsec.nvs import NvsStore
from espsec.provisioning.local_ctrl import (
    FLAG_PERSISTENT,
    FLAG_READONLY,
    LocalCtrlService,
    Property,
    PropType,
    encode_value,
    local_ctrl_protocomm,
    parse_properties,
)
from espsec.provisioning.protocomm import Protocomm

PROPERTIES_FILE = "local_ctrl.json"
CERT_FILE = "local_ctrl_cert.pem"
KEY_FILE = "local_ctrl_key.pem"
NVS_NAMESPACE = "espsec_lctrl"

DEFAULT_PROPERTIES = (
    Property("status", PropType.STRING, FLAG_READONLY, b"running"),
    Property("uptime_us", PropType.TIMESTAMP, FLAG_READONLY, encode_value(PropType.TIMESTAMP, 0)),
    Property("brightness", PropType.INT32, FLAG_PERSISTENT, encode_value(PropType.INT32, 50)),
    Property("enabled", PropType.BOOLEAN, 0, encode_value(PropType.BOOLEAN, True)),
)
"""What a device without ``local_ctrl.json`` serves."""


class NvsPropertyStore:
    """Persistent property values in NVS namespace ``espsec_lctrl``."""

    def __init__(self, store: NvsStore, runtime: DeviceRuntimeService) -> None:
        self._store = store
        self._runtime = runtime

    def __repr__(self) -> str:
        return f"<NvsPropertyStore {NVS_NAMESPACE}>"

    def load(self, name: str) -> bytes | None:
        with self._store.open(NVS_NAMESPACE) as h:
            if h.find_key(name) is None:
                return None
            return h.get_blob(name)

    def save(self, name: str, value: bytes) -> None:
        with self._store.open(NVS_NAMESPACE) as h:
            h.set_blob(name, value)
            h.commit()
        self._runtime.saved()


def load_properties(folder: Path) -> list[Property]:
    path = folder / PROPERTIES_FILE
    if not path.exists():
        return list(DEFAULT_PROPERTIES)
    return parse_properties(read_bytes(path, what="property table"), source=str(path))


def open_local_ctrl(
    runtime: DeviceRuntimeService, security: SecurityOptions
) -> tuple[LocalCtrlService, Protocomm]:
    """``esp_local_ctrl_start`` on a booted device."""
    service = LocalCtrlService(
        load_properties(runtime.folder), NvsPropertyStore(runtime.nvs, runtime)
    )
    pc = local_ctrl_protocomm(
        service,
        security.device_security(),
        policy=security.session_policy,
        log=runtime.session_log(),
    )
    return service, pc


def _self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "espsec local control")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_identity(
    folder: Path, cert: Path | None = None, key: Path | None = None
) -> tuple[bytes, bytes]:
    """The HTTPS certificate and key (PEM): the given pair, else the device's own,
    generated on first use."""
    if cert is not None and key is not None:
        return read_bytes(cert, what="certificate"), read_bytes(key, what="private key")
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if not cert_path.exists() or not key_path.exists():
        cert_pem, key_pem = _self_signed()
        write_secret(key_path, key_pem)
        write_atomic(cert_path, cert_pem)
    return read_bytes(cert_path, what="certificate"), read_bytes(key_path, what="private key")


def server_ssl_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS server context for ``cert_pem`` / ``key_pem``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_file.write_bytes(cert_pem)
        write_secret(key_file, key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context
