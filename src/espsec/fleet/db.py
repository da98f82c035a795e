"""The fleet's storage: every SQL statement lives here, so another database can replace SQLite.

Tables are created with ``CREATE TABLE IF NOT EXISTS`` (no migrations yet). One
connection, serialised by a lock: the ASGI server runs handlers on one event loop and
each statement is short. WAL mode keeps readers off the writer's back.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from espsec.errors import EspsecError, UsageError

if TYPE_CHECKING:
    from espsec.ota.protocol import CheckIn, OutcomeReport
    from espsec.ota.release import ReleaseStatement


class AlreadyExists(UsageError):
    """A record with this key exists (answered 409 by the API)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    id TEXT PRIMARY KEY,
    project_name TEXT NOT NULL,
    version TEXT NOT NULL,
    secure_version INTEGER NOT NULL,
    chip TEXT NOT NULL,
    chip_id INTEGER NOT NULL,
    image_length INTEGER NOT NULL,
    image_sha256 TEXT NOT NULL,
    signed_digest TEXT NOT NULL,
    signers TEXT NOT NULL,
    statement BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS payloads (
    release_id TEXT NOT NULL REFERENCES releases(id),
    idx INTEGER NOT NULL,
    encryption TEXT NOT NULL,
    recipient TEXT,
    length INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (release_id, idx)
);
CREATE INDEX IF NOT EXISTS payloads_sha256 ON payloads(sha256);
CREATE TABLE IF NOT EXISTS cohorts (
    name TEXT PRIMARY KEY,
    release_id TEXT REFERENCES releases(id),
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    cohort TEXT NOT NULL DEFAULT 'default',
    chip TEXT,
    project_name TEXT,
    version TEXT,
    secure_version INTEGER,
    boot_state TEXT,
    image_sha256 TEXT,
    enc_key_id TEXT,
    counter INTEGER NOT NULL DEFAULT 0,
    offered_release TEXT,
    blocked_release TEXT,
    last_outcome TEXT,
    last_reason TEXT,
    first_seen INTEGER,
    last_seen INTEGER
);
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    release_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    counter INTEGER,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_device ON reports(device_id);
CREATE TABLE IF NOT EXISTS manifests (
    device_id TEXT NOT NULL,
    counter INTEGER NOT NULL,
    release_id TEXT,
    issued_at INTEGER NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, counter)
);
"""


class ReportRefused(EspsecError):
    """A report not bound to an unreported manifest issued to the device."""


@dataclass(frozen=True)
class ReleaseRow:
    id: str
    project_name: str
    version: str
    secure_version: int
    chip: str
    chip_id: int
    image_length: int
    image_sha256: str
    signed_digest: str
    signers: str
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_name": self.project_name,
            "version": self.version,
            "secure_version": self.secure_version,
            "chip": self.chip,
            "image_length": self.image_length,
            "image_sha256": self.image_sha256,
            "signed_digest": self.signed_digest,
            "signers": self.signers.split(",") if self.signers else [],
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class PayloadRow:
    release_id: str
    idx: int
    encryption: str
    recipient: str | None
    length: int
    sha256: str


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    cohort: str
    chip: str | None
    project_name: str | None
    version: str | None
    secure_version: int | None
    boot_state: str | None
    image_sha256: str | None
    enc_key_id: str | None
    counter: int
    offered_release: str | None
    blocked_release: str | None
    last_outcome: str | None
    last_reason: str | None
    first_seen: int | None
    last_seen: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "cohort": self.cohort,
            "chip": self.chip,
            "project_name": self.project_name,
            "version": self.version,
            "secure_version": self.secure_version,
            "boot_state": self.boot_state,
            "counter": self.counter,
            "offered_release": self.offered_release,
            "blocked_release": self.blocked_release,
            "last_outcome": self.last_outcome,
            "last_reason": self.last_reason,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


_DEVICE_COLS = ", ".join(DeviceRow.__dataclass_fields__)
_RELEASE_COLS = ", ".join(ReleaseRow.__dataclass_fields__)
_PAYLOAD_COLS = ", ".join(PayloadRow.__dataclass_fields__)
# Column lists are the dataclass fields above (constants, never user input).
_INSERT_RELEASE = (
    f"INSERT INTO releases ({_RELEASE_COLS}, statement) VALUES ({', '.join('?' * 12)})"  # noqa: S608
)
_INSERT_PAYLOAD = f"INSERT INTO payloads ({_PAYLOAD_COLS}) VALUES ({', '.join('?' * 6)})"  # noqa: S608
_SELECT_RELEASES = f"SELECT {_RELEASE_COLS} FROM releases"  # noqa: S608
_SELECT_PAYLOADS = f"SELECT {_PAYLOAD_COLS} FROM payloads"  # noqa: S608
_SELECT_DEVICES = f"SELECT {_DEVICE_COLS} FROM devices"  # noqa: S608
_CHECK_IN_FIELDS = (  # columns named as the CheckIn fields they keep
    "chip",
    "project_name",
    "version",
    "secure_version",
    "boot_state",
    "image_sha256",
    "enc_key_id",
)
_UPSERT_CHECK_IN = (
    f"INSERT INTO devices (device_id, {', '.join(_CHECK_IN_FIELDS)}, first_seen, last_seen) "  # noqa: S608
    f"VALUES ({', '.join('?' * (len(_CHECK_IN_FIELDS) + 3))}) ON CONFLICT(device_id) DO UPDATE SET "
    + ", ".join(f"{k} = excluded.{k}" for k in _CHECK_IN_FIELDS)
    + ", last_seen = excluded.last_seen"
)


class FleetDB:
    """Releases, payloads, cohorts, devices and outcome reports."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise EspsecError(f"cannot open the fleet database: {exc}", source=str(path)) from None
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._conn.close()
            raise EspsecError(f"cannot open the fleet database: {exc}", source=str(path)) from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # -- releases -----------------------------------------------------------------------

    def add_release(
        self,
        release_id: str,
        statement: ReleaseStatement,
        statement_bytes: bytes,
        *,
        signers: str,
        created_at: int,
    ) -> ReleaseRow:
        """Store a verified release: its statement's facts, its payloads, the statement."""
        st = statement
        values = (  # in ReleaseRow's field order
            release_id,
            st.project_name,
            st.version,
            st.secure_version,
            st.chip,
            st.chip_id,
            st.image_length,
            st.image_sha256,
            st.signed_digest,
            signers,
            created_at,
        )
        payloads = [  # in PayloadRow's field order
            (release_id, i, p.encryption, p.recipient, p.length, p.sha256)
            for i, p in enumerate(st.payloads)
        ]
        with self._tx() as c:
            if c.execute("SELECT 1 FROM releases WHERE id = ?", (release_id,)).fetchone():
                raise AlreadyExists(f"release {release_id} was already uploaded")
            c.execute(_INSERT_RELEASE, (*values, statement_bytes))
            c.executemany(_INSERT_PAYLOAD, payloads)
            row = c.execute(_SELECT_RELEASES + " WHERE id = ?", (release_id,)).fetchone()
        return ReleaseRow(*row)

    def release(self, release_id: str) -> ReleaseRow | None:
        rows = self._all(_SELECT_RELEASES + " WHERE id = ?", (release_id,))
        return ReleaseRow(*rows[0]) if rows else None

    def releases(self) -> list[ReleaseRow]:
        return [ReleaseRow(*r) for r in self._all(_SELECT_RELEASES + " ORDER BY created_at, id")]

    def payloads(self, release_id: str) -> list[PayloadRow]:
        return [
            PayloadRow(*r)
            for r in self._all(
                _SELECT_PAYLOADS + " WHERE release_id = ? ORDER BY idx",
                (release_id,),
            )
        ]

    def payload_length(self, sha256: str) -> int | None:
        rows = self._all("SELECT length FROM payloads WHERE sha256 = ? LIMIT 1", (sha256,))
        return int(rows[0][0]) if rows else None

    # -- cohorts ------------------------------------------------------------------------

    def assign_cohort(self, cohort: str, release_id: str | None, now: int) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO cohorts (name, release_id, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET release_id = excluded.release_id, "
                "updated_at = excluded.updated_at",
                (cohort, release_id, now),
            )
            # A fresh assignment lifts earlier refusals of that release in the cohort.
            c.execute(
                "UPDATE devices SET blocked_release = NULL "
                "WHERE cohort = ? AND blocked_release = ?",
                (cohort, release_id),
            )

    def cohort_release(self, cohort: str) -> str | None:
        rows = self._all("SELECT release_id FROM cohorts WHERE name = ?", (cohort,))
        return rows[0][0] if rows else None

    def cohorts(self) -> list[dict[str, Any]]:
        return [
            {"name": n, "release_id": r, "updated_at": t}
            for n, r, t in self._all(
                "SELECT name, release_id, updated_at FROM cohorts ORDER BY name"
            )
        ]

    # -- devices ------------------------------------------------------------------------

    def set_device_cohort(self, device_id: str, cohort: str) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO devices (device_id, cohort) VALUES (?, ?) "
                "ON CONFLICT(device_id) DO UPDATE SET cohort = excluded.cohort",
                (device_id, cohort),
            )

    def devices(self) -> list[DeviceRow]:
        return [DeviceRow(*r) for r in self._all(_SELECT_DEVICES + " ORDER BY device_id")]

    def record_check_in(self, request: CheckIn, now: int) -> tuple[DeviceRow, int]:
        """Upsert the device's reported state; return it and its next manifest counter.

        The counter is ``max(stored, last_counter) + 1``: strictly above anything the
        device has accepted, even after the database was restored from an old backup.
        """
        device_id = request.device_id
        values = tuple(getattr(request, k) for k in _CHECK_IN_FIELDS)
        with self._tx() as c:
            c.execute(_UPSERT_CHECK_IN, (device_id, *values, now, now))
            c.execute(
                "UPDATE devices SET counter = MAX(counter, ?) + 1 WHERE device_id = ?",
                (request.last_counter, device_id),
            )
            row = c.execute(_SELECT_DEVICES + " WHERE device_id = ?", (device_id,)).fetchone()
        device = DeviceRow(*row)
        return device, device.counter

    def set_offered(self, device_id: str, release_id: str | None) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE devices SET offered_release = ? WHERE device_id = ?",
                (release_id, device_id),
            )

    def record_manifest(
        self, device_id: str, counter: int, release_id: str | None, now: int
    ) -> None:
        """Remember a manifest issued to a device: a report must name it, once."""
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO manifests (device_id, counter, release_id, issued_at) "
                "VALUES (?, ?, ?, ?)",
                (device_id, counter, release_id, now),
            )

    def offered_release(self, device_id: str) -> str | None:
        rows = self._all("SELECT offered_release FROM devices WHERE device_id = ?", (device_id,))
        return rows[0][0] if rows else None

    def release_payload_shas(self, release_id: str) -> set[str]:
        rows = self._all("SELECT sha256 FROM payloads WHERE release_id = ?", (release_id,))
        return {r[0] for r in rows}

    def add_report(self, report: OutcomeReport, now: int, *, block: bool) -> None:
        """Record a device's report; ``block``: stop offering its release to the device.

        The report must name, by its counter, a manifest issued to that device that has
        not been reported on yet, and the release that manifest offered
        (:class:`ReportRefused` otherwise): a report cannot be replayed or invented. Only a
        report naming neither counter nor release (a device that refused an unverifiable
        manifest) stands alone: it blocks nothing.
        """
        device_id, release_id = report.device_id, report.release_id
        outcome, reason = report.outcome.value, report.reason
        with self._tx() as c:
            row = c.execute(
                "SELECT release_id, reported FROM manifests WHERE device_id = ? AND counter = ?",
                (device_id, report.counter),
            ).fetchone()
            unbound = report.counter is None and release_id is None
            if not unbound and row is None:
                raise ReportRefused("the report names no manifest issued to this device")
            if row is not None and row[1]:
                raise ReportRefused("this manifest was already reported on (replayed report)")
            if row is not None and release_id is not None and row[0] != release_id:
                raise ReportRefused("the report names a release its manifest did not offer")
            if row is not None:
                c.execute(
                    "UPDATE manifests SET reported = 1 WHERE device_id = ? AND counter = ?",
                    (device_id, report.counter),
                )
            c.execute(
                "INSERT INTO reports (device_id, release_id, outcome, reason, counter, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (device_id, release_id, outcome, reason, report.counter, now),
            )
            c.execute(
                "INSERT INTO devices (device_id, first_seen, last_seen) VALUES (?, ?, ?) "
                "ON CONFLICT(device_id) DO NOTHING",
                (device_id, now, now),
            )
            c.execute(
                "UPDATE devices SET last_outcome = ?, last_reason = ?, "
                "blocked_release = CASE WHEN ? THEN ? ELSE blocked_release END "
                "WHERE device_id = ?",
                (outcome, reason, block, release_id, device_id),
            )

    def reports(self, device_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        sql = "SELECT device_id, release_id, outcome, reason, counter, at FROM reports"
        args: tuple[Any, ...] = ()
        if device_id is not None:
            sql += " WHERE device_id = ?"
            args = (device_id,)
        sql += " ORDER BY id DESC LIMIT ?"
        keys = ("device_id", "release_id", "outcome", "reason", "counter", "at")
        return [dict(zip(keys, r, strict=True)) for r in self._all(sql, (*args, limit))]
