"""The OTA client's persistent state, kept where a device keeps it: NVS namespace ``espsec_ota``.

What a fleet device is provisioned with, and what its OTA client remembers between
check-ins and across reboots, lives in its ``nvs`` partition (ESP-IDF ``nvs_set_*`` on
``dev.running.partition("nvs")``):

============  ======  ===================================================================
key           type    value
============  ======  ===================================================================
device_id     string  the id the fleet knows the device by
server_url    string  ``https://host:port`` of the fleet server
manifest_key  blob    the fleet's manifest public key (P-256, PEM)
tls_ca        blob    CA certificate(s) the server's certificate must chain to (PEM), or
tls_pin       blob    the one server certificate to accept (PEM)
dec_scheme    string  ``none``, ``ecies-p256`` or ``rsa3072``: how pre-encrypted images
                      are decrypted (``CONFIG_PRE_ENCRYPTED_OTA_USE_*``)
hmac_key_id   string  ECIES: the eFuse key block (``BLOCK_KEYn``, purpose ``HMAC_UP``)
                      the device key is derived from through the HMAC peripheral
rsa_key       blob    RSA-3072: the private key (PEM; ESP-IDF embeds it in the app or
                      keeps it in the DS peripheral — use NVS encryption for it)
counter       u64     the last manifest counter accepted (anti-replay)
accepted_at   u64     when it was accepted (Unix time, for freeze detection)
pending       string  JSON: the update switched to and not yet confirmed or reported
============  ======  ===================================================================

No key material is ever read back into a report or a repr: the HMAC key stays in the
eFuse block and the ECIES key is derived through the HMAC peripheral model
(:class:`espsec.identity.hmac.HmacPeripheral`), and an RSA key only ever leaves NVS
into a decryptor.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization

from espsec import _pem
from espsec.device.nvs import NvsInitError, open_app_nvs
from espsec.efuse import Transaction
from espsec.errors import EspsecError, FormatError, KeyFormatError, UsageError
from espsec.identity.hmac import HmacError, HmacPeripheral
from espsec.nvs import NvsError, NvsKeys, ValueType
from espsec.nvs.runtime import errors as nvs_errors
from espsec.ota import (
    DecryptionKey,
    TlsTrust,
    load_manifest_public_key,
    public_key_pem,
    recipient_id,
)
from espsec.ota.encrypted_image import HMAC_KEY_SIZE, derive_device_key
from espsec.ota.manifest import manifest_key_id
from espsec.ota.protocol import DEVICE_ID, Encryption

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from espsec.device.app import AppRuntime
    from espsec.efuse import Efuses

NAMESPACE = "espsec_ota"
NVS_PARTITION = "nvs"
HMAC_UP = "HMAC_UP"
_MAX_URL = 256


class OtaStateError(EspsecError):
    """The device's OTA state is missing or unusable (not provisioned, bad key block …)."""


DecryptionScheme = Encryption
"""How the device decrypts pre-encrypted images: the release payload encryption it takes
(``none``: plain signed images only)."""


def check_server_url(url: str) -> str:
    """``url`` if it is an ``https://host[:port][/path]`` URL; plain HTTP is refused."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise UsageError(
            f"refusing {parts.scheme or 'scheme-less'} server URL {url!r}: "
            "the fleet is reached over https only"
        )
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError(f"server URL {url!r} must be https://host[:port][/path]")
    if len(url) > _MAX_URL:
        raise UsageError(f"server URL longer than {_MAX_URL} characters")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise UsageError(f"server URL {url!r} has an invalid port") from None
    return url


def _cert_sha256(pem: bytes, what: str) -> str:
    cert = _pem.load_certificate(pem, source=what)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class OtaProvisioning:
    """What a device is provisioned with to take updates from a fleet (public data only,
    except an RSA-3072 decryption key, which is never shown)."""

    device_id: str
    server_url: str
    manifest_key_pem: bytes = field(repr=False)
    """The fleet's manifest public key (P-256 PEM)."""
    tls_ca_pem: bytes | None = field(default=None, repr=False)
    tls_pin_pem: bytes | None = field(default=None, repr=False)
    decryption: DecryptionScheme = DecryptionScheme.NONE
    hmac_key_id: str | None = None
    """ECIES: the ``HMAC_UP`` key block (``BLOCK_KEYn``)."""
    rsa_key_pem: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not DEVICE_ID.match(self.device_id):
            raise UsageError(
                f"device id {self.device_id!r} must be 1-128 characters of [A-Za-z0-9._:-]"
            )
        check_server_url(self.server_url)
        load_manifest_public_key(self.manifest_key_pem)
        if (self.tls_ca_pem is None) == (self.tls_pin_pem is None):
            raise UsageError("trust either a CA certificate or one pinned server certificate")
        self.trust().context()  # the PEM must hold a usable certificate
        ecies = self.decryption is DecryptionScheme.ECIES_P256
        if ecies != (self.hmac_key_id is not None):
            raise UsageError("ECIES decryption needs an HMAC_UP key block, and only ECIES does")
        rsa = self.decryption is DecryptionScheme.RSA3072
        if rsa != (self.rsa_key_pem is not None):
            raise UsageError("RSA-3072 decryption needs a private key, and only RSA does")
        # The keys themselves are checked by decryption_key() (slow for RSA: once a cycle).

    def trust(self) -> TlsTrust:
        """The TLS trust anchor: the CA bundle, or the pinned server certificate."""
        if self.tls_ca_pem is not None:
            return TlsTrust.ca(self.tls_ca_pem)
        assert self.tls_pin_pem is not None
        return TlsTrust.pinned(self.tls_pin_pem)

    def manifest_key(self) -> ec.EllipticCurvePublicKey:
        return load_manifest_public_key(self.manifest_key_pem)

    def to_json(self) -> dict[str, object]:
        """Public facts only: ids and fingerprints, never a key."""
        ca = self.tls_ca_pem
        return {
            "device_id": self.device_id,
            "server_url": self.server_url,
            "manifest_key_id": manifest_key_id(self.manifest_key()),
            "tls": "ca" if ca is not None else "pinned",
            "tls_cert_sha256": _cert_sha256(
                ca if ca is not None else self.tls_pin_pem or b"", "TLS trust PEM"
            ),
            "decryption": self.decryption.value,
            "hmac_key_id": self.hmac_key_id,
        }


@dataclass(frozen=True)
class PendingUpdate:
    """An update the client switched to and has not finished with (survives reboots).

    Written before ``esp_ota_set_boot_partition``; ``outcome`` is set once the new app
    confirmed itself or rolled back, and the record is erased once that is reported.
    """

    release_id: str | None
    version: str
    secure_version: int
    partition: str
    """The slot the update was written to (``ota_1``)."""
    from_partition: str | None = None
    """The slot that ran when the update began (``None``: not known)."""
    counter: int | None = None
    outcome: str | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id,
            "version": self.version,
            "secure_version": self.secure_version,
            "partition": self.partition,
            "from_partition": self.from_partition,
            "counter": self.counter,
            "outcome": self.outcome,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, text: str) -> PendingUpdate:
        try:
            obj = json.loads(text)
            return cls(
                release_id=None if obj["release_id"] is None else str(obj["release_id"]),
                version=str(obj["version"]),
                secure_version=int(obj["secure_version"]),
                partition=str(obj["partition"]),
                from_partition=None
                if obj.get("from_partition") is None
                else str(obj["from_partition"]),
                counter=None if obj.get("counter") is None else int(obj["counter"]),
                outcome=None if obj.get("outcome") is None else str(obj["outcome"]),
                reason=str(obj.get("reason", "")),
            )
        except (ValueError, KeyError, TypeError):
            raise FormatError("NVS espsec_ota/pending is not a pending-update record") from None

    def finished(self, outcome: str, reason: str) -> PendingUpdate:
        return replace(self, outcome=outcome, reason=reason)


@dataclass(frozen=True)
class TrustCounter:
    """The manifest trust state kept across reboots."""

    last_counter: int = 0
    last_accepted_at: int | None = None


def _get(h: Any, key: str, vtype: ValueType) -> Any:
    if h.find_key(key) is None:
        return None
    return h.get(key, vtype)


class OtaNvs:
    """The ``espsec_ota`` namespace of the running app's NVS partition (``nvs_flash_init``).

    ``keys``: override the NVS encryption keys; by default they are the app's own
    (:func:`espsec.device.nvs.app_nvs_keys`, generated at the first init as ESP-IDF
    does when ``CONFIG_NVS_ENCRYPTION`` is on). A partition that does not read with the
    keys is refused before anything is written (:func:`espsec.device.nvs.open_app_nvs`).
    """

    def __init__(
        self, runtime: AppRuntime, *, keys: NvsKeys | None = None, partition: str = NVS_PARTITION
    ) -> None:
        try:
            self._store = open_app_nvs(runtime, partition, keys=keys)
        except NvsInitError as exc:
            raise OtaStateError(exc.message) from None

    def __repr__(self) -> str:
        return f"<OtaNvs {NAMESPACE}>"

    def _open(self) -> Any:
        return self._store.open(NAMESPACE)

    # -- provisioning ----------------------------------------------------------------

    def provisioning(self) -> OtaProvisioning:
        """The provisioned configuration (:class:`OtaStateError` if not provisioned)."""
        with self._open() as h:
            device_id = _get(h, "device_id", ValueType.STRING)
            url = _get(h, "server_url", ValueType.STRING)
            manifest_key = _get(h, "manifest_key", ValueType.BLOB)
            if device_id is None or url is None or manifest_key is None:
                raise OtaStateError(
                    "the device is not provisioned for fleet OTA (no espsec_ota in NVS): "
                    "run `espsec device provision-ota` first"
                )
            scheme = _get(h, "dec_scheme", ValueType.STRING) or DecryptionScheme.NONE.value
            try:
                decryption = DecryptionScheme(scheme)
            except ValueError:
                raise OtaStateError(f"NVS espsec_ota/dec_scheme is unknown: {scheme!r}") from None
            try:
                return OtaProvisioning(
                    device_id=device_id,
                    server_url=url,
                    manifest_key_pem=manifest_key,
                    tls_ca_pem=_get(h, "tls_ca", ValueType.BLOB),
                    tls_pin_pem=_get(h, "tls_pin", ValueType.BLOB),
                    decryption=decryption,
                    hmac_key_id=_get(h, "hmac_key_id", ValueType.STRING),
                    rsa_key_pem=_get(h, "rsa_key", ValueType.BLOB),
                )
            except EspsecError as exc:
                raise OtaStateError(f"the OTA state in NVS is unusable: {exc.message}") from None

    def is_provisioned(self) -> bool:
        with self._open() as h:
            return h.find_key("device_id") is not None

    def write_provisioning(self, prov: OtaProvisioning) -> None:
        """Store ``prov`` (the trust counter is kept: it must never go back)."""
        values: dict[str, tuple[ValueType, str | bytes | None]] = {
            "device_id": (ValueType.STRING, prov.device_id),
            "server_url": (ValueType.STRING, prov.server_url),
            "manifest_key": (ValueType.BLOB, prov.manifest_key_pem),
            "tls_ca": (ValueType.BLOB, prov.tls_ca_pem),
            "tls_pin": (ValueType.BLOB, prov.tls_pin_pem),
            "dec_scheme": (ValueType.STRING, prov.decryption.value),
            "hmac_key_id": (ValueType.STRING, prov.hmac_key_id),
            "rsa_key": (ValueType.BLOB, prov.rsa_key_pem),
        }
        with self._open() as h:
            for key, (vtype, value) in values.items():
                if value is None:
                    if h.find_key(key) is not None:
                        h.erase_key(key)
                else:
                    h.set(key, vtype, value)
            h.commit()

    # -- trust counter ---------------------------------------------------------------

    def trust_counter(self) -> TrustCounter:
        with self._open() as h:
            counter = _get(h, "counter", ValueType.U64)
            at = _get(h, "accepted_at", ValueType.U64)
        return TrustCounter(int(counter or 0), None if at is None else int(at))

    def set_trust_counter(self, state: TrustCounter) -> None:
        """Persist the counter of a manifest just accepted (before acting on it)."""
        with self._open() as h:
            h.set_u64("counter", state.last_counter)
            if state.last_accepted_at is not None:
                h.set_u64("accepted_at", max(0, state.last_accepted_at))
            h.commit()

    # -- pending update --------------------------------------------------------------

    def pending(self) -> PendingUpdate | None:
        with self._open() as h:
            text = _get(h, "pending", ValueType.STRING)
        return None if text is None else PendingUpdate.from_json(text)

    def set_pending(self, pending: PendingUpdate | None) -> None:
        with self._open() as h:
            if pending is None:
                try:
                    h.erase_key("pending")
                except NvsError as exc:
                    if exc.code != nvs_errors.NOT_FOUND:
                        raise
            else:
                h.set_str("pending", json.dumps(pending.to_json(), sort_keys=True))
            h.commit()


# -- keys -----------------------------------------------------------------------------


def hmac_up_blocks(efuses: Efuses) -> tuple[str, ...]:
    """Key blocks whose purpose is ``HMAC_UP`` (``esp_efuse_find_purpose``)."""
    layout = efuses.layout
    return tuple(
        b.name for b in layout.key_blocks if layout.purpose_name(efuses.key_purpose(b)) == HMAC_UP
    )


def _hmac_block(efuses: Efuses, block: str) -> str:
    name = efuses.layout.block(block).name
    if name not in {b.name for b in efuses.layout.key_blocks}:
        raise UsageError(f"{name} is not a key block (BLOCK_KEY0 … BLOCK_KEY5)")
    return name


def _ecies_key(efuses: Efuses, block: str) -> DecryptionKey:
    """The ECIES device key, derived through the HMAC peripheral from the ``HMAC_UP``
    key in ``block`` (``derive_ota_ecc_device_key``): the key never reaches software."""
    name = _hmac_block(efuses, block)
    purpose = efuses.layout.purpose_name(efuses.key_purpose(name))
    if purpose != HMAC_UP:
        raise OtaStateError(f"{name} has key purpose {purpose}, not {HMAC_UP}")
    peripheral = HmacPeripheral(efuses)
    key_id = peripheral.key_id(name)
    try:
        return derive_device_key(lambda message: peripheral.calculate(key_id, message))
    except (HmacError, KeyFormatError) as exc:
        raise OtaStateError(exc.message) from None


def generate_hmac_key(runtime: AppRuntime, block: str) -> None:
    """Burn a fresh random ``HMAC_UP`` key into ``block`` from the running app.

    As ``esp_efuse_write_key`` with a key from the hardware RNG: the key is
    read-protected at once and never leaves the chip. Refused unless the block is
    unused.
    """
    efuses = runtime.hw.efuses
    name = _hmac_block(efuses, block)
    purpose = efuses.layout.purpose_name(efuses.key_purpose(name))
    if purpose != "USER" or any(efuses.read_block(name)):
        raise UsageError(f"{name} is in use (purpose {purpose}): choose an empty key block")
    key = os.urandom(HMAC_KEY_SIZE)
    if not efuses.is_writeable("RD_DIS"):
        raise OtaStateError(
            f"cannot burn a read-protected key into {name}: RD_DIS is write-protected "
            "(release-mode flash encryption locks it); burn the HMAC_UP key before the "
            "first boot"
        )
    runtime.hw.burn(
        Transaction().burn_key(name, key, HMAC_UP), "esp_efuse_write_key (OTA ECIES HMAC key)"
    )


def decryption_key(runtime: AppRuntime, prov: OtaProvisioning) -> DecryptionKey | None:
    """The key pre-encrypted images are decrypted with (``None``: plain images only)."""
    if prov.decryption is DecryptionScheme.ECIES_P256:
        assert prov.hmac_key_id is not None
        return _ecies_key(runtime.hw.efuses, prov.hmac_key_id)
    if prov.decryption is DecryptionScheme.RSA3072:
        assert prov.rsa_key_pem is not None
        return _pem.load_private_key(prov.rsa_key_pem, kinds=(_pem.rsa_kind(3072),))
    return None


@dataclass(frozen=True)
class OtaIdentity:
    """A provisioned device as the fleet sees it: its configuration and the public key
    pre-encrypted images must be made for."""

    provisioning: OtaProvisioning
    recipient_pem: bytes | None = field(repr=False)
    """The public half of the decryption key (``espsec ota pack --encrypt-to`` it)."""
    recipient_id: str | None
    generated_hmac_key: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            **self.provisioning.to_json(),
            "recipient_id": self.recipient_id,
            "generated_hmac_key": self.generated_hmac_key,
        }


def provision_ota(
    runtime: AppRuntime,
    prov: OtaProvisioning,
    *,
    generate_key: bool = False,
    nvs_keys: NvsKeys | None = None,
) -> OtaIdentity:
    """Write ``prov`` into the running app's NVS (``espsec device provision-ota``).

    ``generate_key`` (ECIES): if ``prov.hmac_key_id`` is an empty key block, the app
    first burns a fresh random ``HMAC_UP`` key there (:func:`generate_hmac_key`). The
    decryption key must work before anything is written. ``nvs_keys``: override the
    app's NVS encryption keys (by default its ``nvs_flash_init`` keys, see :class:`OtaNvs`).
    """
    nvs = OtaNvs(runtime, keys=nvs_keys)
    generated = False
    if generate_key:
        if prov.hmac_key_id is None:
            raise UsageError("generating a key needs an ECIES HMAC_UP key block")
        name = _hmac_block(runtime.hw.efuses, prov.hmac_key_id)
        if name not in hmac_up_blocks(runtime.hw.efuses):
            generate_hmac_key(runtime, name)
            generated = True
    key = decryption_key(runtime, prov)
    nvs.write_provisioning(prov)
    return OtaIdentity(
        prov,
        None if key is None else public_key_pem(key),
        None if key is None else recipient_id(key),
        generated,
    )
