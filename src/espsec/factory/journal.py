"""The factory journal: one row per device, its state, and its public record.

A device goes ``free`` → ``allocated`` → ``keys`` → ``efuse-planned`` →
``efuse-applying`` → ``efuse-applied`` → ``flashed`` → ``verified`` → ``done``. Each
state is committed before the step it names begins to have effects that cannot be
undone (``efuse-applying`` is written *before* the burn, ``efuse-applied`` after), so a
crash at any point leaves the journal telling exactly what may have happened:
``efuse-partial`` records a chip found half-burned on resume, ``failed`` one that
cannot go on. Serials are rows created with the batch; a station claims a free one in
one transaction, so no serial is ever handed out twice.

The journal is the only durable store of a run: a device's own flash parts (ciphertext
or public) are a blob in its row, written with ``efuse-planned``. Commits are cheap
(they survive a killed process, not a power cut) except ``efuse-applying``, the one
commit before an irreversible step: it is forced to disk, and with it every earlier
commit, so a power cut of the station never leaves a burned chip the journal does not
know, nor one whose flash parts are lost (docs/adr/0015-factory-journal-and-resume.md).

One station: an embedded SQLite file (WAL, ``synchronous=NORMAL``; ``FULL`` for the
durable commit). Several stations: :class:`espsec.factory.pg.PostgresJournal`, where a
claim is a row lock (``FOR UPDATE SKIP LOCKED``) and only the durable commit waits for
the server's disk (``synchronous_commit``). No secret is ever written here, except
wrapped to the escrow key.
"""

from __future__ import annotations

import json
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from espsec.errors import EspsecError

FREE = "free"
ALLOCATED = "allocated"
KEYS = "keys"
PLANNED = "efuse-planned"
APPLYING = "efuse-applying"
APPLIED = "efuse-applied"
FLASHED = "flashed"
VERIFIED = "verified"
DONE = "done"
PARTIAL = "efuse-partial"
FAILED = "failed"

STATES = (
    FREE,
    ALLOCATED,
    KEYS,
    PLANNED,
    APPLYING,
    APPLIED,
    FLASHED,
    VERIFIED,
    DONE,
    PARTIAL,
    FAILED,
)
IN_FLIGHT = (ALLOCATED, KEYS, PLANNED, APPLYING, APPLIED, FLASHED, VERIFIED)
FINAL = (DONE, PARTIAL, FAILED)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS factory_batches (
        name TEXT PRIMARY KEY,
        spec_sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        created DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS factory_devices (
        batch TEXT NOT NULL,
        seq INTEGER NOT NULL,
        serial TEXT NOT NULL,
        state TEXT NOT NULL,
        station TEXT,
        target TEXT,
        mac TEXT,
        record TEXT,
        escrow TEXT,
        artifacts BYTEA,
        updated DOUBLE PRECISION,
        PRIMARY KEY (batch, seq),
        UNIQUE (batch, serial))""",
    "CREATE INDEX IF NOT EXISTS factory_devices_state ON factory_devices (batch, state, seq)",
)


class JournalError(EspsecError):
    """The journal cannot be used (another batch, a broken file, an unreachable server)."""


@dataclass
class DeviceRow:
    """One device of the batch, as the journal holds it."""

    seq: int
    serial: str
    state: str
    station: str | None = None
    target: str | None = None
    mac: str | None = None
    record: dict[str, Any] = field(default_factory=dict)

    def stamp(self, state: str) -> None:
        """Record the time ``state`` was reached in the record's timestamps."""
        self.record.setdefault("timestamps", {})[state] = round(time.time(), 3)


class Journal(Protocol):
    """What the factory needs from a journal (SQLite or PostgreSQL)."""

    def init_batch(self, name: str, spec_sha256: str, size: int, serials: Iterable[str]) -> bool:
        """Create the batch and its serials; ``False`` if it exists (same spec)."""
        ...

    def claim(self, batch: str, station: str) -> DeviceRow | None:
        """Allocate the next free serial to ``station`` (``None``: the batch is used up)."""
        ...

    def in_flight(self, batch: str, station: str) -> list[DeviceRow]:
        """This station's devices that are neither free nor final (to resume)."""
        ...

    def advance(
        self,
        batch: str,
        row: DeviceRow,
        state: str,
        *,
        escrow: str | None = None,
        artifacts: bytes | None = None,
        durable: bool = False,
    ) -> None:
        """Commit ``row`` in ``state`` (with its target, MAC and record; the wrapped
        secrets and the flash-parts blob when given). ``durable``: on disk when this
        returns, with every earlier commit (else: survives a killed process only)."""
        ...

    def artifacts(self, batch: str, serial: str) -> bytes | None:
        """The flash-parts blob stored with the device (``None``: none yet)."""
        ...

    def counts(self, batch: str) -> dict[str, int]:
        """How many devices are in each state."""
        ...

    def records(self, batch: str, states: Iterable[str] = FINAL) -> Iterator[DeviceRow]:
        """Devices in ``states``, in batch order, streamed."""
        ...

    def escrow_blobs(self, batch: str) -> Iterator[tuple[str, str]]:
        """(serial, wrapped secrets) of every escrowed device."""
        ...

    def close(self) -> None: ...


class SqlJournal(ABC):
    """The journal's SQL, shared by both backends (``?`` placeholders)."""

    placeholder = "?"

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    @abstractmethod
    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _durability(self, durable: bool) -> AbstractContextManager[None]:
        """Around one commit: make it durable (or not) as asked."""
        ...

    def _row(self, r: tuple[Any, ...]) -> DeviceRow:
        seq, serial, state, station, target, mac, record = r
        return DeviceRow(seq, serial, state, station, target, mac, json.loads(record or "{}"))

    _COLUMNS = "seq, serial, state, station, target, mac, record"

    def _check_batch(self, name: str, spec_sha256: str) -> bool:
        cur = self._execute(
            self._sql("SELECT spec_sha256 FROM factory_batches WHERE name = ?"), (name,)
        )
        found = cur.fetchone()
        if found is None:
            return False
        if found[0] != spec_sha256:
            raise JournalError(
                f"the journal holds batch {name!r} made from another spec; a batch's spec "
                "cannot change once planned (rename the batch to start a new one)"
            )
        return True

    def in_flight(self, batch: str, station: str) -> list[DeviceRow]:
        marks = ", ".join("?" for _ in IN_FLIGHT)
        cur = self._execute(
            self._sql(
                f"SELECT {self._COLUMNS} FROM factory_devices WHERE batch = ? AND station = ? "  # noqa: S608 - constant SQL fragments, values are bound
                f"AND state IN ({marks}) ORDER BY seq"
            ),
            (batch, station, *IN_FLIGHT),
        )
        rows = [self._row(r) for r in cur.fetchall()]
        self._commit()
        return rows

    def advance(
        self,
        batch: str,
        row: DeviceRow,
        state: str,
        *,
        escrow: str | None = None,
        artifacts: bytes | None = None,
        durable: bool = False,
    ) -> None:
        row.state = state
        row.stamp(state)
        params: tuple[Any, ...] = (
            state,
            row.target,
            row.mac,
            json.dumps(row.record, sort_keys=True),
            time.time(),
        )
        extra = ""
        if escrow is not None:
            extra += ", escrow = ?"
            params += (escrow,)
        if artifacts is not None:
            extra += ", artifacts = ?"
            params += (artifacts,)
        sql = self._sql(
            "UPDATE factory_devices SET state = ?, target = ?, mac = ?, record = ?, "  # noqa: S608 - constant SQL fragments, values are bound
            f"updated = ?{extra} WHERE batch = ? AND serial = ?"
        )
        with self._durability(durable):
            self._execute(sql, (*params, batch, row.serial))
            self._commit()

    def artifacts(self, batch: str, serial: str) -> bytes | None:
        cur = self._execute(
            self._sql("SELECT artifacts FROM factory_devices WHERE batch = ? AND serial = ?"),
            (batch, serial),
        )
        found = cur.fetchone()
        self._commit()
        return None if found is None or found[0] is None else bytes(found[0])

    def counts(self, batch: str) -> dict[str, int]:
        cur = self._execute(
            self._sql("SELECT state, COUNT(*) FROM factory_devices WHERE batch = ? GROUP BY state"),
            (batch,),
        )
        found = {state: int(n) for state, n in cur.fetchall()}
        self._commit()
        return {s: found.get(s, 0) for s in STATES}

    def records(self, batch: str, states: Iterable[str] = FINAL) -> Iterator[DeviceRow]:
        wanted = tuple(states)
        marks = ", ".join("?" for _ in wanted)
        last = -1
        while True:  # pages, so memory stays flat however large the batch
            cur = self._execute(
                self._sql(
                    f"SELECT {self._COLUMNS} FROM factory_devices WHERE batch = ? AND seq > ? "  # noqa: S608 - constant SQL fragments, values are bound
                    f"AND state IN ({marks}) ORDER BY seq LIMIT 500"
                ),
                (batch, last, *wanted),
            )
            rows = cur.fetchall()
            self._commit()
            if not rows:
                return
            for r in rows:
                yield self._row(r)
            last = rows[-1][0]

    def escrow_blobs(self, batch: str) -> Iterator[tuple[str, str]]:
        last = -1
        while True:
            cur = self._execute(
                self._sql(
                    "SELECT seq, serial, escrow FROM factory_devices WHERE batch = ? AND seq > ? "
                    "AND escrow IS NOT NULL ORDER BY seq LIMIT 500"
                ),
                (batch, last),
            )
            rows = cur.fetchall()
            self._commit()
            if not rows:
                return
            for _, serial, blob in rows:
                yield serial, blob
            last = rows[-1][0]


class SqliteJournal(SqlJournal):
    """The one-station journal: an SQLite file in WAL mode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives the process being killed (the OS has
            # it); only a power cut may lose the newest commits, never corrupt the file.
            # A durable commit switches to FULL for itself (see _durability).
            self.db.execute("PRAGMA synchronous=NORMAL")
            for statement in SCHEMA:
                self.db.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"cannot open the journal: {exc}", source=str(path)) from None

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        try:
            return self.db.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal error: {exc}", source=str(self.path)) from None

    def _commit(self) -> None:
        pass  # autocommit: every statement outside BEGIN is its own transaction

    @contextmanager
    def _durability(self, durable: bool) -> Iterator[None]:
        if not durable:
            yield
            return
        # FULL in WAL mode: the commit syncs the WAL, and so every frame before it.
        self._execute("PRAGMA synchronous=FULL")
        try:
            yield
        finally:
            self._execute("PRAGMA synchronous=NORMAL")

    def init_batch(self, name: str, spec_sha256: str, size: int, serials: Iterable[str]) -> bool:
        self._execute("BEGIN IMMEDIATE")
        try:
            if self._check_batch(name, spec_sha256):
                self._execute("ROLLBACK")
                return False
            self._execute(
                "INSERT INTO factory_batches VALUES (?, ?, ?, ?)",
                (name, spec_sha256, size, time.time()),
            )
            self.db.executemany(
                "INSERT INTO factory_devices (batch, seq, serial, state) VALUES (?, ?, ?, ?)",
                ((name, i, s, FREE) for i, s in enumerate(serials)),
            )
            self._execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return True

    def claim(self, batch: str, station: str) -> DeviceRow | None:
        self._execute("BEGIN IMMEDIATE")
        try:
            cur = self._execute(
                f"SELECT {self._COLUMNS} FROM factory_devices WHERE batch = ? AND state = ? "  # noqa: S608 - constant SQL fragments, values are bound
                "ORDER BY seq LIMIT 1",
                (batch, FREE),
            )
            found = cur.fetchone()
            if found is None:
                self._execute("COMMIT")
                return None
            row = self._row(found)
            row.station = station
            row.state = ALLOCATED
            row.stamp(ALLOCATED)
            self._execute(
                "UPDATE factory_devices SET state = ?, station = ?, record = ?, updated = ? "
                "WHERE batch = ? AND seq = ? AND state = ?",
                (ALLOCATED, station, json.dumps(row.record), time.time(), batch, row.seq, FREE),
            )
            self._execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return row

    def close(self) -> None:
        self.db.close()


def open_journal(url: str | None, output: Path) -> Journal:
    """The journal a run uses: ``postgresql://...`` for several stations, else the
    SQLite file ``journal.sqlite`` in the output folder (or the ``sqlite:PATH`` given)."""
    if url is not None and url.startswith(("postgresql://", "postgres://")):
        from espsec.factory.pg import PostgresJournal

        return PostgresJournal(url)
    if url is not None:
        return SqliteJournal(Path(url.removeprefix("sqlite:")))
    return SqliteJournal(output / "journal.sqlite")
