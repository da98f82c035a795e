"""The fleet database: migrations with a version table, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from espsec.errors import EspsecError
from espsec.fleet import db as fleet_db
from espsec.fleet.db import MIGRATIONS, SCHEMA_VERSION, SQLITE, FleetDB


def _version_1(database: str | Path) -> None:
    """A database as the first fleet made it: schema version 1, no version table."""
    if isinstance(database, Path):
        with sqlite3.connect(database) as conn:
            for statement in MIGRATIONS[0][1]:
                conn.execute(SQLITE.schema(statement))
            conn.execute(
                "INSERT INTO devices (device_id, cohort, counter) VALUES ('old-dev', 'beta', 41)"
            )
    else:
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            for statement in MIGRATIONS[0][1]:
                conn.execute(fleet_db.POSTGRESQL.schema(statement))
            conn.execute(
                "INSERT INTO devices (device_id, cohort, counter) VALUES ('old-dev', 'beta', 41)"
            )


@pytest.fixture
def target(database: str | None, tmp_path: Path) -> str | Path:
    return tmp_path / "fleet.sqlite3" if database is None else database


def test_old_database_is_migrated_and_keeps_its_counters(target: str | Path) -> None:
    _version_1(target)
    store = FleetDB(target)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        row = store.device("old-dev")
        assert row is not None and (row.cohort, row.counter, row.posture) == ("beta", 41, None)
        assert store.active_rollouts() == []
    finally:
        store.close()
    if isinstance(target, Path):  # a copy was taken before migrating
        (backup,) = fleet_db.sqlite_backup_files(target)
        with sqlite3.connect(backup) as conn:
            assert conn.execute("SELECT counter FROM devices").fetchone() == (41,)
    again = FleetDB(target)  # opening again changes nothing
    try:
        assert again.schema_version() == SCHEMA_VERSION
    finally:
        again.close()


def test_database_newer_than_the_code_is_refused(target: str | Path) -> None:
    FleetDB(target).close()
    if isinstance(target, Path):
        with sqlite3.connect(target) as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    else:
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    with pytest.raises(EspsecError, match="schema version 99, newer than this espsec"):
        FleetDB(target)


def test_servers_starting_together_migrate_once(target: str | Path) -> None:
    errors: list[BaseException] = []
    stores: list[FleetDB] = []

    def open_one() -> None:
        try:
            stores.append(FleetDB(target, busy_timeout=5.0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == [] and len(stores) == 4
        rows = stores[0]._all("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    finally:
        for s in stores:
            s.close()


def test_password_in_the_database_url_is_refused_on_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from espsec.cli.main import main

    result = CliRunner().invoke(
        main,
        ["fleet", "serve", "--database", "postgresql://u:secret@127.0.0.1/db", str(tmp_path)],
    )
    assert result.exit_code == 2 and "password" in result.output
    assert "u:secret" not in result.output
