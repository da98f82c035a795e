"""The OTA wire protocol between a device's OTA client and the fleet server: one home.

Both sides import these types; neither keeps its own copy. The device API::

    POST /api/v1/device/checkin      CheckIn (JSON)   -> signed manifest envelope
                                     (espsec.ota.manifest), whose payload carries a
                                     ReleaseTarget or the reason there is none
    POST /api/v1/device/report       OutcomeReport (JSON)
    GET  /api/v1/firmware/<sha256>   the payload a ReleaseTarget names
    GET  /api/v1/manifest-key        the manifest public key (PEM)

Each message is a frozen dataclass with ``to_json()`` (the JSON object sent) and a
strict ``parse(data: bytes)``: unknown members, wrong types, missing members, unknown
enum values and oversize strings raise :class:`~espsec.errors.FormatError` naming the
member, what was expected and what was found. ``to_bytes()`` is the request body a
device sends.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from espsec.errors import FormatError, UsageError
from espsec.ota._json import (
    check_keys,
    get_hex,
    get_int,
    get_opt_hex,
    get_opt_str,
    get_str,
    strict_loads,
)
from espsec.ota.encrypted_image import HEADER_SIZE, Scheme

API = "/api/v1"
CHECK_IN_PATH = f"{API}/device/checkin"
REPORT_PATH = f"{API}/device/report"
FIRMWARE_PATH = f"{API}/firmware/"
"""Prefix of a payload's download path; the payload's hex SHA-256 follows."""
MANIFEST_KEY_PATH = f"{API}/manifest-key"
ADMIN_PATH = f"{API}/admin/"
"""Prefix of the fleet's admin API (token-authenticated; not for devices)."""

DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
"""What a device id looks like: 1-128 characters of ``[A-Za-z0-9._:-]``."""
NONCE_SIZES = range(16, 65)
"""Accepted check-in nonce sizes in bytes (a device sends 16 or more fresh random bytes)."""
MAX_REASON = 500
"""Longest ``reason`` a report may carry."""
MAX_SECURE_VERSION = 0xFFFFFFFF
MAX_NAME = 32
"""Longest ``project_name``, ``version`` or ``chip`` (``esp_app_desc_t`` holds 32 bytes)."""
MAX_LENGTH = 0xFFFFFFFF
"""Largest image a target may name (the image header's 32-bit sizes)."""


class Outcome(StrEnum):
    """How an update attempt ended, as a device reports it."""

    UPDATED = "updated"
    ROLLED_BACK = "rolled_back"
    REFUSED = "refused"
    FAILED = "failed"


class BootState(StrEnum):
    """``esp_ota_img_states_t`` of the running app, lower case, as a device checks in."""

    VALID = "valid"
    PENDING_VERIFY = "pending_verify"
    NEW = "new"
    INVALID = "invalid"
    ABORTED = "aborted"
    UNDEFINED = "undefined"

    @classmethod
    def from_ota_img_state(cls, name: str | None) -> BootState:
        """From an ``ESP_OTA_IMG_*`` state name (``PENDING_VERIFY``); ``None``: undefined."""
        return _coerce(cls, "boot_state", (name or cls.UNDEFINED.value).lower())


class Encryption(StrEnum):
    """How a release payload is carried: the plain signed image or an ``esp_encrypted_img``."""

    NONE = "none"
    """The plain signed image."""
    RSA3072 = Scheme.RSA3072.value
    """``CONFIG_PRE_ENCRYPTED_OTA_USE_RSA``: for an RSA-3072 private key."""
    ECIES_P256 = Scheme.ECIES_P256.value
    """``CONFIG_PRE_ENCRYPTED_OTA_USE_ECIES``: for a key derived from an ``HMAC_UP`` eFuse key."""


_E = TypeVar("_E", bound=StrEnum)


def _coerce(enum: type[_E], name: str, value: object) -> _E:
    """``value`` as a member of ``enum`` (:class:`UsageError` naming ``name`` otherwise)."""
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return enum(value)
    raise UsageError(f"{name} must be one of {', '.join(enum)}, not {str(value)[:64]!r}")


def _get_enum(obj: Mapping[str, Any], key: str, enum: type[_E], *, what: str) -> _E:
    value = get_str(obj, key, what=what, max_len=32)
    try:
        return enum(value)
    except ValueError:
        raise FormatError(
            f"{what}: unknown {key}", field=key, expected=", ".join(enum), found=value
        ) from None


def _get_device_id(obj: Mapping[str, Any], *, what: str) -> str:
    device_id = get_str(obj, "device_id", what=what, max_len=128)
    if not DEVICE_ID.match(device_id):
        raise FormatError(
            f"{what}: device_id has characters outside [A-Za-z0-9._:-]",
            field="device_id",
            expected="[A-Za-z0-9][A-Za-z0-9._:-]*",
            found=device_id,
        )
    return device_id


def _get_opt_int(obj: Mapping[str, Any], key: str, *, what: str, hi: int) -> int | None:
    return None if obj.get(key) is None else get_int(obj, key, what=what, hi=hi)


def _members(cls: type) -> tuple[str, ...]:
    """The JSON member names of a message: its field names."""
    return tuple(f.name for f in fields(cls))


def _body(obj: Mapping[str, Any]) -> bytes:
    """A request body: the JSON object as the device's HTTP client sends it."""
    return json.dumps(obj).encode()


FLASH_ENCRYPTION_MODES = ("disabled", "development", "release")
"""``Posture.flash_encryption``: as :func:`espsec.efuse.security_state` decodes it."""
JTAG_MODES = ("enabled", "soft-disabled", "hard-disabled")
DOWNLOAD_MODES = ("normal", "secure", "disabled")
MAX_KEY_SLOTS = 3


def _get_bool(obj: Mapping[str, Any], key: str, *, what: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise FormatError(
            f"{what}: {key} must be true or false",
            field=key,
            expected="boolean",
            found=type(value).__name__ if value is not None else "missing",
        )
    return value


def _get_choice(obj: Mapping[str, Any], key: str, choices: tuple[str, ...], *, what: str) -> str:
    value = get_str(obj, key, what=what, max_len=32)
    if value not in choices:
        raise FormatError(
            f"{what}: unknown {key}", field=key, expected=", ".join(choices), found=value
        )
    return value


@dataclass(frozen=True)
class Posture:
    """A device's security posture, as its eFuses and running app say (sent at check-in).

    The check-in is authenticated by the device's client certificate, so the fleet
    records the posture against that identity.
    """

    secure_boot: bool
    """``SECURE_BOOT_EN``."""
    flash_encryption: str
    """``disabled``, ``development`` or ``release`` (``SPI_BOOT_CRYPT_CNT`` and the
    release-mode protection bits)."""
    jtag: str
    """``enabled``, ``soft-disabled`` (``SOFT_DIS_JTAG``) or ``hard-disabled``
    (``DIS_PAD_JTAG``)."""
    download_mode: str
    """``normal``, ``secure`` (``ENABLE_SECURITY_DOWNLOAD``) or ``disabled``
    (``DIS_DOWNLOAD_MODE``)."""
    secure_version: int
    """The eFuse ``secure_version`` (anti-rollback floor)."""
    app_version: str
    """``esp_app_desc_t.version`` of the running app."""
    idf_version: str | None = None
    """``esp_app_desc_t.idf_ver`` of the running app."""
    revoked_key_slots: tuple[int, ...] = ()
    """Secure Boot key slots whose ``SECURE_BOOT_KEY_REVOKEn`` is burned."""
    usb_jtag_disabled: bool | None = None
    """``DIS_USB_JTAG``, on chips with a USB-Serial-JTAG."""

    def to_json(self) -> dict[str, Any]:
        return {
            "secure_boot": self.secure_boot,
            "flash_encryption": self.flash_encryption,
            "jtag": self.jtag,
            "download_mode": self.download_mode,
            "secure_version": self.secure_version,
            "app_version": self.app_version,
            "idf_version": self.idf_version,
            "revoked_key_slots": list(self.revoked_key_slots),
            "usb_jtag_disabled": self.usb_jtag_disabled,
        }

    @classmethod
    def from_json(cls, obj: object) -> Posture:
        """The posture from its JSON object, strictly."""
        what = "check-in posture"
        if not isinstance(obj, dict):
            raise FormatError(
                f"{what} must be a JSON object", field="posture", found=type(obj).__name__
            )
        check_keys(obj, _members(cls), what=what)
        slots = obj.get("revoked_key_slots", [])
        if (
            not isinstance(slots, list)
            or len(slots) > MAX_KEY_SLOTS
            or any(
                not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < MAX_KEY_SLOTS
                for n in slots
            )
            or len(set(slots)) != len(slots)
        ):
            raise FormatError(
                f"{what}: revoked_key_slots must be distinct slot numbers 0-2",
                field="revoked_key_slots",
                expected="[0..2, ...]",
                found=str(slots)[:64],
            )
        usb = obj.get("usb_jtag_disabled")
        return cls(
            secure_boot=_get_bool(obj, "secure_boot", what=what),
            flash_encryption=_get_choice(
                obj, "flash_encryption", FLASH_ENCRYPTION_MODES, what=what
            ),
            jtag=_get_choice(obj, "jtag", JTAG_MODES, what=what),
            download_mode=_get_choice(obj, "download_mode", DOWNLOAD_MODES, what=what),
            secure_version=get_int(obj, "secure_version", what=what, hi=MAX_SECURE_VERSION),
            app_version=get_str(obj, "app_version", what=what, max_len=MAX_NAME),
            idf_version=get_opt_str(obj, "idf_version", what=what, max_len=MAX_NAME),
            revoked_key_slots=tuple(sorted(slots)),
            usb_jtag_disabled=None
            if usb is None
            else _get_bool(obj, "usb_jtag_disabled", what=what),
        )


@dataclass(frozen=True)
class CheckIn:
    """What a device tells the fleet at check-in (``POST /api/v1/device/checkin``)."""

    device_id: str
    chip: str
    """espsec chip name (``esp32p4``): releases for other chips are not offered."""
    version: str
    """``esp_app_desc_t.version`` of the running app."""
    secure_version: int
    """The device's anti-rollback floor: its eFuse secure version (or, without
    anti-rollback, the running app's). Releases below it are never offered."""
    boot_state: BootState
    """``esp_ota_img_states_t`` of the running app."""
    nonce: bytes = field(repr=False)
    """From :meth:`~espsec.ota.ManifestTrust.begin_check_in`; the manifest must echo it."""
    last_counter: int = 0
    """The last manifest counter the device accepted."""
    project_name: str | None = None
    image_sha256: str | None = None
    """Hex SHA-256 of the running signed image, if the device knows it."""
    enc_key_id: str | None = None
    """:func:`espsec.ota.encrypted_image.recipient_id` of the device's decryption key."""
    posture: Posture | None = None
    """The device's security posture (eFuses and running app), if it reports one."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "boot_state", _coerce(BootState, "boot_state", self.boot_state))

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "device_id": self.device_id,
            "chip": self.chip,
            "version": self.version,
            "secure_version": self.secure_version,
            "boot_state": self.boot_state.value,
            "nonce": self.nonce.hex(),
            "last_counter": self.last_counter,
            "project_name": self.project_name,
            "image_sha256": self.image_sha256,
            "enc_key_id": self.enc_key_id,
        }
        if self.posture is not None:  # absent, not null: the body devices sent before
            obj["posture"] = self.posture.to_json()
        return obj

    def to_bytes(self) -> bytes:
        return _body(self.to_json())

    @classmethod
    def parse(cls, data: bytes) -> CheckIn:
        """Parse a check-in body strictly (:class:`FormatError` on anything unexpected)."""
        what = "check-in"
        obj = strict_loads(data, what=what)
        check_keys(obj, _members(cls), what=what)
        device_id = _get_device_id(obj, what=what)
        nonce = get_hex(obj, "nonce", what=what)
        if len(nonce) // 2 not in NONCE_SIZES:
            raise FormatError(
                f"{what}: nonce must be 16 to 64 bytes",
                field="nonce",
                expected="16..64",
                found=len(nonce) // 2,
            )
        return cls(
            device_id=device_id,
            chip=get_str(obj, "chip", what=what, max_len=MAX_NAME),
            version=get_str(obj, "version", what=what, max_len=MAX_NAME),
            secure_version=get_int(obj, "secure_version", what=what, hi=MAX_SECURE_VERSION),
            boot_state=_get_enum(obj, "boot_state", BootState, what=what),
            nonce=bytes.fromhex(nonce),
            last_counter=get_int(obj, "last_counter", what=what, hi=2**62),
            project_name=get_opt_str(obj, "project_name", what=what, max_len=MAX_NAME),
            image_sha256=get_opt_hex(obj, "image_sha256", what=what, size=32),
            enc_key_id=get_opt_hex(obj, "enc_key_id", what=what, size=32),
            posture=None if obj.get("posture") is None else Posture.from_json(obj["posture"]),
        )


@dataclass(frozen=True)
class OutcomeReport:
    """What a device reports after acting on a manifest (``POST /api/v1/device/report``)."""

    device_id: str
    release_id: str | None
    outcome: Outcome
    reason: str = ""
    counter: int | None = None
    """The counter of the manifest that offered the release."""
    version: str | None = None
    """``esp_app_desc_t.version`` of the app running after the attempt."""
    secure_version: int | None = None
    """The device's eFuse secure version after the attempt."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", _coerce(Outcome, "outcome", self.outcome))

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "release_id": self.release_id,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "counter": self.counter,
            "version": self.version,
            "secure_version": self.secure_version,
        }

    def to_bytes(self) -> bytes:
        return _body(self.to_json())

    @classmethod
    def parse(cls, data: bytes) -> OutcomeReport:
        """Parse a report body strictly (:class:`FormatError` on anything unexpected)."""
        what = "report"
        obj = strict_loads(data, what=what)
        check_keys(obj, _members(cls), what=what)
        return cls(
            device_id=_get_device_id(obj, what=what),
            release_id=get_opt_str(obj, "release_id", what=what, max_len=64),
            outcome=_get_enum(obj, "outcome", Outcome, what=what),
            reason=get_opt_str(obj, "reason", what=what, max_len=MAX_REASON) or "",
            counter=_get_opt_int(obj, "counter", what=what, hi=2**63 - 1),
            version=get_opt_str(obj, "version", what=what, max_len=MAX_NAME),
            secure_version=_get_opt_int(obj, "secure_version", what=what, hi=MAX_SECURE_VERSION),
        )


class ReleaseFacts(Protocol):
    """What a target takes from a release: its statement, or the fleet's stored copy."""

    @property
    def project_name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def secure_version(self) -> int: ...
    @property
    def chip(self) -> str: ...
    @property
    def image_length(self) -> int: ...
    @property
    def image_sha256(self) -> str: ...
    @property
    def signed_digest(self) -> str: ...


class PayloadFacts(Protocol):
    """What a target takes from one payload of a release."""

    @property
    def encryption(self) -> str: ...
    @property
    def length(self) -> int: ...
    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class ReleaseTarget:
    """The release a manifest tells the device to install, and how to check it."""

    release_id: str
    project_name: str
    version: str
    secure_version: int
    chip: str
    url: str
    """Path on the fleet server (``/api/v1/firmware/<sha256>``)."""
    length: int
    """Bytes to download (the payload: encrypted image or plain signed image)."""
    sha256: str
    """Hex SHA-256 of the payload as downloaded."""
    encryption: Encryption
    image_length: int
    """Length of the signed plaintext image (after decryption)."""
    image_sha256: str
    """Hex SHA-256 of the signed plaintext image (equals ``DecryptResult.sha256``)."""
    signed_digest: str
    """Hex Secure Boot v2 image digest its signature blocks record."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "encryption", _coerce(Encryption, "encryption", self.encryption))

    @classmethod
    def from_statement(
        cls, release_id: str, release: ReleaseFacts, payload: PayloadFacts
    ) -> ReleaseTarget:
        """The target offering ``payload`` of a release (its
        :class:`~espsec.ota.release.ReleaseStatement`, or the fleet's stored row of it):
        the one place release facts are copied into what a device is told."""
        return cls(
            release_id=release_id,
            project_name=release.project_name,
            version=release.version,
            secure_version=release.secure_version,
            chip=release.chip,
            url=FIRMWARE_PATH + payload.sha256,
            length=payload.length,
            sha256=payload.sha256,
            encryption=_coerce(Encryption, "encryption", payload.encryption),
            image_length=release.image_length,
            image_sha256=release.image_sha256,
            signed_digest=release.signed_digest,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id,
            "project_name": self.project_name,
            "version": self.version,
            "secure_version": self.secure_version,
            "chip": self.chip,
            "url": self.url,
            "length": self.length,
            "sha256": self.sha256,
            "encryption": self.encryption.value,
            "image_length": self.image_length,
            "image_sha256": self.image_sha256,
            "signed_digest": self.signed_digest,
        }

    def to_bytes(self) -> bytes:
        return _body(self.to_json())

    @classmethod
    def parse(cls, data: bytes) -> ReleaseTarget:
        """Parse a target on its own (in a manifest it is :meth:`from_json`'s object)."""
        return cls.from_json(strict_loads(data, what="manifest release"))

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ReleaseTarget:
        """The target from its JSON object, strictly."""
        what = "manifest release"
        check_keys(obj, _members(cls), what=what)
        url = get_str(obj, "url", what=what, max_len=512)
        if not url.startswith("/") or url.startswith("//"):
            raise FormatError(
                f"{what}: url must be a path on the fleet server",
                field="url",
                expected="/path",
                found=url,
            )
        digest = get_str(obj, "signed_digest", what=what, max_len=96)
        if len(digest) not in (64, 96):
            raise FormatError(
                f"{what}: signed_digest must be SHA-256 or SHA-384",
                field="signed_digest",
                expected="64 or 96 hex digits",
                found=len(digest),
            )
        return cls(
            release_id=get_str(obj, "release_id", what=what, max_len=64),
            project_name=get_str(obj, "project_name", what=what, max_len=MAX_NAME),
            version=get_str(obj, "version", what=what, max_len=MAX_NAME),
            secure_version=get_int(obj, "secure_version", what=what, hi=MAX_SECURE_VERSION),
            chip=get_str(obj, "chip", what=what, max_len=MAX_NAME),
            url=url,
            length=get_int(obj, "length", what=what, lo=1, hi=MAX_LENGTH + HEADER_SIZE),
            sha256=get_hex(obj, "sha256", what=what, size=32),
            encryption=_get_enum(obj, "encryption", Encryption, what=what),
            image_length=get_int(obj, "image_length", what=what, lo=1, hi=MAX_LENGTH),
            image_sha256=get_hex(obj, "image_sha256", what=what, size=32),
            signed_digest=get_hex(obj, "signed_digest", what=what, size=len(digest) // 2),
        )
