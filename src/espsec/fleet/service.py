"""The fleet's logic, independent of HTTP: uploads, cohorts, check-ins, reports.

:class:`FleetService` is what the ASGI app (and tests) call. :func:`decide` is the pure
update policy.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from espsec._io import read_bytes, write_atomic
from espsec.errors import EspsecError, KeyFormatError, UsageError
from espsec.fleet.config import BLOB_DIR, DB_FILE, MANIFEST_KEY, load_config
from espsec.fleet.db import DeviceRow, FleetDB, PayloadRow, ReleaseRow
from espsec.ota.manifest import Manifest, load_manifest_private_key, sign_manifest
from espsec.ota.protocol import (
    DEVICE_ID,
    BootState,
    CheckIn,
    Encryption,
    Outcome,
    OutcomeReport,
    ReleaseTarget,
)
from espsec.ota.release import ReleaseBundle, verify_release
from espsec.secure_boot.keys import public_key_pem

_COHORT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
BLOCKING_OUTCOMES = (Outcome.ROLLED_BACK, Outcome.REFUSED)
"""Outcomes after which a release is not offered to that device again until reassigned."""


class NotFound(EspsecError):
    """A release, cohort or payload that does not exist."""


class Forbidden(EspsecError):
    """An authenticated device asked for something that is not its own (HTTP 403)."""


def _same_device(client_id: str, claimed: str, what: str) -> None:
    if not hmac.compare_digest(client_id.encode(), claimed.encode()):
        raise Forbidden(
            f"the client certificate is for device {client_id!r}; it cannot {what} as {claimed!r}"
        )


def decide(
    device: CheckIn,
    cohort: str,
    release: ReleaseRow | None,
    payloads: list[PayloadRow],
    blocked_release: str | None,
) -> tuple[ReleaseRow, PayloadRow] | str:
    """The release and payload to offer, or the reason to offer none.

    Never offers a release whose ``secure_version`` is below the device's, one for
    another chip or project, one the device already runs or refused/rolled back, nor
    anything while the running app is still pending verification (``esp_ota`` would
    refuse to switch slots then).
    """
    if release is None:
        return f"no release assigned to cohort {cohort!r}"
    if device.boot_state is BootState.PENDING_VERIFY:
        return "running app is pending verification; confirm or roll back first"
    if release.id == blocked_release:
        return f"device reported a failed update to release {release.id}; reassign to retry"
    if release.chip != device.chip:
        return f"release {release.id} is for {release.chip}, device is {device.chip}"
    if device.project_name is not None and device.project_name != release.project_name:
        return f"release {release.id} is project {release.project_name!r}"
    if release.secure_version < device.secure_version:
        return (
            f"downgrade refused: release secure_version {release.secure_version} is below "
            f"the device's {device.secure_version}"
        )
    if device.image_sha256 is not None:
        if device.image_sha256 == release.image_sha256:
            return "up to date"
    elif device.version == release.version and device.secure_version == release.secure_version:
        return "up to date"
    if device.enc_key_id is not None:
        for p in payloads:
            if p.recipient == device.enc_key_id:
                return release, p
    for p in payloads:
        if p.encryption == Encryption.NONE:
            return release, p
    return f"release {release.id} has no payload encrypted for this device's key"


class Stats:
    """Counters and check-in latencies (seconds) for ``/admin/stats`` and the benchmark."""

    def __init__(self, keep: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=keep)
        self.counts: dict[str, int] = {}

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def check_in_took(self, seconds: float) -> None:
        with self._lock:
            self._latencies.append(seconds)

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            values = sorted(self._latencies)
            counts = dict(self.counts)

        def pct(p: float) -> float | None:
            if not values:
                return None
            return values[min(len(values) - 1, int(p * len(values)))]

        return {
            "counts": counts,
            "check_in_latency_s": {"n": len(values), "p50": pct(0.50), "p99": pct(0.99)},
        }


class FleetService:
    """One fleet, backed by its state folder."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.config = load_config(state_dir)
        key_path = state_dir / MANIFEST_KEY
        try:
            self._key = load_manifest_private_key(read_bytes(key_path, what="manifest key"))
        except KeyFormatError as exc:
            exc.source = str(key_path)
            raise
        self._manifest_pub = public_key_pem(self._key)
        self._blobs = state_dir / BLOB_DIR
        try:
            self._blobs.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise EspsecError(
                f"cannot make the payload folder: {exc.strerror}", source=str(self._blobs)
            ) from None
        self.db = FleetDB(state_dir / DB_FILE)
        self._clock = clock
        self.stats = Stats()

    def close(self) -> None:
        self.db.close()

    def token_ok(self, token: str) -> bool:
        return self.config.token_ok(token)

    def manifest_public_pem(self) -> bytes:
        """The manifest public key devices are provisioned with (PEM)."""
        return self._manifest_pub

    def _now(self) -> int:
        return int(self._clock())

    # -- admin --------------------------------------------------------------------------

    def upload_release(self, data: bytes) -> ReleaseRow:
        """Verify a release bundle against the fleet's Secure Boot keys and store it."""
        bundle = ReleaseBundle.parse(data, max_size=self.config.max_upload)
        report = verify_release(
            bundle, key_digests=self.config.key_digests, revoked=self.config.revoked
        )
        for info, blob in zip(bundle.statement.payloads, bundle.payloads, strict=True):
            path = self._blobs / info.sha256
            if not path.exists():
                write_atomic(path, blob, mode=0o600)
        row = self.db.add_release(
            bundle.release_id,
            bundle.statement,
            bundle.statement_bytes,
            signers=",".join(d.hex() for d in report.signers),
            created_at=self._now(),
        )
        self.stats.count("releases_uploaded")
        return row

    def releases(self) -> list[ReleaseRow]:
        return self.db.releases()

    def assign_cohort(self, cohort: str, release_id: str | None) -> None:
        """Point ``cohort`` at a release (``None``: stop offering updates to it)."""
        if not _COHORT.match(cohort):
            raise UsageError(f"cohort name {cohort!r} must match [A-Za-z0-9._-], 1-64 characters")
        if release_id is not None and self.db.release(release_id) is None:
            raise NotFound(f"no release {release_id}")
        self.db.assign_cohort(cohort, release_id, self._now())

    def cohorts(self) -> list[dict[str, Any]]:
        return self.db.cohorts()

    def set_device_cohort(self, device_id: str, cohort: str) -> None:
        if not DEVICE_ID.match(device_id):
            raise UsageError(f"device id {device_id!r} has characters outside [A-Za-z0-9._:-]")
        if not _COHORT.match(cohort):
            raise UsageError(f"cohort name {cohort!r} must match [A-Za-z0-9._-], 1-64 characters")
        self.db.set_device_cohort(device_id, cohort)

    def devices(self) -> list[DeviceRow]:
        return self.db.devices()

    def reports(self, device_id: str | None = None) -> list[dict[str, Any]]:
        return self.db.reports(device_id)

    # -- device -------------------------------------------------------------------------

    def check_in(self, body: bytes, *, client_id: str) -> bytes:
        """Record a check-in and answer with a signed manifest.

        ``client_id`` is the device id the TLS client certificate proves; a check-in for
        any other device is :class:`Forbidden`.
        """
        started = time.perf_counter()
        request = CheckIn.parse(body)
        _same_device(client_id, request.device_id, "check in")
        now = self._now()
        device, counter = self.db.record_check_in(request, now)
        release_id = self.db.cohort_release(device.cohort)
        release = self.db.release(release_id) if release_id else None
        payloads = self.db.payloads(release.id) if release else []
        decision = decide(request, device.cohort, release, payloads, device.blocked_release)
        target = None
        reason = ""
        if isinstance(decision, str):
            reason = decision
        else:
            rel, payload = decision
            target = ReleaseTarget.from_statement(rel.id, rel, payload)
        offered = target.release_id if target else None
        if offered != device.offered_release:
            self.db.set_offered(request.device_id, offered)
        self.db.record_manifest(request.device_id, counter, offered, now)
        manifest = Manifest(
            device_id=request.device_id,
            nonce=request.nonce.hex(),
            counter=counter,
            issued_at=now,
            expires_at=now + self.config.manifest_ttl,
            release=target,
            reason=reason,
        )
        envelope = sign_manifest(manifest, self._key)
        self.stats.count("check_ins")
        if target is not None:
            self.stats.count("updates_offered")
        self.stats.check_in_took(time.perf_counter() - started)
        return envelope

    def report(self, body: bytes, *, client_id: str) -> None:
        """Record an update outcome a device reports about itself, bound to a manifest the
        fleet issued to it (:class:`Forbidden` / ``ReportRefused`` otherwise)."""
        report = OutcomeReport.parse(body)
        _same_device(client_id, report.device_id, "report")
        self.db.add_report(
            report,
            self._now(),
            block=report.outcome in BLOCKING_OUTCOMES and report.release_id is not None,
        )
        self.stats.count(f"reports_{report.outcome.value}")

    def blob(self, sha256: str, *, client_id: str | None = None) -> tuple[Path, int]:
        """The stored payload with this SHA-256 (:class:`NotFound` otherwise).

        ``client_id``: a device downloading; it gets only a payload of the release it was
        last offered (:class:`Forbidden` otherwise).
        """
        if not _SHA256.match(sha256):
            raise NotFound("no such firmware")
        if client_id is not None:
            offered = self.db.offered_release(client_id)
            if offered is None or sha256 not in self.db.release_payload_shas(offered):
                self.stats.count("downloads_refused")
                raise Forbidden("this firmware was not offered to this device")
        length = self.db.payload_length(sha256)
        path = self._blobs / sha256
        if length is None or not path.is_file():
            raise NotFound("no such firmware")
        return path, length
