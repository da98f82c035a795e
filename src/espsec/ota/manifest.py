"""The update decision: a signed, expiring manifest bound to one device and one check-in.

The fleet answers every check-in with a manifest, "no update" included, so a device
can tell a real answer from a suppressed or forged one. Ideas from TUF's timestamp
and targets roles, sized for a microcontroller (ADR 0005 in ``docs/adr/``):

* **signature** — ECDSA P-256/SHA-256 with the fleet's manifest key (not a Secure Boot
  key); the device is provisioned with its public key;
* **device binding** — ``device_id`` must be the device's own;
* **freshness** — ``nonce`` must be the one the device sent in this check-in, so a
  recorded answer cannot be replayed;
* **monotonic counter** — ``counter`` must exceed the last one the device accepted,
  so even a nonce reused by a weak RNG cannot bring back an older decision;
* **expiry** — ``expires_at`` bounds how long an answer may be acted on;
* **anti-rollback** — a target below the device's ``secure_version`` is refused.

Wire format: a DSSE-style envelope (``{"payloadType", "payload", "signatures"}``, JSON)
whose signature covers the PAE encoding of the exact payload bytes, so nothing is ever
re-serialised before verification. The payload is canonical JSON.

:func:`verify_manifest` and :class:`ManifestTrust` do no IO: the device's OTA client
fetches bytes with :mod:`espsec.ota.client` and hands them here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from espsec import _pem
from espsec.errors import FormatError, KeyFormatError, UsageError, VerificationError
from espsec.ota._json import (
    canonical,
    check_keys,
    get_hex,
    get_int,
    get_str,
    strict_loads,
)
from espsec.ota.protocol import NONCE_SIZES, ReleaseTarget

PAYLOAD_TYPE = "application/vnd.espsec.ota-manifest+json; version=1"
MANIFEST_TYPE = "espsec.ota-manifest.v1"
MAX_MANIFEST_SIZE = 64 * 1024
MAX_CLOCK_SKEW = 300
"""Seconds a manifest's ``issued_at`` may lie in the device's future."""
_SIG_SIZE = 64
_PEM_KINDS = (_pem.ecdsa_kind(ec.SECP256R1()),)


class Refusal(StrEnum):
    """Why a manifest was refused (what a device reports back)."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad signature"
    WRONG_DEVICE = "wrong device"
    REPLAYED = "replayed"
    STALE_COUNTER = "stale counter"
    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"
    DOWNGRADE = "downgrade"


class ManifestError(VerificationError):
    """A manifest the device must not act on; ``refusal`` says why."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(f"manifest refused ({refusal.value}): {message}")
        self.refusal = refusal


@dataclass(frozen=True)
class Manifest:
    """The signed content of a manifest."""

    device_id: str
    nonce: str
    """Hex of the nonce the device sent in its check-in."""
    counter: int
    issued_at: int
    expires_at: int
    release: ReleaseTarget | None
    reason: str = ""
    """Why no release is offered (or a note about the one offered)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": MANIFEST_TYPE,
            "device_id": self.device_id,
            "nonce": self.nonce,
            "counter": self.counter,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "release": None if self.release is None else self.release.to_json(),
            "reason": self.reason,
        }

    def to_bytes(self) -> bytes:
        """The canonical JSON payload (what the envelope carries and the signature covers)."""
        return canonical(self.to_dict())

    @classmethod
    def from_bytes(cls, payload: bytes) -> Manifest:
        """Parse a payload strictly (:class:`FormatError` on anything unexpected)."""
        what = "manifest"
        obj = strict_loads(payload, what=what)
        check_keys(obj, ("_type", *(f.name for f in fields(cls))), what=what)
        if obj.get("_type") != MANIFEST_TYPE:
            raise FormatError(
                f"{what}: unknown type",
                field="_type",
                expected=MANIFEST_TYPE,
                found=obj.get("_type"),
            )
        release = obj.get("release")
        if release is not None and not isinstance(release, dict):
            raise FormatError(f"{what}: release must be an object or null", field="release")
        nonce = get_hex(obj, "nonce", what=what)
        return cls(
            device_id=get_str(obj, "device_id", what=what, max_len=128),
            nonce=nonce,
            counter=get_int(obj, "counter", what=what, lo=1),
            issued_at=get_int(obj, "issued_at", what=what),
            expires_at=get_int(obj, "expires_at", what=what),
            release=None if release is None else ReleaseTarget.from_json(release),
            reason=get_str(obj, "reason", what=what, max_len=512),
        )


# -- keys -------------------------------------------------------------------------------


def generate_manifest_key() -> bytes:
    """A new ECDSA P-256 manifest signing key (PKCS#8 PEM) from the OS entropy source."""
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_manifest_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    """Load the fleet's manifest signing key (P-256 PEM)."""
    key = _pem.load_private_key(pem, kinds=_PEM_KINDS)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def load_manifest_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """Load the manifest public key a device is provisioned with (P-256 PEM)."""
    key = _pem.load_public_key(pem, kinds=_PEM_KINDS)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def manifest_key_id(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """Hex SHA-256 of the public key's SubjectPublicKeyInfo DER (the envelope ``keyid``)."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def new_nonce() -> bytes:
    """16 fresh random bytes for a check-in."""
    return os.urandom(16)


# -- envelope ---------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what the signature covers."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def sign_manifest(
    manifest: Manifest, key: ec.EllipticCurvePrivateKey, *, key_id: str | None = None
) -> bytes:
    """The envelope bytes the fleet sends: payload and its ECDSA P-256 signature.

    ``key_id``: :func:`manifest_key_id` of ``key``, when the caller keeps it (a server
    signing thousands of manifests a second need not re-encode its public key each time).
    """
    if not isinstance(key.curve, ec.SECP256R1):
        raise KeyFormatError("the manifest key must be an ECDSA P-256 key")
    payload = manifest.to_bytes()
    r, s = utils.decode_dss_signature(
        key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    )
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [
            {
                "keyid": key_id or manifest_key_id(key),
                "sig": base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode(),
            }
        ],
    }
    return canonical(envelope)


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise FormatError(f"{what} is not valid base64") from None


def _check_signature(public: ec.EllipticCurvePublicKey, message: bytes, sig: bytes) -> bool:
    if len(sig) != _SIG_SIZE:
        return False
    der = utils.encode_dss_signature(
        int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    )
    try:
        public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def open_envelope(data: bytes, trusted_key: ec.EllipticCurvePublicKey) -> bytes:
    """Check the envelope's signature with ``trusted_key``; return the signed payload bytes."""
    if len(data) > MAX_MANIFEST_SIZE:
        raise ManifestError(Refusal.MALFORMED, f"larger than {MAX_MANIFEST_SIZE} bytes")
    try:
        env = strict_loads(data, what="manifest envelope")
        if env.get("payloadType") != PAYLOAD_TYPE:
            raise FormatError("unexpected payloadType", found=env.get("payloadType"))
        payload = _b64(env.get("payload"), "payload")
        sigs = env.get("signatures")
        if not isinstance(sigs, list) or not 1 <= len(sigs) <= 8:
            raise FormatError("signatures must be a list of 1 to 8 entries")
    except FormatError as exc:
        raise ManifestError(Refusal.MALFORMED, exc.message) from None
    want = manifest_key_id(trusted_key)
    message = pae(PAYLOAD_TYPE, payload)
    for entry in sigs:
        if not isinstance(entry, dict) or not isinstance(entry.get("keyid"), str):
            continue
        if not hmac.compare_digest(entry["keyid"].encode(), want.encode()):
            continue
        try:
            sig = _b64(entry.get("sig"), "signature")
        except FormatError:
            continue
        if _check_signature(trusted_key, message, sig):
            return payload
    raise ManifestError(Refusal.BAD_SIGNATURE, "no valid signature by the trusted manifest key")


def verify_manifest(
    data: bytes,
    trusted_key: ec.EllipticCurvePublicKey,
    *,
    now: float,
    device_id: str,
    nonce: bytes,
    last_counter: int,
    min_secure_version: int | None = None,
    max_clock_skew: int = MAX_CLOCK_SKEW,
) -> Manifest:
    """Verify a manifest envelope for this device and this check-in; return its content.

    Refuses (:class:`ManifestError`, with a :class:`Refusal`) unless: the signature is
    valid for ``trusted_key``; the payload parses; it names ``device_id``; it echoes
    ``nonce``; its counter exceeds ``last_counter``; ``now`` lies in
    ``[issued_at - max_clock_skew, expires_at)``; and any release's ``secure_version`` is at
    least ``min_secure_version`` (the device's eFuse secure version). The caller stores
    the returned ``counter`` as its new ``last_counter``.
    """
    if len(nonce) not in NONCE_SIZES:
        raise UsageError(f"nonce must be 16 to 64 bytes, got {len(nonce)}")
    payload = open_envelope(data, trusted_key)
    try:
        manifest = Manifest.from_bytes(payload)
    except FormatError as exc:
        raise ManifestError(Refusal.MALFORMED, exc.message) from None
    if not hmac.compare_digest(manifest.device_id.encode(), device_id.encode()):
        raise ManifestError(Refusal.WRONG_DEVICE, "issued for another device")
    if not hmac.compare_digest(manifest.nonce.encode(), nonce.hex().encode()):
        raise ManifestError(Refusal.REPLAYED, "does not answer this check-in (nonce differs)")
    if manifest.counter <= last_counter:
        raise ManifestError(
            Refusal.STALE_COUNTER,
            f"counter {manifest.counter} is not above the last accepted {last_counter}",
        )
    if now >= manifest.expires_at:
        raise ManifestError(Refusal.EXPIRED, f"expired at {manifest.expires_at} (now {int(now)})")
    if now < manifest.issued_at - max_clock_skew:
        raise ManifestError(
            Refusal.NOT_YET_VALID, f"issued at {manifest.issued_at}, in the future (now {int(now)})"
        )
    release = manifest.release
    if (
        release is not None
        and min_secure_version is not None
        and release.secure_version < min_secure_version
    ):
        raise ManifestError(
            Refusal.DOWNGRADE,
            f"release secure_version {release.secure_version} is below the device's "
            f"{min_secure_version}",
        )
    return manifest


@dataclass
class ManifestTrust:
    """A device's manifest trust state: the IO-free state machine of its OTA client.

    Persist ``last_counter`` (and ``last_accepted_at``) across reboots, e.g. in NVS.
    Use: ``nonce = trust.begin_check_in()``; send it; ``trust.accept(answer, now=...)``.
    """

    device_id: str
    manifest_key: ec.EllipticCurvePublicKey = field(repr=False)
    last_counter: int = 0
    last_accepted_at: int | None = None
    _nonce: bytes | None = field(default=None, repr=False)

    def begin_check_in(self) -> bytes:
        """A fresh nonce for the next check-in (any earlier outstanding one is forgotten)."""
        self._nonce = new_nonce()
        return self._nonce

    def accept(self, data: bytes, *, now: float, min_secure_version: int | None = None) -> Manifest:
        """Verify the answer to the outstanding check-in and advance the counter.

        The nonce is used up whatever the outcome, so an answer is accepted at most once.
        """
        if self._nonce is None:
            raise UsageError("no check-in outstanding: call begin_check_in first")
        nonce, self._nonce = self._nonce, None
        manifest = verify_manifest(
            data,
            self.manifest_key,
            now=now,
            device_id=self.device_id,
            nonce=nonce,
            last_counter=self.last_counter,
            min_secure_version=min_secure_version,
        )
        self.last_counter = manifest.counter
        self.last_accepted_at = int(now)
        return manifest

    def is_stale(self, *, now: float, max_age: int) -> bool:
        """True when no valid manifest was accepted in the last ``max_age`` seconds.

        A device that cannot get a fresh signed answer may be under a freeze attack
        (its traffic dropped or replaced); report or alarm rather than trust old news.
        """
        return self.last_accepted_at is None or now - self.last_accepted_at > max_age
