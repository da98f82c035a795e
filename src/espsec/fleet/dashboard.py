"""The fleet dashboard (placeholder; filled in below)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from espsec.fleet.service import FleetService


def dashboard_routes(service: FleetService) -> list[BaseRoute]:
    return []
