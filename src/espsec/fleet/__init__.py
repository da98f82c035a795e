"""Fleet OTA server: verified releases, cohorts, staged rollouts, device posture, and
device check-ins answered with signed manifests.

Python API: :func:`init_fleet` makes a state folder, :class:`FleetService` is the logic
(on SQLite or PostgreSQL, :mod:`espsec.fleet.db`), :func:`start_server` / :func:`serve`
run it over HTTPS (Starlette on uvicorn; devices and admin on separate listeners, one or
several processes), :class:`AdminClient` drives the admin API. The fleet talks to
devices only over HTTPS; it never imports :mod:`espsec.device`.
"""

from espsec.fleet.admin import AdminClient
from espsec.fleet.config import FleetConfig, digests_from, init_fleet, load_config
from espsec.fleet.server import Limits, RunningServer, serve, start_server
from espsec.fleet.service import FleetService, decide

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
