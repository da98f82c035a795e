"""Staged rollouts: deterministic selection, steps on the clock, and the automatic halt on
simulated failures and rollbacks (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from espsec import ota
from espsec.cli.main import main
from espsec.errors import UsageError
from espsec.fleet import rollout as policy
from espsec.fleet.service import FleetService
from espsec.ota import CheckIn, Manifest, ManifestTrust, OutcomeReport

from .conftest import Fleet

HOUR = 3600


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@dataclass
class Device:
    """A device talking to the service directly (the HTTP path is tested elsewhere)."""

    service: FleetService
    device_id: str
    key: ota.DecryptionKey
    trust: ManifestTrust
    clock: Clock

    def check_in(self) -> Manifest:
        request = CheckIn(
            self.device_id,
            "esp32p4",
            "1.0.0",
            1,
            "valid",
            self.trust.begin_check_in(),
            last_counter=self.trust.last_counter,
            enc_key_id=ota.recipient_id(self.key),
        )
        raw = self.service.check_in(request.to_bytes(), client_id=self.device_id)
        return self.trust.accept(raw, now=self.clock.now)

    def report(self, manifest: Manifest, outcome: str) -> None:
        assert manifest.release is not None
        report = OutcomeReport(
            self.device_id, manifest.release.release_id, outcome, "simulated", manifest.counter
        )
        self.service.report(report.to_bytes(), client_id=self.device_id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rollout_fleet(
    make_fleet: Callable[..., Fleet], clock: Clock, release_factory: Callable[..., bytes]
) -> tuple[Fleet, str, str]:
    """A fleet on a fake clock, with a baseline release for the cohort and a new one."""
    fleet = make_fleet(clock=clock, tick=None)
    with fleet.admin() as admin:
        base = admin.upload_release(release_factory("1.5.0", 1))["id"]
        admin.assign_cohort("default", base)
        new = admin.upload_release(release_factory("2.0.0", 3))["id"]
    return fleet, base, new


def _devices(fleet: Fleet, clock: Clock, key: ota.DecryptionKey, n: int) -> list[Device]:
    return [
        Device(
            fleet.server.service,
            f"dev-{i:04d}",
            key,
            ManifestTrust(f"dev-{i:04d}", fleet.manifest_key),  # type: ignore[arg-type]
            clock,
        )
        for i in range(n)
    ]


def _offers(devices: list[Device], release_id: str) -> dict[str, Manifest]:
    offers = {}
    for d in devices:
        m = d.check_in()
        if m.release is not None and m.release.release_id == release_id:
            offers[d.device_id] = m
    return offers


def test_devices_are_selected_deterministically_by_a_hash_of_their_id() -> None:
    ids = [f"dev-{i:05d}" for i in range(5000)]
    picked = {pct: {d for d in ids if policy.bucket("rel-a", d) < pct * 100} for pct in (1, 10, 50)}
    assert picked[1] <= picked[10] <= picked[50]  # chosen at 1 % stays chosen at 10 %
    assert 25 <= len(picked[1]) <= 75 and 2200 <= len(picked[50]) <= 2800
    assert [policy.bucket("rel-a", d) for d in ids[:50]] == [
        policy.bucket("rel-a", d) for d in ids[:50]
    ]
    other = {d for d in ids if policy.bucket("rel-b", d) < 1000}
    assert other != picked[10]  # another release starts with other devices


def test_rollout_offers_the_release_only_to_the_current_share(
    rollout_fleet: tuple[Fleet, str, str], clock: Clock, device_key: ota.DecryptionKey
) -> None:
    fleet, base, new = rollout_fleet
    devices = _devices(fleet, clock, device_key, 200)
    with fleet.admin() as admin:
        status = admin.start_rollout(new, "default", steps="10,50,100", window_s=HOUR)
    assert (status["state"], status["percent"]) == ("running", 10)
    offered = _offers(devices, new)
    expected = {d.device_id for d in devices if policy.bucket(new, d.device_id) < 1000}
    assert set(offered) == expected and 5 <= len(expected) <= 40
    others = [d for d in devices if d.device_id not in expected][:5]
    for d in others:  # the rest keep the cohort's release
        m = d.check_in()
        assert m.release is not None and m.release.release_id == base


def test_rollout_halts_by_itself_when_the_failure_rate_passes_the_threshold(
    rollout_fleet: tuple[Fleet, str, str], clock: Clock, device_key: ota.DecryptionKey
) -> None:
    fleet, base, new = rollout_fleet
    devices = {d.device_id: d for d in _devices(fleet, clock, device_key, 300)}
    with fleet.admin() as admin:
        rollout_id = admin.start_rollout(
            new, "default", steps="10,100", halt_on_failure_rate=0.2, window_s=HOUR
        )["id"]
    offered = _offers(list(devices.values()), new)
    assert len(offered) >= 10
    names = sorted(offered)
    for name in names[:7]:
        devices[name].report(offered[name], "updated")
    for name in names[7:9]:  # 2 of 9: 22 % > 20 %
        clock.now += 1
        devices[name].report(offered[name], "failed")
    with fleet.admin() as admin:
        status = admin.rollout(rollout_id)
    assert status["state"] == "halted"
    assert "failure rate 2/9 = 22.2% passed the threshold 20.0%" in status["halt_reason"]
    assert [s["state"] for s in status["samples"]][-1] == "halted"
    # Halted: nobody is offered the release any more, not even the devices already chosen.
    m = devices[names[-1]].check_in()
    assert m.release is not None and m.release.release_id == base
    env = {"ESPSEC_FLEET_TOKEN": fleet.token}
    conn = ["--url", fleet.admin_url, "--ca", str(fleet.state / "tls/ca.pem")]
    result = CliRunner().invoke(
        main, ["fleet", "rollout", "status", *conn, str(rollout_id)], env=env
    )
    assert result.exit_code == 1 and "halted: failure rate 2/9" in result.output
    # Resumed by an operator: outcomes count from the resume on.
    result = CliRunner().invoke(
        main, ["fleet", "rollout", "resume", *conn, "--json", str(rollout_id)], env=env
    )
    assert result.exit_code == 0, result.output
    resumed = json.loads(result.output)
    assert resumed["state"] == "running" and resumed["window"]["outcomes"] == 0


def test_rollout_halts_on_rollbacks(
    rollout_fleet: tuple[Fleet, str, str], clock: Clock, device_key: ota.DecryptionKey
) -> None:
    fleet, _, new = rollout_fleet
    devices = {d.device_id: d for d in _devices(fleet, clock, device_key, 100)}
    with fleet.admin() as admin:
        rollout_id = admin.start_rollout(
            new, "default", steps="50,100", halt_on_failure_rate=0.05, window_s=HOUR
        )["id"]
    offered = _offers(list(devices.values()), new)
    first, second, *_ = sorted(offered)
    devices[first].report(offered[first], "updated")
    devices[second].report(offered[second], "rolled_back")
    with fleet.admin() as admin:
        status = admin.rollout(rollout_id)
    assert status["state"] == "halted" and "rollback rate 1/2" in status["halt_reason"]


def test_failures_older_than_the_window_do_not_halt(
    rollout_fleet: tuple[Fleet, str, str], clock: Clock, device_key: ota.DecryptionKey
) -> None:
    fleet, _, new = rollout_fleet
    devices = {d.device_id: d for d in _devices(fleet, clock, device_key, 100)}
    with fleet.admin() as admin:
        rollout_id = admin.start_rollout(
            new, "default", steps="50,100", halt_on_failure_rate=0.5, window_s=HOUR,
            step_interval_s=10 * HOUR, min_reports=3,
        )["id"]  # fmt: skip
    offered = _offers(list(devices.values()), new)
    names = sorted(offered)
    devices[names[0]].report(offered[names[0]], "failed")
    devices[names[1]].report(offered[names[1]], "failed")  # 2 < min_reports: no verdict yet
    clock.now += 2 * HOUR
    for name in names[2:5]:
        devices[name].report(offered[name], "updated")
    with fleet.admin() as admin:
        status = admin.rollout(rollout_id)
    assert status["state"] == "running"
    assert status["window"]["outcomes"] == 3 and status["window"]["failures"] == 0


def test_rollout_steps_up_on_the_clock_and_completes(
    rollout_fleet: tuple[Fleet, str, str], clock: Clock, device_key: ota.DecryptionKey
) -> None:
    fleet, _, new = rollout_fleet
    devices = _devices(fleet, clock, device_key, 60)
    with fleet.admin() as admin:
        rollout_id = admin.start_rollout(
            new, "default", steps="1,50,100", window_s=HOUR, step_interval_s=HOUR
        )["id"]
        clock.now += HOUR - 1
        assert admin.rollout(rollout_id)["percent"] == 1
        clock.now += 1
        assert admin.rollout(rollout_id)["percent"] == 50
        assert 15 <= len(_offers(devices, new)) <= 45
        clock.now += HOUR
        assert admin.rollout(rollout_id)["percent"] == 100
        assert len(_offers(devices, new)) == 60
        clock.now += HOUR
        status = admin.rollout(rollout_id)
        assert status["state"] == "completed"
        assert {c["name"]: c["release_id"] for c in admin.cohorts()}["default"] == new
        assert [s["percent"] for s in status["samples"]][-3:] == [50, 100, 100]
    assert len(_offers(devices, new)) == 60  # the cohort's release now


def test_pause_holds_the_step_and_abort_stops_the_offer(
    rollout_fleet: tuple[Fleet, str, str], clock: Clock, device_key: ota.DecryptionKey
) -> None:
    fleet, base, new = rollout_fleet
    devices = _devices(fleet, clock, device_key, 100)
    with fleet.admin() as admin:
        rollout_id = admin.start_rollout(new, "default", steps="50,100", window_s=HOUR)["id"]
        assert admin.rollout_action(rollout_id, "pause")["state"] == "paused"
        clock.now += 5 * HOUR
        assert admin.rollout(rollout_id)["percent"] == 50  # held
        assert _offers(devices, new)  # the chosen half keeps being offered
        assert admin.rollout_action(rollout_id, "abort")["state"] == "aborted"
        assert not _offers(devices, new)
        with pytest.raises(ota.HttpError) as info:
            admin.rollout_action(rollout_id, "resume")
        assert info.value.status == 409
        assert admin.start_rollout(new, "default", steps="100")["state"] == "running"
        with pytest.raises(ota.HttpError) as info:
            admin.start_rollout(new, "default", steps="100")  # one at a time per cohort
        assert info.value.status == 409
    m = devices[0].check_in()
    assert m.release is not None and m.release.release_id in (base, new)


@pytest.mark.parametrize(
    "steps", ["", "0,100", "10,5,100", "10,50", "abc", "1," * 30 + "100", "50,50,100"]
)
def test_bad_steps_are_a_usage_error(steps: str) -> None:
    with pytest.raises(UsageError):
        policy.parse_steps(steps)


def test_rollout_start_cli_checks_its_arguments(fleet: Fleet) -> None:
    env = {"ESPSEC_FLEET_TOKEN": fleet.token}
    conn = ["--url", fleet.admin_url, "--ca", str(fleet.state / "tls/ca.pem")]
    for extra in (["--steps", "10,5"], ["--window", "forever"], ["--halt-on-failure-rate", "2"]):
        result = CliRunner().invoke(
            main, ["fleet", "rollout", "start", *conn, *extra, "0" * 16], env=env
        )
        assert result.exit_code == 2, result.output
    result = CliRunner().invoke(main, ["fleet", "rollout", "start", *conn, "0" * 16], env=env)
    assert result.exit_code == 1 and "no release" in result.output
