"""Fleet OTA server: verified releases, cohorts, staged rollouts, device posture, and
device check-ins answered with signed manifests.

Python API: :func:`init_fleet` makes a state folder, :class:`FleetService` is the logic
(on SQLite or PostgreSQL, :mod:`espsec.fleet.db`), :func:`start_server` / :func:`serve`
run it over HTTPS (Starlette on uvicorn; devices and admin on separate listeners, one or
several processes), :class:`AdminClient` drives the admin API. The fleet talks to
devices only over HTTPS; it never imports :mod:`espsec.device`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from espsec._lazy import lazy_exports

if TYPE_CHECKING:
    from espsec.fleet.admin import AdminClient
    from espsec.fleet.config import FleetConfig, digests_from, init_fleet, load_config
    from espsec.fleet.server import Limits, RunningServer, serve, start_server
    from espsec.fleet.service import FleetService, decide

_LAZY = {
    "AdminClient": "espsec.fleet.admin",
    "FleetConfig": "espsec.fleet.config",
    "FleetService": "espsec.fleet.service",
    "Limits": "espsec.fleet.server",
    "RunningServer": "espsec.fleet.server",
    "decide": "espsec.fleet.service",
    "digests_from": "espsec.fleet.config",
    "init_fleet": "espsec.fleet.config",
    "load_config": "espsec.fleet.config",
    "serve": "espsec.fleet.server",
    "start_server": "espsec.fleet.server",
}
"""Where each public name lives, loaded on first use: the admin commands load no server, SQL or
Starlette."""


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "AdminClient",
    "FleetConfig",
    "FleetService",
    "Limits",
    "RunningServer",
    "decide",
    "digests_from",
    "init_fleet",
    "load_config",
    "serve",
    "start_server",
]
