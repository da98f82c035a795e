"""The fleet's logic, independent of HTTP: uploads, cohorts, rollouts, check-ins, reports.

:class:`FleetService` is what the HTTP layer (and tests) call. Every method blocks (the
database, signatures, release verification): the HTTP layer runs them in a thread pool.
:func:`decide` is the pure update policy; :mod:`espsec.fleet.rollout` the staged
rollout policy; :mod:`espsec.fleet.posture` judges postures by the audit's rules.

When writes to the database fail (a full disk, an I/O error, a lost database server) the
service goes **read-only** for a few seconds at a time (:attr:`FleetService.degraded`):
check-ins are still answered, with a signed "no update" manifest and nothing written;
reports and admin changes answer 503 until a write succeeds again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from espsec._io import read_bytes, write_atomic
from espsec._text import printable
from espsec.errors import EspsecError, KeyFormatError, UsageError
from espsec.fleet import rollout as rollouts
from espsec.fleet.config import BLOB_DIR, DB_FILE, MANIFEST_KEY, load_config
from espsec.fleet.db import (
    MAX_REPORTS_PER_DEVICE,
    AlreadyExists,
    Cursor,
    DeviceRow,
    FleetDB,
    PayloadRow,
    ReleaseRow,
    RolloutRow,
    StorageBusy,
    StorageFailed,
    open_database,
)
from espsec.fleet.posture import PostureAudit
from espsec.ota.manifest import (
    Manifest,
    load_manifest_private_key,
    manifest_key_id,
    sign_manifest,
)
from espsec.ota.protocol import (
    DEVICE_ID,
    BootState,
    CheckIn,
    Encryption,
    Outcome,
    OutcomeReport,
    Posture,
    ReleaseTarget,
)
from espsec.ota.release import ReleaseBundle, verify_release
from espsec.secure_boot.keys import public_key_pem

_COHORT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_TEMP = re.compile(r"\.[^/]+\.[A-Za-z0-9_]{8}\Z")
"""A temporary file ``espsec._io.write_atomic`` left behind when its process died."""
BLOCKING_OUTCOMES = (Outcome.ROLLED_BACK, Outcome.REFUSED)
"""Outcomes after which a release is not offered to that device again until reassigned."""
DEGRADED_RETRY_S = 5.0
"""Seconds between write attempts while the fleet is read-only."""
READ_ONLY_REASON = "the fleet is read-only for now (its storage is failing); check in later"
PLAN_TTL_S = 0.0
"""Seconds a cohort's offer may be cached (0: read in each check-in's transaction, so a
change is seen at once, by every server process)."""
MAX_PAGE = 1000

_T = TypeVar("_T")


class NotFound(EspsecError):
    """A release, cohort, rollout or payload that does not exist."""


class Forbidden(EspsecError):
    """An authenticated device asked for something that is not its own (HTTP 403)."""


class Conflict(UsageError):
    """A change that does not fit the current state (HTTP 409)."""


class ReadOnly(EspsecError):
    """The fleet cannot write now (storage failing or busy): retry later (HTTP 503)."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(EspsecError):
    """A device sent more than its share (HTTP 429)."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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

    def check_in_took(self, seconds: float, n: int = 1) -> None:
        """``n`` check-ins took ``seconds`` each."""
        with self._lock:
            if n == 1:
                self._latencies.append(seconds)
            else:
                self._latencies.extend(itertools.repeat(seconds, n))

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


@dataclass(frozen=True)
class CheckInCall:
    """One device's check-in, as the HTTP layer hands it over."""

    body: bytes
    client_id: str
    """The device id the TLS client certificate proves."""
    client_cert_sha256: str | None = None


_UNANSWERED = EspsecError("check-in not answered")
"""Placeholder of an answer not given yet (never returned)."""


class RateLimiter:
    """A token bucket per device: ``burst`` at once, ``per_minute`` refilled."""

    def __init__(self, burst: int, per_minute: float, *, keep: int = 100_000) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self._keep = keep
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """0 if ``key`` may go on, else the seconds until it may."""
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate if self.rate > 0 else 3600.0
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._keep:
                self._buckets.popitem(last=False)
            return wait


@dataclass(frozen=True)
class _Plan:
    """What one cohort is offered (cached for :data:`PLAN_TTL_S`)."""

    release: ReleaseRow | None
    payloads: list[PayloadRow]
    rollout: RolloutRow | None
    rollout_release: ReleaseRow | None
    rollout_payloads: list[PayloadRow]


@dataclass
class Degraded:
    """Why and since when the fleet is read-only."""

    reason: str
    since: float
    next_try: float


class FleetService:
    """One fleet, backed by its state folder and its database.

    ``database``: a SQLite file or a ``postgresql://`` URL (default: the state folder's
    ``fleet.sqlite3``). ``report_burst`` / ``reports_per_minute``: how many reports one
    device may send.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        database: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        busy_timeout: float | None = None,
        report_burst: int = 20,
        reports_per_minute: float = 6.0,
        plan_ttl: float = PLAN_TTL_S,
        max_reports_per_device: int = MAX_REPORTS_PER_DEVICE,
        degraded_retry_s: float = DEGRADED_RETRY_S,
    ) -> None:
        self.state_dir = state_dir
        self.config = load_config(state_dir)
        key_path = state_dir / MANIFEST_KEY
        try:
            self._key = load_manifest_private_key(read_bytes(key_path, what="manifest key"))
        except KeyFormatError as exc:
            exc.source = str(key_path)
            raise
        self._manifest_pub = public_key_pem(self._key)
        self._key_id = manifest_key_id(self._key)
        self._blobs = state_dir / BLOB_DIR
        try:
            self._blobs.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise EspsecError(
                f"cannot make the payload folder: {exc.strerror}", source=str(self._blobs)
            ) from None
        options = {} if busy_timeout is None else {"busy_timeout": busy_timeout}
        self.db: FleetDB = open_database(database or state_dir / DB_FILE, **options)
        self._clock = clock
        self.stats = Stats()
        self.reports_limiter = RateLimiter(report_burst, reports_per_minute)
        self._plan_ttl = plan_ttl
        self._plans: dict[str, tuple[float, _Plan]] = {}
        self._plans_lock = threading.Lock()
        self._degraded: Degraded | None = None
        self._degraded_lock = threading.Lock()
        self._degraded_retry = degraded_retry_s
        self._max_reports = max_reports_per_device
        self.posture_audit = PostureAudit(state_dir)
        """The audit's rules over reported postures (an advisory database imported into
        the state folder with ``espsec advisories import --data-dir`` is used when newer)."""

    def close(self) -> None:
        self.db.close()

    def token_ok(self, token: str) -> bool:
        return self.config.token_ok(token)

    def manifest_public_pem(self) -> bytes:
        """The manifest public key devices are provisioned with (PEM)."""
        return self._manifest_pub

    def _now(self) -> int:
        return int(self._clock())

    # -- read-only mode -----------------------------------------------------------------

    @property
    def degraded(self) -> Degraded | None:
        """Why the fleet is read-only, or ``None`` when it takes writes."""
        return self._degraded

    def _write(self, fn: Callable[[], _T]) -> _T:
        """Run a write; a storage failure makes the fleet read-only for a while."""
        now = time.monotonic()
        state = self._degraded
        if state is not None and now < state.next_try:
            raise ReadOnly(
                f"{READ_ONLY_REASON}: {state.reason}", retry_after=state.next_try - now + 0.5
            )
        try:
            result = fn()
        except StorageBusy as exc:
            self.stats.count("storage_busy")
            raise ReadOnly(exc.message, retry_after=1.0) from None
        except StorageFailed as exc:
            self.stats.count("storage_failures")
            with self._degraded_lock:
                since = state.since if state is not None else time.time()
                self._degraded = Degraded(exc.message, since, now + self._degraded_retry)
            raise ReadOnly(
                f"{READ_ONLY_REASON}: {exc.message}", retry_after=self._degraded_retry
            ) from None
        if state is not None:
            with self._degraded_lock:
                self._degraded = None
        return result

    def _read(self, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except StorageBusy as exc:
            raise ReadOnly(exc.message, retry_after=1.0) from None
        except StorageFailed as exc:
            raise ReadOnly(
                f"the fleet's storage is failing: {exc.message}", retry_after=5.0
            ) from None

    def health(self) -> dict[str, Any]:
        state = self._degraded
        return {
            "ok": state is None,
            "read_only": state is not None,
            "reason": None if state is None else state.reason,
            "database": self.db.dialect,
        }

    # -- start-up -----------------------------------------------------------------------

    def sweep_orphans(self) -> dict[str, int]:
        """Remove what a crash left behind: temporary files and payloads no release names.

        Run once at start, before serving (an upload writes its payloads first and its
        database rows last, so a payload without rows was never acknowledged).
        """
        known = self._read(self.db.all_payload_shas)
        temps = blobs = 0
        folders = [self._blobs, self.state_dir, self.state_dir / "tls"]
        for folder in folders:
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                name = path.name
                try:
                    if _TEMP.match(name) and path.is_file():
                        path.unlink()
                        temps += 1
                    elif folder == self._blobs and _SHA256.match(name) and name not in known:
                        path.unlink()
                        blobs += 1
                except OSError:
                    continue
        if temps or blobs:
            self.stats.count("orphans_swept", temps + blobs)
        return {"temporary_files": temps, "payloads": blobs}

    # -- admin --------------------------------------------------------------------------

    def upload_release(self, data: bytes) -> ReleaseRow:
        """Verify a release bundle against the fleet's Secure Boot keys and store it."""
        bundle = ReleaseBundle.parse(data, max_size=self.config.max_upload)
        report = verify_release(
            bundle, key_digests=self.config.key_digests, revoked=self.config.revoked
        )

        def store() -> ReleaseRow:
            for info, blob in zip(bundle.statement.payloads, bundle.payloads, strict=True):
                path = self._blobs / info.sha256
                if not path.exists():
                    try:
                        write_atomic(path, blob, mode=0o600)
                    except EspsecError as exc:
                        raise StorageFailed(f"cannot store a payload: {exc.message}") from None
            return self.db.add_release(
                bundle.release_id,
                bundle.statement,
                bundle.statement_bytes,
                signers=",".join(d.hex() for d in report.signers),
                created_at=self._now(),
            )

        row = self._write(store)
        self.stats.count("releases_uploaded")
        return row

    def releases(self, *, limit: int = MAX_PAGE, after: str | None = None) -> list[ReleaseRow]:
        return self._read(lambda: self.db.releases(limit=_page(limit), after=after))

    def release(self, release_id: str) -> ReleaseRow:
        row = self._read(lambda: self.db.release(release_id))
        if row is None:
            raise NotFound(f"no release {release_id}")
        return row

    def assign_cohort(self, cohort: str, release_id: str | None) -> None:
        """Point ``cohort`` at a release (``None``: stop offering updates to it)."""
        _check_cohort(cohort)
        if release_id is not None and self._read(lambda: self.db.release(release_id)) is None:
            raise NotFound(f"no release {release_id}")
        self._write(lambda: self.db.assign_cohort(cohort, release_id, self._now()))
        self._forget_plans()

    def cohorts(self) -> list[dict[str, Any]]:
        return self._read(self.db.cohorts)

    def set_device_cohort(self, device_id: str, cohort: str) -> None:
        if not DEVICE_ID.match(device_id):
            raise UsageError(
                f"device id {printable(device_id)[:128]!r} has characters outside [A-Za-z0-9._:-]"
            )
        _check_cohort(cohort)
        self._write(lambda: self.db.set_device_cohort(device_id, cohort))

    def devices(
        self,
        *,
        limit: int = MAX_PAGE,
        after: str | None = None,
        cohort: str | None = None,
        weak: bool | None = None,
        chip: str | None = None,
        flag: str | None = None,
    ) -> list[DeviceRow]:
        return self._read(
            lambda: self.db.devices(
                limit=_page(limit), after=after, cohort=cohort, weak=weak, chip=chip, flag=flag
            )
        )

    def device(self, device_id: str) -> DeviceRow:
        row = self._read(lambda: self.db.device(device_id))
        if row is None:
            raise NotFound(f"no device {printable(device_id)[:128]}")
        return row

    def reports(
        self, device_id: str | None = None, *, limit: int = MAX_PAGE, before: int | None = None
    ) -> list[dict[str, Any]]:
        return self._read(lambda: self.db.reports(device_id, limit=_page(limit), before=before))

    def summary(self) -> dict[str, Any]:
        """Counts for the dashboard's first page."""
        return {
            "devices": self._read(self.db.count_devices),
            "reports": self._read(self.db.count_reports),
            "releases": len(self.releases()),
            "active_rollouts": len(self._read(self.db.active_rollouts)),
            **self.health(),
        }

    # -- posture ------------------------------------------------------------------------

    def _as_of(self, now: float) -> dt.date:
        """The day postures are judged on (ESP-IDF support periods end)."""
        return dt.datetime.fromtimestamp(now, dt.UTC).date()

    def posture(self) -> dict[str, Any]:
        """Fleet-wide posture: counts by field and weakness, and the weak devices."""
        return self.posture_audit.aggregate(self._read(self.db.posture_rows))

    def refresh_posture_flags(self) -> int:
        """Judge every stored posture again (run at start: the rules, the advisory database
        or the date may have changed since the device checked in); the number changed."""
        as_of = self._as_of(self._now())
        changed = []
        for device_id, _, chip, posture_json, flags in self._read(self.db.posture_rows):
            if posture_json is None:
                continue
            try:
                posture = Posture.from_json(json.loads(posture_json))
            except (EspsecError, ValueError):
                continue  # not written by this fleet: left as it is
            new = self.posture_audit.flags(chip, posture, as_of)
            if new != flags:
                changed.append((device_id, new))
        if changed:
            self._write(lambda: self.db.set_posture_flags(changed))
        return len(changed)

    # -- rollouts -----------------------------------------------------------------------

    def start_rollout(
        self,
        release_id: str,
        cohort: str,
        *,
        steps: str = "1,10,50,100",
        halt_on_failure_rate: float = 0.05,
        window_s: int = 3600,
        step_interval_s: int | None = None,
        min_reports: int = 1,
    ) -> dict[str, Any]:
        """Start offering ``release_id`` to a growing share of ``cohort``."""
        _check_cohort(cohort)
        percents = rollouts.parse_steps(steps)
        if not 0 < halt_on_failure_rate < 1:
            raise UsageError("the halting failure rate must be between 0 and 1 (0.05 = 5 %)")
        if not 1 <= window_s <= 30 * 86400:
            raise UsageError("the window must be between 1 s and 30 days")
        interval = window_s if step_interval_s is None else step_interval_s
        if not 0 <= interval <= 30 * 86400:
            raise UsageError("the step interval must be between 0 s and 30 days")
        if not 1 <= min_reports <= 1_000_000:
            raise UsageError("min_reports must be between 1 and 1000000")
        self.release(release_id)
        now = self._now()
        row = self._write(
            lambda: self.db.create_rollout(
                release_id,
                cohort,
                rollouts.steps_text(percents),
                threshold=halt_on_failure_rate,
                window_s=window_s,
                step_interval_s=interval,
                min_reports=min_reports,
                now=now,
            )
        )
        self._forget_plans()
        self.stats.count("rollouts_started")
        return self.rollout_status(row.id)

    def rollout_action(self, rollout_id: int, action: str) -> dict[str, Any]:
        """``pause``, ``resume`` or ``abort`` a rollout."""
        now = self._now()
        allowed = {
            "pause": ((rollouts.RUNNING,), rollouts.PAUSED),
            "resume": ((rollouts.PAUSED, rollouts.HALTED), rollouts.RUNNING),
            "abort": (rollouts.ACTIVE_STATES, rollouts.ABORTED),
        }
        if action not in allowed:
            raise UsageError(f"unknown rollout action {action!r}: pause, resume or abort")
        from_states, to_state = allowed[action]

        def change(row: RolloutRow, c: Cursor) -> dict[str, Any]:
            if row.state not in from_states:
                raise Conflict(f"rollout {row.id} is {row.state}: it cannot {action}")
            values: dict[str, Any] = {"state": to_state, "updated_at": now}
            if action == "resume":  # outcomes count from the next second on
                values.update(window_from=now + 1, step_started_at=now, halt_reason=None)
            counts = self.db.outcome_counts(
                c, row.release_id, row.cohort, rollouts.window_start(row, now)
            )
            self.db.add_sample(c, dataclasses.replace(row, **values), now, counts)
            return values

        self._write(lambda: self._update_rollout(rollout_id, change))
        self._forget_plans()
        return self.rollout_status(rollout_id)

    def _update_rollout(
        self, rollout_id: int, change: Callable[[RolloutRow, Cursor], dict[str, Any] | None]
    ) -> RolloutRow:
        try:
            return self.db.update_rollout(rollout_id, change)
        except KeyError:
            raise NotFound(f"no rollout {rollout_id}") from None

    def evaluate_rollout(self, rollout_id: int) -> RolloutRow:
        """Halt, advance or complete a running rollout as its outcomes and clock say."""
        now = self._now()

        def change(row: RolloutRow, c: Cursor) -> dict[str, Any] | None:
            if row.state not in rollouts.ACTIVE_STATES:
                return None
            counts = self.db.outcome_counts(
                c, row.release_id, row.cohort, rollouts.window_start(row, now)
            )
            values = rollouts.evaluate(row, counts, now)
            new = dataclasses.replace(row, **values) if values else row
            if values and values.get("state") == rollouts.COMPLETED:
                self.db.assign_cohort_in(c, row.cohort, row.release_id, now)
            last = self.db.last_sample_at(c, row.id)
            every = max(5, row.window_s // 120)
            if values or last is None or now - last >= every:
                self.db.add_sample(c, new, now, counts)
            return values

        before = self._read(lambda: self.db.rollout(rollout_id))
        if before is None:
            raise NotFound(f"no rollout {rollout_id}")
        if before.state != rollouts.RUNNING:
            return before
        after = self._write(lambda: self._update_rollout(rollout_id, change))
        if after.state != before.state or after.step != before.step:
            self._forget_plans()
            self.stats.count(
                f"rollouts_{after.state}" if after.state != before.state else "rollout_steps"
            )
        return after

    def tick(self) -> None:
        """Evaluate every running rollout (the server calls this every few seconds)."""
        try:
            active = self._read(self.db.active_rollouts)
        except ReadOnly:
            return
        for row in active:
            if row.state == rollouts.RUNNING:
                try:
                    self.evaluate_rollout(row.id)
                except (ReadOnly, NotFound):
                    continue

    def rollout_status(self, rollout_id: int) -> dict[str, Any]:
        """A rollout with its progress, outcomes in the window and its history."""
        row = self._read(lambda: self.db.rollout(rollout_id))
        if row is None:
            raise NotFound(f"no rollout {rollout_id}")
        if row.state == rollouts.RUNNING and self._degraded is None:
            with contextlib.suppress(ReadOnly):
                row = self.evaluate_rollout(rollout_id)
        now = self._now()
        since = rollouts.window_start(row, now)
        counts = self._read(lambda: self.db.read_outcome_counts(row.release_id, row.cohort, since))
        outcomes, failures, rollbacks = rollouts.rates(counts)
        return {
            **rollouts.to_json(row),
            "progress": self._read(lambda: self.db.rollout_progress(row)),
            "window": {
                "since": since,
                "outcomes": outcomes,
                "failures": failures,
                "rollbacks": rollbacks,
                "failure_rate": failures / outcomes if outcomes else 0.0,
                "rollback_rate": rollbacks / outcomes if outcomes else 0.0,
                "by_outcome": counts,
            },
            "samples": self._read(lambda: self.db.samples(row.id)),
        }

    def rollouts(self) -> list[dict[str, Any]]:
        rows = self._read(lambda: self.db.rollouts(limit=100))
        return [self.rollout_status(r.id) for r in rows]

    # -- device -------------------------------------------------------------------------

    def _forget_plans(self) -> None:
        with self._plans_lock:
            self._plans.clear()

    def _plan(self, cohort: str, c: Cursor | None, batch: dict[str, _Plan] | None = None) -> _Plan:
        """What ``cohort`` is offered; ``batch``: plans already read in this transaction."""
        if batch is not None and cohort in batch:
            return batch[cohort]
        now = time.monotonic()
        with self._plans_lock:
            cached = self._plans.get(cohort)
        if cached is not None and now - cached[0] < self._plan_ttl:  # pragma: no branch
            plan = cached[1]
        else:
            plan = _Plan(*self.db.cohort_plan(cohort, c))
            with self._plans_lock:
                if len(self._plans) > 10_000:
                    self._plans.clear()
                self._plans[cohort] = (now, plan)
        if batch is not None:
            batch[cohort] = plan
        return plan

    def _offer_for(
        self,
        request: CheckIn,
        device: DeviceRow,
        c: Cursor | None,
        batch: dict[str, _Plan] | None = None,
    ) -> tuple[ReleaseRow, PayloadRow] | str:
        plan = self._plan(device.cohort, c, batch)
        release, payloads = plan.release, plan.payloads
        rollout = plan.rollout
        if rollout is not None and rollouts.selected(rollout, device.device_id):
            release, payloads = plan.rollout_release, plan.rollout_payloads
        return decide(request, device.cohort, release, payloads, device.blocked_release)

    def check_in(
        self, body: bytes, *, client_id: str, client_cert_sha256: str | None = None
    ) -> bytes:
        """Record a check-in and answer with a signed manifest.

        ``client_id`` is the device id the TLS client certificate proves; a check-in for
        any other device is :class:`Forbidden`. The posture the check-in carries is
        recorded against that certificate (``client_cert_sha256``).
        """
        answer = self.check_in_batch([CheckInCall(body, client_id, client_cert_sha256)])[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def check_in_batch(self, calls: Sequence[CheckInCall]) -> list[bytes | Exception]:
        """Record several check-ins in one transaction (one commit) and answer each: its
        signed manifest, or the error for that check-in (as :meth:`check_in` raises it).

        Nothing is answered before the transaction that records it has committed. A
        cohort's offer is read once per batch, inside the transaction. Rows are written in
        device-id order, so batches of several server processes never deadlock. An
        unexpected error in a batch of several is retried one check-in at a time.
        """
        started = time.perf_counter()
        now = self._now()
        answers: list[bytes | Exception] = [_UNANSWERED] * len(calls)
        accepted: list[tuple[int, CheckIn, tuple[str | None, str | None, str | None]]] = []
        for i, call in enumerate(calls):
            try:
                request = CheckIn.parse(call.body)
                _same_device(call.client_id, request.device_id, "check in")
                posture: tuple[str | None, str | None, str | None] = (
                    None,
                    None,
                    call.client_cert_sha256,
                )
                if request.posture is not None:
                    posture = (
                        json.dumps(request.posture.to_json(), sort_keys=True),
                        self.posture_audit.flags(request.chip, request.posture, self._as_of(now)),
                        call.client_cert_sha256,
                    )
            except EspsecError as exc:
                answers[i] = exc
                continue
            accepted.append((i, request, posture))
        if not accepted:
            return answers
        self.stats.count("check_in_batches")
        try:
            self._record_check_ins(accepted, now, answers)
        except Exception as exc:
            if len(accepted) == 1:
                answers[accepted[0][0]] = exc
            else:  # one check-in's fault must not fail the others
                for i, _, _ in accepted:
                    answers[i] = self.check_in_batch([calls[i]])[0]
                return answers
        answered = sum(1 for i, _, _ in accepted if not isinstance(answers[i], Exception))
        if answered:
            self.stats.count("check_ins", answered)
            self.stats.check_in_took(time.perf_counter() - started, answered)
        return answers

    def _record_check_ins(
        self,
        accepted: list[tuple[int, CheckIn, tuple[str | None, str | None, str | None]]],
        now: int,
        answers: list[bytes | Exception],
    ) -> None:
        """Write ``accepted`` check-ins in one transaction, then sign their answers."""
        order = sorted(accepted, key=lambda item: item[1].device_id)  # stable: arrival order
        decisions: dict[int, tuple[ReleaseRow, PayloadRow] | str] = {}
        plans: dict[str, _Plan] = {}

        def offer_to(i: int, request: CheckIn) -> Callable[[DeviceRow, Cursor], str | None]:
            def offer(device: DeviceRow, c: Cursor) -> str | None:
                chosen = decisions[i] = self._offer_for(request, device, c, plans)
                return None if isinstance(chosen, str) else chosen[0].id

            return offer

        items = [(request, offer_to(i, request), posture) for i, request, posture in order]
        counters: dict[int, int] = {}
        try:
            devices = self._write(lambda: self.db.check_in_many(items, now))
            counters = {i: d.counter for (i, _, _), d in zip(order, devices, strict=True)}
        except ReadOnly as exc:
            if self._degraded is None:  # busy, not failing: the devices retry shortly
                for i, _, _ in accepted:
                    answers[i] = exc
                return
            # Read-only: signed answers that offer nothing and are recorded nowhere.
            for i, request, _ in accepted:
                try:
                    stored = self._read(functools.partial(self.db.device, request.device_id))
                except ReadOnly as failed:
                    answers[i] = failed
                    continue
                counters[i] = max(stored.counter if stored else 0, request.last_counter) + 1
                decisions[i] = READ_ONLY_REASON
                self.stats.count("check_ins_read_only")
        for i, request, _ in accepted:
            if i not in counters:
                continue
            chosen = decisions[i]
            target = None
            reason = ""
            if isinstance(chosen, str):
                reason = chosen
            else:
                rel, payload = chosen
                target = ReleaseTarget.from_statement(rel.id, rel, payload)
            manifest = Manifest(
                device_id=request.device_id,
                nonce=request.nonce.hex(),
                counter=counters[i],
                issued_at=now,
                expires_at=now + self.config.manifest_ttl,
                release=target,
                reason=reason,
            )
            answers[i] = sign_manifest(manifest, self._key, key_id=self._key_id)
            if target is not None:
                self.stats.count("updates_offered")

    def report(self, body: bytes, *, client_id: str) -> None:
        """Record an update outcome a device reports about itself, bound to a manifest the
        fleet issued to it (:class:`Forbidden` / ``ReportRefused`` otherwise).

        Reports come only from registered devices, at most ``report_burst`` at once and
        ``reports_per_minute`` after that (:class:`RateLimited`); control characters in
        the reason are dropped.
        """
        report = OutcomeReport.parse(body)
        _same_device(client_id, report.device_id, "report")
        wait = self.reports_limiter.take(client_id, time.monotonic())
        if wait > 0:
            self.stats.count("reports_rate_limited")
            raise RateLimited(
                "too many reports from this device; slow down", retry_after=max(1.0, wait)
            )
        report = dataclasses.replace(report, reason=printable(report.reason))
        now = self._now()
        self._write(
            lambda: self.db.add_report(
                report,
                now,
                block=report.outcome in BLOCKING_OUTCOMES and report.release_id is not None,
                keep=self._max_reports,
            )
        )
        self.stats.count(f"reports_{report.outcome.value}")
        if report.release_id is not None and report.outcome is not Outcome.UPDATED:
            self._evaluate_rollouts_of(report.release_id)

    def _evaluate_rollouts_of(self, release_id: str) -> None:
        """A failure was reported: let a running rollout of that release halt at once."""
        try:
            active = self._read(self.db.active_rollouts)
            for row in active:
                if row.release_id == release_id and row.state == rollouts.RUNNING:
                    self.evaluate_rollout(row.id)
        except ReadOnly:
            return

    def blob(self, sha256: str, *, client_id: str | None = None) -> tuple[Path, int]:
        """The stored payload with this SHA-256 (:class:`NotFound` otherwise).

        ``client_id``: a device downloading; it gets only a payload of the release it was
        last offered (:class:`Forbidden` otherwise).
        """
        if not _SHA256.match(sha256):
            raise NotFound("no such firmware")
        if client_id is not None:
            offered = self._read(lambda: self.db.offered_release(client_id))
            if offered is None or sha256 not in self._read(
                lambda: self.db.release_payload_shas(offered)
            ):
                self.stats.count("downloads_refused")
                raise Forbidden("this firmware was not offered to this device")
        length = self._read(lambda: self.db.payload_length(sha256))
        path = self._blobs / sha256
        if length is None or not path.is_file():
            raise NotFound("no such firmware")
        return path, length


def _check_cohort(cohort: str) -> None:
    if not _COHORT.match(cohort):
        raise UsageError(
            f"cohort name {printable(cohort)[:64]!r} must match [A-Za-z0-9._-], 1-64 characters"
        )


def _page(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit must be between 1 and {MAX_PAGE}")
    return limit


def certificate_sha256(der: bytes) -> str:
    """The hex SHA-256 of a certificate's DER (how a device's identity is recorded)."""
    return hashlib.sha256(der).hexdigest()


__all__ = [
    "AlreadyExists",
    "CheckInCall",
    "Conflict",
    "FleetService",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "ReadOnly",
    "decide",
]
