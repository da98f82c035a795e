"""The fleet's public test fixtures, for devices that leave the factory and check in."""

from __future__ import annotations

import pytest

from ..fleet.conftest import make_fleet, signer  # noqa: F401 - fixtures used here


@pytest.fixture
def database() -> None:
    """The fleet's database: SQLite in its state folder (the factory tests are about the
    devices' identities; tests/fleet runs every fleet test on PostgreSQL too)."""
    return None
