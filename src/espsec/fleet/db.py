"""The fleet's storage: every SQL statement lives here, for SQLite and PostgreSQL alike.

:func:`open_database` takes a SQLite file path (the embedded default) or a
``postgresql://`` URL (psycopg 3; several server processes on one database). Both run
the same statements: they are written with ``?`` placeholders and the few spellings that
differ (``GREATEST``, ``FOR UPDATE``, column types) come from a :class:`Dialect`.

Every call is blocking and thread-safe: the HTTP layer calls it from a thread pool,
never on the event loop. Each thread keeps its own connection.

* **SQLite** runs in WAL mode with a short busy timeout: a write that cannot get the lock
  in time raises :class:`StorageBusy` (answered 503 with ``Retry-After``), never a
  multi-second stall. Writers in one process queue on a lock first, so SQLite's own
  busy wait only arbitrates between processes.
* **Failed writes** (disk full, I/O error, lost database connection) raise
  :class:`StorageFailed`; the service then goes read-only (``degraded``) for a while.
* **Migrations**: ``schema_migrations`` records the steps applied; on open, the missing
  ones run in one transaction (ADR 0008). A database newer than the code is refused.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from espsec.errors import EspsecError, UsageError
from espsec.fleet.posture import weak_codes

if TYPE_CHECKING:
    from espsec.ota.protocol import CheckIn, OutcomeReport
    from espsec.ota.release import ReleaseStatement

DEFAULT_BUSY_TIMEOUT = 0.25
"""Seconds a write waits for the database lock before answering 503."""
MAX_REPORTS_PER_DEVICE = 200
"""Reports kept per device (older ones are pruned as new ones arrive)."""
MANIFEST_WINDOW = 1024
"""Offering manifests remembered per device, by counter (a report must name one)."""


class AlreadyExists(UsageError):
    """A record with this key exists (answered 409 by the API)."""


class ReportRefused(EspsecError):
    """A report not bound to an unreported manifest issued to the device."""


class StorageBusy(EspsecError):
    """The database is locked by another writer for longer than the busy timeout (503)."""


class StorageFailed(EspsecError):
    """A write failed (disk full, I/O error, connection lost): the fleet goes read-only."""


# -- rows -------------------------------------------------------------------------------


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
    posture: str | None = None
    """The last posture the device reported (JSON of :class:`espsec.ota.protocol.Posture`)."""
    posture_flags: str | None = None
    """Comma-separated weakness codes the fleet found in that posture ('' = none)."""
    cert_sha256: str | None = None
    """SHA-256 of the client certificate the posture came with (mutual TLS)."""

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
            "posture": json.loads(self.posture) if self.posture else None,
            "posture_flags": list(weak_codes(self.posture_flags)),
            "cert_sha256": self.cert_sha256,
        }


@dataclass(frozen=True)
class RolloutRow:
    id: int
    release_id: str
    cohort: str
    steps: str
    """Percentages, comma-separated (``1,10,50,100``)."""
    step: int
    """Index into ``steps`` of the current step."""
    state: str
    threshold: float
    window_s: int
    step_interval_s: int
    min_reports: int
    created_at: int
    step_started_at: int
    window_from: int
    """Outcomes before this time are not counted (start, or the last resume)."""
    updated_at: int
    halt_reason: str | None

    @property
    def percents(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.steps.split(","))

    @property
    def percent(self) -> float:
        return self.percents[self.step]


_DEVICE_COLS = ", ".join(DeviceRow.__dataclass_fields__)
_RELEASE_COLS = ", ".join(ReleaseRow.__dataclass_fields__)
_PAYLOAD_COLS = ", ".join(PayloadRow.__dataclass_fields__)
_ROLLOUT_COLS = ", ".join(RolloutRow.__dataclass_fields__)
# Column lists are the dataclass fields above (constants, never user input).
_INSERT_RELEASE = (
    f"INSERT INTO releases ({_RELEASE_COLS}, statement) VALUES ({', '.join('?' * 12)})"  # noqa: S608
)
_INSERT_PAYLOAD = f"INSERT INTO payloads ({_PAYLOAD_COLS}) VALUES ({', '.join('?' * 6)})"  # noqa: S608
_SELECT_RELEASES = f"SELECT {_RELEASE_COLS} FROM releases"  # noqa: S608
_SELECT_PAYLOADS = f"SELECT {_PAYLOAD_COLS} FROM payloads"  # noqa: S608
_SELECT_DEVICES = f"SELECT {_DEVICE_COLS} FROM devices"  # noqa: S608
_SELECT_ROLLOUTS = f"SELECT {_ROLLOUT_COLS} FROM rollouts"  # noqa: S608
_CHECK_IN_FIELDS = (  # columns named as the CheckIn fields they keep
    "chip",
    "project_name",
    "version",
    "secure_version",
    "boot_state",
    "image_sha256",
    "enc_key_id",
)
_POSTURE_FIELDS = ("posture", "posture_flags", "cert_sha256")
_CHECK_IN_COLS = (  # the values of one check-in, in this order
    "device_id",
    *_CHECK_IN_FIELDS,
    *_POSTURE_FIELDS,
    "counter",
    "first_seen",
    "last_seen",
    "posture_at",
)
_UPSERT_HEAD = f"INSERT INTO devices ({', '.join(_CHECK_IN_COLS)}) VALUES "  # noqa: S608
_UPSERT_ROW = f"({', '.join('?' * len(_CHECK_IN_COLS))})"
_UPSERT_TAIL = (
    " ON CONFLICT(device_id) DO UPDATE SET "
    + ", ".join(f"{k} = excluded.{k}" for k in _CHECK_IN_FIELDS)
    + ", posture = COALESCE(excluded.posture, devices.posture)"
    + ", posture_flags = COALESCE(excluded.posture_flags, devices.posture_flags)"
    + ", cert_sha256 = COALESCE(excluded.cert_sha256, devices.cert_sha256)"
    + ", posture_at = COALESCE(excluded.posture_at, devices.posture_at)"
    + ", counter = GREATEST(devices.counter, excluded.counter - 1) + 1"
    + ", last_seen = excluded.last_seen"
    + f" RETURNING {_DEVICE_COLS}"
)
_UPSERT_SIZES = (64, 32, 16, 8, 4, 2, 1)
"""Rows per check-in upsert statement: a batch is written in statements of these sizes
(few distinct statements for the databases' statement caches)."""


def _upsert_check_ins(rows: int) -> str:
    """The upsert of ``rows`` check-ins (one statement; each device at most once)."""
    return _UPSERT_HEAD + ", ".join([_UPSERT_ROW] * rows) + _UPSERT_TAIL


REPORT_KEYS = ("id", "device_id", "release_id", "outcome", "reason", "counter", "at")


# -- dialects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dialect:
    """How one database spells what differs."""

    name: str
    int_type: str
    blob_type: str
    real_type: str
    serial_pk: str
    greatest: str
    for_update: str

    def sql(self, statement: str) -> str:
        """A statement written for SQLite (``?``, ``GREATEST``) in this dialect."""
        statement = statement.replace("GREATEST(", self.greatest + "(")
        statement = statement.replace(" FOR UPDATE", self.for_update)
        if self.name == "postgresql":
            statement = statement.replace("%", "%%").replace("?", "%s")
        return statement

    def schema(self, statement: str) -> str:
        return (
            statement.replace("{INT}", self.int_type)
            .replace("{BLOB}", self.blob_type)
            .replace("{REAL}", self.real_type)
            .replace("{SERIAL}", self.serial_pk)
        )


SQLITE = Dialect(
    "sqlite", "INTEGER", "BLOB", "REAL", "INTEGER PRIMARY KEY AUTOINCREMENT", "MAX", ""
)
POSTGRESQL = Dialect(
    "postgresql",
    "BIGINT",
    "BYTEA",
    "DOUBLE PRECISION",
    "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    "GREATEST",
    " FOR UPDATE",
)


# -- migrations -------------------------------------------------------------------------

MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "releases, payloads, cohorts, devices, reports, manifests",
        (
            """CREATE TABLE IF NOT EXISTS releases (
                id TEXT PRIMARY KEY,
                project_name TEXT NOT NULL,
                version TEXT NOT NULL,
                secure_version {INT} NOT NULL,
                chip TEXT NOT NULL,
                chip_id {INT} NOT NULL,
                image_length {INT} NOT NULL,
                image_sha256 TEXT NOT NULL,
                signed_digest TEXT NOT NULL,
                signers TEXT NOT NULL,
                statement {BLOB} NOT NULL,
                created_at {INT} NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS payloads (
                release_id TEXT NOT NULL REFERENCES releases(id),
                idx {INT} NOT NULL,
                encryption TEXT NOT NULL,
                recipient TEXT,
                length {INT} NOT NULL,
                sha256 TEXT NOT NULL,
                PRIMARY KEY (release_id, idx)
            )""",
            "CREATE INDEX IF NOT EXISTS payloads_sha256 ON payloads(sha256)",
            """CREATE TABLE IF NOT EXISTS cohorts (
                name TEXT PRIMARY KEY,
                release_id TEXT REFERENCES releases(id),
                updated_at {INT} NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS devices (
                device_id TEXT PRIMARY KEY,
                cohort TEXT NOT NULL DEFAULT 'default',
                chip TEXT,
                project_name TEXT,
                version TEXT,
                secure_version {INT},
                boot_state TEXT,
                image_sha256 TEXT,
                enc_key_id TEXT,
                counter {INT} NOT NULL DEFAULT 0,
                offered_release TEXT,
                blocked_release TEXT,
                last_outcome TEXT,
                last_reason TEXT,
                first_seen {INT},
                last_seen {INT}
            )""",
            """CREATE TABLE IF NOT EXISTS reports (
                id {SERIAL},
                device_id TEXT NOT NULL,
                release_id TEXT,
                outcome TEXT NOT NULL,
                reason TEXT NOT NULL,
                counter {INT},
                at {INT} NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS reports_device ON reports(device_id)",
            """CREATE TABLE IF NOT EXISTS manifests (
                device_id TEXT NOT NULL,
                counter {INT} NOT NULL,
                release_id TEXT,
                issued_at {INT} NOT NULL,
                reported {INT} NOT NULL DEFAULT 0,
                PRIMARY KEY (device_id, counter)
            )""",
        ),
    ),
    (
        "device posture, staged rollouts",
        (
            "ALTER TABLE devices ADD COLUMN posture TEXT",
            "ALTER TABLE devices ADD COLUMN posture_flags TEXT",
            "ALTER TABLE devices ADD COLUMN cert_sha256 TEXT",
            "ALTER TABLE devices ADD COLUMN posture_at {INT}",
            "CREATE INDEX devices_cohort ON devices(cohort, device_id)",
            "CREATE INDEX reports_release_at ON reports(release_id, at)",
            """CREATE TABLE rollouts (
                id {SERIAL},
                release_id TEXT NOT NULL REFERENCES releases(id),
                cohort TEXT NOT NULL,
                steps TEXT NOT NULL,
                step {INT} NOT NULL,
                state TEXT NOT NULL,
                threshold {REAL} NOT NULL,
                window_s {INT} NOT NULL,
                step_interval_s {INT} NOT NULL,
                min_reports {INT} NOT NULL,
                created_at {INT} NOT NULL,
                step_started_at {INT} NOT NULL,
                window_from {INT} NOT NULL,
                updated_at {INT} NOT NULL,
                halt_reason TEXT
            )""",
            "CREATE INDEX rollouts_cohort ON rollouts(cohort, state)",
            """CREATE TABLE rollout_samples (
                rollout_id {INT} NOT NULL,
                at {INT} NOT NULL,
                percent {REAL} NOT NULL,
                state TEXT NOT NULL,
                outcomes {INT} NOT NULL,
                failures {INT} NOT NULL,
                rollbacks {INT} NOT NULL
            )""",
            "CREATE INDEX rollout_samples_id ON rollout_samples(rollout_id, at)",
        ),
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
_MIGRATION_LOCK = 0x65737073  # "esps": the PostgreSQL advisory lock of the migration


# -- connections ------------------------------------------------------------------------

_T = TypeVar("_T")
Cursor = Any


def _sqlite_failure(exc: sqlite3.Error, what: str) -> EspsecError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StorageBusy(f"the fleet database is busy ({what}); retry shortly")
    return StorageFailed(f"the fleet database failed ({what}): {text}")


class _Backend(ABC):
    """Per-thread connections and transactions for one database."""

    dialect: Dialect

    @abstractmethod
    def transaction(self, *, write: bool) -> contextlib.AbstractContextManager[Cursor]: ...

    @abstractmethod
    def close(self) -> None: ...


class _Sqlite(_Backend):
    dialect = SQLITE

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        conn = self._conn()  # fail now, with the file's name, if it cannot be opened
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise EspsecError(f"cannot open the fleet database: {exc}", source=str(path)) from None

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StorageFailed("the fleet database is closed")
        try:
            conn = sqlite3.connect(
                str(self.path),
                check_same_thread=False,
                isolation_level=None,
                timeout=self.busy_timeout,
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise EspsecError(
                f"cannot open the fleet database: {exc}", source=str(self.path)
            ) from None
        self._local.conn = conn
        with self._all_lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[Cursor]:
        conn = self._conn()
        if write and not self._write_lock.acquire(timeout=self.busy_timeout):
            raise StorageBusy("the fleet database is busy (writers queued); retry shortly")
        try:
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise _sqlite_failure(exc, "begin") from None
            try:
                yield conn
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise _sqlite_failure(exc, "write" if write else "read") from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise _sqlite_failure(exc, "commit") from None
        finally:
            if write:
                self._write_lock.release()

    def backup(self, target: Path) -> None:
        """A consistent copy of the database file (before a migration)."""
        with contextlib.closing(sqlite3.connect(str(target))) as dst:
            self._conn().backup(dst)

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


class _Postgres(_Backend):
    dialect = POSTGRESQL

    def __init__(self, url: str, busy_timeout: float) -> None:
        try:
            import psycopg
        except ImportError:
            raise UsageError(
                "a PostgreSQL fleet database needs psycopg: pip install 'espsec[postgres]'"
            ) from None
        self._psycopg = psycopg
        self.url = url
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._conn()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        if self._closed:
            raise StorageFailed("the fleet database is closed")
        psycopg = self._psycopg
        lock_ms = max(1, int(self.busy_timeout * 1000))
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=5,
                options=f"-c lock_timeout={lock_ms} -c statement_timeout=30000",
            )
        except psycopg.Error as exc:
            # Not a failed write: the server is down, restarting or out of connection
            # slots. Answered 503 with Retry-After; the fleet does not go read-only.
            raise StorageBusy(
                f"cannot reach the fleet database now: {str(exc).strip().splitlines()[0]}"
            ) from None
        self._local.conn = conn
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _begin(self) -> Any:
        """A connection inside ``BEGIN``; a connection found dead is replaced once (nothing
        of the transaction ran yet, so retrying is safe)."""
        psycopg = self._psycopg
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.execute("BEGIN")
                return conn
            except psycopg.OperationalError as exc:
                with contextlib.suppress(Exception):
                    conn.close()
                self._local.conn = None
                if attempt:
                    raise StorageFailed(
                        f"the fleet database failed: {str(exc).strip().splitlines()[0]}"
                    ) from None
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[Cursor]:
        psycopg = self._psycopg
        conn = self._begin()
        try:
            with conn.cursor() as cur:
                yield cur
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                if not conn.closed:
                    conn.execute("ROLLBACK")
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                raise StorageBusy("the fleet database is busy; retry shortly") from None
            if isinstance(
                exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected
            ):
                raise StorageBusy("the fleet database is busy (conflict); retry shortly") from None
            if isinstance(exc, psycopg.errors.UniqueViolation):
                raise StorageBusy("a concurrent write got there first; retry") from None
            if isinstance(exc, psycopg.OperationalError):
                with contextlib.suppress(Exception):
                    conn.close()
                self._local.conn = None
            if isinstance(exc, psycopg.Error):
                raise StorageFailed(
                    f"the fleet database failed: {str(exc).strip().splitlines()[0]}"
                ) from None
            raise

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


def is_database_url(database: str | Path) -> bool:
    return str(database).startswith(("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """A database URL without its password (for messages and logs)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


# -- the store --------------------------------------------------------------------------


class FleetDB:
    """Releases, payloads, cohorts, devices, reports and rollouts."""

    def __init__(self, database: str | Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.backend: _Backend
        if is_database_url(database):
            self.backend = _Postgres(str(database), busy_timeout)
            self.where = redact_url(str(database))
        else:
            self.backend = _Sqlite(Path(database), busy_timeout)
            self.where = str(database)
        self.d = self.backend.dialect
        self._sql: dict[str, str] = {}
        try:
            self._migrate()
        except BaseException:
            self.backend.close()
            raise

    @property
    def dialect(self) -> str:
        return self.d.name

    def close(self) -> None:
        self.backend.close()

    def _q(self, statement: str) -> str:
        cached = self._sql.get(statement)
        if cached is None:
            cached = self._sql[statement] = self.d.sql(statement)
        return cached

    def _x(self, cur: Cursor, statement: str, args: Sequence[Any] = ()) -> Cursor:
        return cur.execute(self._q(statement), tuple(args))

    def _read(self, fn: Callable[[Cursor], _T]) -> _T:
        with self.backend.transaction(write=False) as cur:
            return fn(cur)

    def _all(self, statement: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._read(lambda c: list(self._x(c, statement, args).fetchall()))

    @contextlib.contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self.backend.transaction(write=True) as cur:
            yield cur

    # -- schema ------------------------------------------------------------------------

    def schema_version(self) -> int:
        rows = self._all("SELECT MAX(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    def _migrate(self) -> None:
        d = self.d
        backend = self.backend
        if isinstance(backend, _Sqlite):
            current, legacy = self._sqlite_version()
            if current < SCHEMA_VERSION and (current or legacy):
                stamp = time.strftime("%Y%m%d%H%M%S")
                backup = backend.path.with_name(f"{backend.path.name}.v{current}-{stamp}.bak")
                backend.backup(backup)
        with self._write() as cur:
            if d.name == "postgresql":
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(
                d.schema(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version {INT} PRIMARY KEY, "
                    "name TEXT NOT NULL, applied_at {INT} NOT NULL)"
                )
            )
            row = self._x(cur, "SELECT MAX(version) FROM schema_migrations").fetchone()
            current = int(row[0] or 0)
            if current > SCHEMA_VERSION:
                raise EspsecError(
                    f"the fleet database is at schema version {current}, newer than this "
                    f"espsec understands ({SCHEMA_VERSION}): upgrade espsec",
                    source=self.where,
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                name, statements = MIGRATIONS[version - 1]
                for statement in statements:
                    cur.execute(d.schema(statement))
                self._x(
                    cur,
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, int(time.time())),
                )

    def _sqlite_version(self) -> tuple[int, bool]:
        """(applied version, whether tables from before migrations exist)."""

        def read(cur: Cursor) -> tuple[int, bool]:
            names = {
                r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            version = 0
            if "schema_migrations" in names:
                version = int(cur.execute("SELECT MAX(version) FROM schema_migrations")
                              .fetchone()[0] or 0)  # fmt: skip
            return version, "releases" in names

        return self._read(read)

    def ping_write(self) -> None:
        """A harmless write: does the database take writes again? (degraded-mode probe)"""
        with self._write() as cur:
            self._x(cur, "UPDATE schema_migrations SET applied_at = applied_at WHERE version = 1")

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
        with self._write() as c:
            if self._x(c, "SELECT 1 FROM releases WHERE id = ?", (release_id,)).fetchone():
                raise AlreadyExists(f"release {release_id} was already uploaded")
            self._x(c, _INSERT_RELEASE, (*values, statement_bytes))
            c.executemany(self._q(_INSERT_PAYLOAD), payloads)
        return ReleaseRow(*values)

    def release(self, release_id: str) -> ReleaseRow | None:
        rows = self._all(_SELECT_RELEASES + " WHERE id = ?", (release_id,))
        return ReleaseRow(*rows[0]) if rows else None

    def releases(self, *, limit: int = 1000, after: str | None = None) -> list[ReleaseRow]:
        """Releases in upload order; ``after``: the id of the last one of the previous page."""
        if after is None:
            rows = self._all(_SELECT_RELEASES + " ORDER BY created_at, id LIMIT ?", (limit,))
        else:
            rows = self._all(
                _SELECT_RELEASES + " WHERE (created_at, id) > (SELECT created_at, id FROM "  # noqa: S608
                "releases WHERE id = ?) ORDER BY created_at, id LIMIT ?",
                (after, limit),
            )
        return [ReleaseRow(*r) for r in rows]

    def payloads(self, release_id: str) -> list[PayloadRow]:
        return [
            PayloadRow(*r)
            for r in self._all(
                _SELECT_PAYLOADS + " WHERE release_id = ? ORDER BY idx", (release_id,)
            )
        ]

    def payload_length(self, sha256: str) -> int | None:
        rows = self._all("SELECT length FROM payloads WHERE sha256 = ? LIMIT 1", (sha256,))
        return int(rows[0][0]) if rows else None

    def release_payload_shas(self, release_id: str) -> set[str]:
        rows = self._all("SELECT sha256 FROM payloads WHERE release_id = ?", (release_id,))
        return {r[0] for r in rows}

    def all_payload_shas(self) -> set[str]:
        return {r[0] for r in self._all("SELECT DISTINCT sha256 FROM payloads")}

    # -- cohorts ------------------------------------------------------------------------

    def assign_cohort(self, cohort: str, release_id: str | None, now: int) -> None:
        with self._write() as c:
            self._assign_cohort(c, cohort, release_id, now)

    def _assign_cohort(self, c: Cursor, cohort: str, release_id: str | None, now: int) -> None:
        self._x(
            c,
            "INSERT INTO cohorts (name, release_id, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET release_id = excluded.release_id, "
            "updated_at = excluded.updated_at",
            (cohort, release_id, now),
        )
        # A fresh assignment lifts earlier refusals of that release in the cohort.
        self._x(
            c,
            "UPDATE devices SET blocked_release = NULL WHERE cohort = ? AND blocked_release = ?",
            (cohort, release_id),
        )

    def cohort_release(self, cohort: str) -> str | None:
        rows = self._all("SELECT release_id FROM cohorts WHERE name = ?", (cohort,))
        return rows[0][0] if rows else None

    def cohort_plan(
        self, cohort: str, c: Cursor | None = None
    ) -> tuple[
        ReleaseRow | None, list[PayloadRow], RolloutRow | None, ReleaseRow | None, list[PayloadRow]
    ]:
        """What ``cohort`` is offered: its release and payloads, and its active rollout
        with the rollout's release and payloads (read with ``c`` when given)."""

        def read(c: Cursor) -> Any:
            release = rollout = rollout_release = None
            payloads: list[PayloadRow] = []
            rollout_payloads: list[PayloadRow] = []
            row = self._x(c, "SELECT release_id FROM cohorts WHERE name = ?", (cohort,)).fetchone()
            if row is not None and row[0] is not None:
                release, payloads = self._release_and_payloads(c, row[0])
            row = self._x(
                c,
                _SELECT_ROLLOUTS + " WHERE cohort = ? AND state IN ('running', 'paused', "
                "'halted') ORDER BY id DESC LIMIT 1",
                (cohort,),
            ).fetchone()
            if row is not None:
                rollout = RolloutRow(*row)
                rollout_release, rollout_payloads = self._release_and_payloads(
                    c, rollout.release_id
                )
            return release, payloads, rollout, rollout_release, rollout_payloads

        plan: Any = read(c) if c is not None else self._read(read)
        return plan  # type: ignore[no-any-return]

    def _release_and_payloads(
        self, c: Cursor, release_id: str
    ) -> tuple[ReleaseRow | None, list[PayloadRow]]:
        row = self._x(c, _SELECT_RELEASES + " WHERE id = ?", (release_id,)).fetchone()
        if row is None:
            return None, []
        rows = self._x(
            c, _SELECT_PAYLOADS + " WHERE release_id = ? ORDER BY idx", (release_id,)
        ).fetchall()
        return ReleaseRow(*row), [PayloadRow(*r) for r in rows]

    def cohorts(self) -> list[dict[str, Any]]:
        return [
            {"name": n, "release_id": r, "updated_at": t}
            for n, r, t in self._all(
                "SELECT name, release_id, updated_at FROM cohorts ORDER BY name"
            )
        ]

    # -- devices ------------------------------------------------------------------------

    def set_device_cohort(self, device_id: str, cohort: str) -> None:
        with self._write() as c:
            self._x(
                c,
                "INSERT INTO devices (device_id, cohort) VALUES (?, ?) "
                "ON CONFLICT(device_id) DO UPDATE SET cohort = excluded.cohort",
                (device_id, cohort),
            )

    def device(self, device_id: str) -> DeviceRow | None:
        rows = self._all(_SELECT_DEVICES + " WHERE device_id = ?", (device_id,))
        return DeviceRow(*rows[0]) if rows else None

    def devices(
        self,
        *,
        limit: int = 1000,
        after: str | None = None,
        cohort: str | None = None,
        weak: bool | None = None,
        chip: str | None = None,
        flag: str | None = None,
    ) -> list[DeviceRow]:
        """Devices by id, a page at a time (``after``: the last id of the previous page)."""
        where: list[str] = []
        args: list[Any] = []
        if after is not None:
            where.append("device_id > ?")
            args.append(after)
        if cohort is not None:
            where.append("cohort = ?")
            args.append(cohort)
        if chip is not None:
            where.append("chip = ?")
            args.append(chip)
        if weak is True:
            where.append("(posture_flags IS NULL OR posture_flags != '')")
        elif weak is False:
            where.append("posture_flags = ''")
        if flag is not None:
            where.append("(',' || posture_flags || ',') LIKE ?")
            args.append("%," + flag.replace("%", "").replace("_", "") + ",%")
        sql = _SELECT_DEVICES
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY device_id LIMIT ?"
        return [DeviceRow(*r) for r in self._all(sql, (*args, limit))]

    def count_devices(self) -> int:
        return int(self._all("SELECT COUNT(*) FROM devices")[0][0])

    def check_in(
        self,
        request: CheckIn,
        now: int,
        decide: Callable[[DeviceRow, Cursor], str | None],
        posture: tuple[str | None, str | None, str | None] = (None, None, None),
    ) -> DeviceRow:
        """Record a check-in and the offer made in answer, in one transaction.

        The device's row is upserted with its next manifest counter,
        ``max(stored, last_counter) + 1``: strictly above anything the device has
        accepted, even after the database was restored from an old backup. ``decide``
        gets that row and returns the release to offer (or ``None``); an offer is
        remembered so that a report can name it, once.
        """
        return self.check_in_many([(request, decide, posture)], now)[0]

    def check_in_many(
        self,
        items: Sequence[
            tuple[
                CheckIn,
                Callable[[DeviceRow, Cursor], str | None],
                tuple[str | None, str | None, str | None],
            ]
        ],
        now: int,
    ) -> list[DeviceRow]:
        """:meth:`check_in` for several ``(request, decide, posture)`` in one transaction
        (one commit), as if one after the other in the order given.

        The devices' rows are upserted a few dozen per statement (a device that checks in
        twice in a batch: its second check-in in a second round), then each ``decide``
        runs in order; offers are written one by one (rare: a device is offered a release
        once, not at every check-in).
        """
        rounds: list[list[int]] = []
        seen: dict[str, int] = {}
        for i, (request, _, _) in enumerate(items):
            k = seen[request.device_id] = seen.get(request.device_id, -1) + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(i)
        devices: list[DeviceRow | None] = [None] * len(items)
        with self._write() as c:
            for members in rounds:
                rows = self._upsert(
                    c, [items[i][0] for i in members], [items[i][2] for i in members], now
                )
                for i in members:
                    request, decide, _ = items[i]
                    device = devices[i] = rows[request.device_id]
                    self._record_offer(c, device, decide(device, c), now)
        return [d for d in devices if d is not None]

    def _upsert(
        self,
        c: Cursor,
        requests: Sequence[CheckIn],
        postures: Sequence[tuple[str | None, str | None, str | None]],
        now: int,
    ) -> dict[str, DeviceRow]:
        """Upsert the rows of ``requests`` (distinct devices); the rows by device id."""
        rows: dict[str, DeviceRow] = {}
        done = 0
        while done < len(requests):
            size = next(n for n in _UPSERT_SIZES if n <= len(requests) - done)
            args: list[Any] = []
            for request, posture in zip(
                requests[done : done + size], postures[done : done + size], strict=True
            ):
                args += (request.device_id, *(getattr(request, k) for k in _CHECK_IN_FIELDS))
                args += (*posture, request.last_counter + 1, now, now)
                args.append(now if posture[0] is not None else None)
            for row in self._x(c, _upsert_check_ins(size), args).fetchall():
                device = DeviceRow(*row)
                rows[device.device_id] = device
            done += size
        return rows

    def _record_offer(self, c: Cursor, device: DeviceRow, offered: str | None, now: int) -> None:
        """Remember the release offered to ``device`` in the manifest it is about to get."""
        if offered != device.offered_release:
            self._x(
                c,
                "UPDATE devices SET offered_release = ? WHERE device_id = ?",
                (offered, device.device_id),
            )
        if offered is not None:
            self._x(
                c,
                "INSERT INTO manifests (device_id, counter, release_id, issued_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(device_id, counter) DO UPDATE SET "
                "release_id = excluded.release_id, issued_at = excluded.issued_at, "
                "reported = 0",
                (device.device_id, device.counter, offered, now),
            )
            if device.counter % 64 == 0:  # keep a bounded window of offers per device
                self._x(
                    c,
                    "DELETE FROM manifests WHERE device_id = ? AND counter < ?",
                    (device.device_id, device.counter - MANIFEST_WINDOW),
                )

    def offered_release(self, device_id: str) -> str | None:
        rows = self._all("SELECT offered_release FROM devices WHERE device_id = ?", (device_id,))
        return rows[0][0] if rows else None

    def add_report(
        self,
        report: OutcomeReport,
        now: int,
        *,
        block: bool,
        keep: int = MAX_REPORTS_PER_DEVICE,
    ) -> None:
        """Record a device's report; ``block``: stop offering its release to the device.

        The device must be registered (it checked in, or an admin placed it in a cohort).
        The report must name, by its counter, a manifest issued to that device that has
        not been reported on yet, and the release that manifest offered
        (:class:`ReportRefused` otherwise): a report cannot be replayed or invented. Only a
        report naming neither counter nor release (a device that refused an unverifiable
        manifest) stands alone: it blocks nothing. At most ``keep`` reports are kept per
        device.
        """
        device_id, release_id = report.device_id, report.release_id
        outcome, reason = report.outcome.value, report.reason
        with self._write() as c:
            known = self._x(
                c, "SELECT 1 FROM devices WHERE device_id = ? FOR UPDATE", (device_id,)
            ).fetchone()
            if known is None:
                raise ReportRefused("reports are taken only from registered devices")
            row = self._x(
                c,
                "SELECT release_id, reported FROM manifests WHERE device_id = ? AND counter = ? "
                "FOR UPDATE",
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
                self._x(
                    c,
                    "UPDATE manifests SET reported = 1 WHERE device_id = ? AND counter = ?",
                    (device_id, report.counter),
                )
            new_id = self._x(
                c,
                "INSERT INTO reports (device_id, release_id, outcome, reason, counter, at) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (device_id, release_id, outcome, reason, report.counter, now),
            ).fetchone()[0]
            self._x(
                c,
                "UPDATE devices SET last_outcome = ?, last_reason = ?, "
                "blocked_release = CASE WHEN ? THEN ? ELSE blocked_release END "
                "WHERE device_id = ?",
                (outcome, reason, block, release_id, device_id),
            )
            if new_id % 16 == 0 or keep < 16:  # prune now and then: the cap holds on average
                self._x(
                    c,
                    "DELETE FROM reports WHERE device_id = ? AND id NOT IN "
                    "(SELECT id FROM reports WHERE device_id = ? ORDER BY id DESC LIMIT ?)",
                    (device_id, device_id, keep),
                )

    def reports(
        self, device_id: str | None = None, *, limit: int = 1000, before: int | None = None
    ) -> list[dict[str, Any]]:
        """Reports, newest first; ``before``: the id of the last one of the previous page."""
        sql = f"SELECT {', '.join(REPORT_KEYS)} FROM reports"  # noqa: S608 - constant columns
        where: list[str] = []
        args: list[Any] = []
        if device_id is not None:
            where.append("device_id = ?")
            args.append(device_id)
        if before is not None:
            where.append("id < ?")
            args.append(before)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        return [dict(zip(REPORT_KEYS, r, strict=True)) for r in self._all(sql, (*args, limit))]

    def count_reports(self) -> int:
        return int(self._all("SELECT COUNT(*) FROM reports")[0][0])

    # -- posture ------------------------------------------------------------------------

    def posture_rows(self) -> list[tuple[str, str, str | None, str | None, str | None]]:
        """(device_id, cohort, chip, posture JSON, flags) of every device."""
        return [
            (r[0], r[1], r[2], r[3], r[4])
            for r in self._all(
                "SELECT device_id, cohort, chip, posture, posture_flags FROM devices "
                "ORDER BY device_id"
            )
        ]

    def set_posture_flags(self, flags: Sequence[tuple[str, str]]) -> None:
        """Store ``(device_id, flags)`` pairs (postures judged again)."""
        with self._write() as c:
            c.executemany(
                self._q("UPDATE devices SET posture_flags = ? WHERE device_id = ?"),
                [(f, d) for d, f in flags],
            )

    # -- rollouts -----------------------------------------------------------------------

    def create_rollout(
        self,
        release_id: str,
        cohort: str,
        steps: str,
        *,
        threshold: float,
        window_s: int,
        step_interval_s: int,
        min_reports: int,
        now: int,
    ) -> RolloutRow:
        with self._write() as c:
            active = self._x(
                c,
                "SELECT id FROM rollouts WHERE cohort = ? AND state IN ('running', 'paused', "
                "'halted')",
                (cohort,),
            ).fetchone()
            if active is not None:
                raise AlreadyExists(
                    f"cohort {cohort!r} already has rollout {active[0]} in progress: abort it first"
                )
            new_id = self._x(
                c,
                "INSERT INTO rollouts (release_id, cohort, steps, step, state, threshold, "
                "window_s, step_interval_s, min_reports, created_at, step_started_at, "
                "window_from, updated_at, halt_reason) "
                "VALUES (?, ?, ?, 0, 'running', ?, ?, ?, ?, ?, ?, ?, ?, NULL) RETURNING id",
                (release_id, cohort, steps, threshold, window_s, step_interval_s, min_reports,
                 now, now, now, now),
            ).fetchone()[0]  # fmt: skip
            # A new rollout gives every device a fresh chance at the release.
            self._x(
                c,
                "UPDATE devices SET blocked_release = NULL "
                "WHERE cohort = ? AND blocked_release = ?",
                (cohort, release_id),
            )
            row = self._x(c, _SELECT_ROLLOUTS + " WHERE id = ?", (new_id,)).fetchone()
        return RolloutRow(*row)

    def rollout(self, rollout_id: int) -> RolloutRow | None:
        rows = self._all(_SELECT_ROLLOUTS + " WHERE id = ?", (rollout_id,))
        return RolloutRow(*rows[0]) if rows else None

    def rollouts(self, *, limit: int = 100) -> list[RolloutRow]:
        rows = self._all(_SELECT_ROLLOUTS + " ORDER BY id DESC LIMIT ?", (limit,))
        return [RolloutRow(*r) for r in rows]

    def active_rollouts(self) -> list[RolloutRow]:
        """Rollouts not finished (running, paused or halted), by cohort."""
        rows = self._all(
            _SELECT_ROLLOUTS + " WHERE state IN ('running', 'paused', 'halted') ORDER BY id"
        )
        return [RolloutRow(*r) for r in rows]

    def update_rollout(
        self,
        rollout_id: int,
        change: Callable[[RolloutRow, Cursor], dict[str, Any] | None],
    ) -> RolloutRow:
        """Lock a rollout, let ``change`` decide new column values, write them."""
        with self._write() as c:
            row = self._x(
                c, _SELECT_ROLLOUTS + " WHERE id = ? FOR UPDATE", (rollout_id,)
            ).fetchone()
            if row is None:
                raise KeyError(rollout_id)
            current = RolloutRow(*row)
            values = change(current, c)
            if not values:
                return current
            for key in values:
                if key not in RolloutRow.__dataclass_fields__ or key == "id":
                    raise ValueError(key)
            assignments = ", ".join(f"{k} = ?" for k in values)
            self._x(
                c,
                f"UPDATE rollouts SET {assignments} WHERE id = ?",  # noqa: S608 - checked names
                (*values.values(), rollout_id),
            )
            row = self._x(c, _SELECT_ROLLOUTS + " WHERE id = ?", (rollout_id,)).fetchone()
        return RolloutRow(*row)

    def outcome_counts(self, c: Cursor, release_id: str, cohort: str, since: int) -> dict[str, int]:
        """Outcomes reported for ``release_id`` by devices of ``cohort`` at or after ``since``."""
        rows = self._x(
            c,
            "SELECT r.outcome, COUNT(*) FROM reports r JOIN devices d ON d.device_id = r.device_id "
            "WHERE r.release_id = ? AND d.cohort = ? AND r.at >= ? GROUP BY r.outcome",
            (release_id, cohort, since),
        ).fetchall()
        return {str(o): int(n) for o, n in rows}

    def read_outcome_counts(self, release_id: str, cohort: str, since: int) -> dict[str, int]:
        return self._read(lambda c: self.outcome_counts(c, release_id, cohort, since))

    def add_sample(self, c: Cursor, rollout: RolloutRow, now: int, counts: dict[str, int]) -> None:
        outcomes = sum(counts.values())
        self._x(
            c,
            "INSERT INTO rollout_samples (rollout_id, at, percent, state, outcomes, failures, "
            "rollbacks) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                rollout.id,
                now,
                rollout.percent,
                rollout.state,
                outcomes,
                counts.get("failed", 0) + counts.get("refused", 0),
                counts.get("rolled_back", 0),
            ),
        )

    def last_sample_at(self, c: Cursor, rollout_id: int) -> int | None:
        row = self._x(
            c, "SELECT MAX(at) FROM rollout_samples WHERE rollout_id = ?", (rollout_id,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def samples(self, rollout_id: int, *, limit: int = 500) -> list[dict[str, Any]]:
        keys = ("at", "percent", "state", "outcomes", "failures", "rollbacks")
        rows = self._all(
            f"SELECT {', '.join(keys)} FROM rollout_samples WHERE rollout_id = ? "  # noqa: S608
            "ORDER BY at DESC LIMIT ?",
            (rollout_id, limit),
        )
        return [dict(zip(keys, r, strict=True)) for r in reversed(rows)]

    def rollout_progress(self, rollout: RolloutRow) -> dict[str, int]:
        """Devices of the cohort: total, offered the release, reporting it updated."""

        def read(c: Cursor) -> dict[str, int]:
            total, offered = self._x(
                c,
                "SELECT COUNT(*), "
                "COALESCE(SUM(CASE WHEN offered_release = ? THEN 1 ELSE 0 END), 0) "
                "FROM devices WHERE cohort = ?",
                (rollout.release_id, rollout.cohort),
            ).fetchone()
            updated = self._x(
                c,
                "SELECT COUNT(DISTINCT r.device_id) FROM reports r JOIN devices d "
                "ON d.device_id = r.device_id WHERE r.release_id = ? AND d.cohort = ? "
                "AND r.outcome = 'updated' AND r.at >= ?",
                (rollout.release_id, rollout.cohort, rollout.created_at),
            ).fetchone()[0]
            return {"devices": int(total), "offered": int(offered), "updated": int(updated)}

        return self._read(read)

    def write(self) -> contextlib.AbstractContextManager[Cursor]:
        """A write transaction for the service's multi-step changes (rollout evaluation)."""
        return self._write()

    def execute(self, c: Cursor, statement: str, args: Sequence[Any] = ()) -> Cursor:
        return self._x(c, statement, args)

    def assign_cohort_in(self, c: Cursor, cohort: str, release_id: str | None, now: int) -> None:
        self._assign_cohort(c, cohort, release_id, now)


def open_database(database: str | Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> FleetDB:
    """Open (and migrate) a fleet database: a SQLite path or a ``postgresql://`` URL."""
    return FleetDB(database, busy_timeout=busy_timeout)


def sqlite_backup_files(path: Path) -> list[Path]:
    """Backups taken before migrations, oldest first."""
    return sorted(path.parent.glob(f"{path.name}.v*.bak"))


def copy_database(src: Path, dst: Path) -> None:
    """Copy a SQLite database file (tests: an old database to migrate)."""
    shutil.copyfile(src, dst)
