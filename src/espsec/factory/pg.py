"""The many-station journal: PostgreSQL, with row locks for serial allocation.

A claim is ``SELECT ... FOR UPDATE SKIP LOCKED`` on the first free row and its update in
one transaction: two stations never get the same serial, and neither waits for the
other. Each state change is its own committed transaction, as in the SQLite journal;
only the durable one (``efuse-applying``) waits for the server's disk.
psycopg 3 is imported here only (``pip install 'espsec[postgres]'``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from espsec.factory.journal import (
    ALLOCATED,
    FREE,
    SCHEMA,
    DeviceRow,
    JournalError,
    SqlJournal,
)


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


class PostgresJournal(SqlJournal):
    """The journal in a PostgreSQL database shared by several stations."""

    placeholder = "%s"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - depends on the installation
            raise JournalError(
                "a PostgreSQL journal needs psycopg: pip install 'espsec[postgres]'"
            ) from None
        self._psycopg = psycopg
        self.url = _redact(url)
        try:
            self.db = psycopg.connect(url, autocommit=False, connect_timeout=10)
            with self.db.transaction():
                # One station creates the tables; the others wait on the lock.
                self.db.execute("SELECT pg_advisory_xact_lock(7263011)")
                for statement in SCHEMA:
                    self.db.execute(statement)
            self.db.commit()
        except psycopg.Error as exc:
            raise JournalError(
                f"cannot open the journal: {str(exc).splitlines()[0] if str(exc) else exc}",
                source=self.url,
            ) from None

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        try:
            return self.db.execute(sql, params)
        except self._psycopg.Error as exc:
            self.db.rollback()
            raise JournalError(
                f"journal error: {str(exc).splitlines()[0]}", source=self.url
            ) from None

    def _commit(self) -> None:
        self.db.commit()

    @contextmanager
    def _durability(self, durable: bool) -> Iterator[None]:
        if not durable:
            # This transaction's commit does not wait for the server's WAL flush: it
            # survives this station being killed, not the server losing power. The
            # next durable commit flushes the WAL up to itself, and so this one too.
            self._execute("SET LOCAL synchronous_commit TO OFF")
        yield

    def init_batch(self, name: str, spec_sha256: str, size: int, serials: Iterable[str]) -> bool:
        self._execute("SELECT pg_advisory_xact_lock(7263012)")
        if self._check_batch(name, spec_sha256):
            self.db.commit()
            return False
        self._execute(
            "INSERT INTO factory_batches VALUES (%s, %s, %s, %s)",
            (name, spec_sha256, size, time.time()),
        )
        copy_sql = "COPY factory_devices (batch, seq, serial, state) FROM STDIN"
        with self.db.cursor() as cur, cur.copy(copy_sql) as copy:
            for i, s in enumerate(serials):
                copy.write_row((name, i, s, FREE))
        self.db.commit()
        return True

    def claim(self, batch: str, station: str) -> DeviceRow | None:
        # Not durable by itself: a claim lost with the server's power frees the serial
        # again, and no chip is burned before a durable commit, which flushes it too.
        self._execute("SET LOCAL synchronous_commit TO OFF")
        cur = self._execute(
            f"SELECT {self._COLUMNS} FROM factory_devices WHERE batch = %s AND state = %s "  # noqa: S608 - constant SQL fragments
            "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
            (batch, FREE),
        )
        found = cur.fetchone()
        if found is None:
            self.db.commit()
            return None
        row = self._row(found)
        row.station = station
        row.state = ALLOCATED
        row.stamp(ALLOCATED)
        self._execute(
            "UPDATE factory_devices SET state = %s, station = %s, record = %s, updated = %s "
            "WHERE batch = %s AND seq = %s",
            (ALLOCATED, station, json.dumps(row.record), time.time(), batch, row.seq),
        )
        self.db.commit()
        return row

    def close(self) -> None:
        self.db.close()
