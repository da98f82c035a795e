"""Power loss during a fleet update: cut after every flash and eFuse write, in turn.

Every write of one update cycle counts: the NVS writes of the OTA client (manifest
counter, pending-update record), ``esp_ota_begin``'s erases, each ``esp_ota_write``,
``esp_ota_set_boot_partition``, the bootloader's PENDING_VERIFY rewrite, the
confirmation and its anti-rollback eFuse burn. After each cut the device must boot a
valid app (the old one or the new one, never an app below the eFuse secure version),
and the next update cycles must finish the job: the new app confirmed, or the update
reported as rolled back with the old app running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from espsec import secure_boot
from espsec.device import FaultPlan, OtaOutcome, PowerCut, VirtualDevice, run_ota
from espsec.device.ota_state import OtaNvs
from espsec.efuse import security_state

from .test_ota_e2e import Fleet, base, provision, release, running_fleet

__all__ = ["base", "release"]  # module fixtures shared with test_ota_e2e

SHARDS = 4
"""The cut points are spread over this many tests (for pytest-xdist)."""
MAX_WRITES = 400


@pytest.fixture(scope="module")
def pl_fleet(
    tmp_path_factory: pytest.TempPathFactory,
    k0: secure_boot.PrivateKey,
    release: Callable[..., bytes],
) -> Iterator[Fleet]:
    state: Path = tmp_path_factory.mktemp("pl") / "fleet"
    with running_fleet(state, [secure_boot.key_digest(k0)]) as fleet:
        fleet.publish(release("2.0.0", 2))
        yield fleet


@pytest.fixture(scope="module")
def writes_per_update(base: VirtualDevice, pl_fleet: Fleet) -> int:
    dev = provision(base, pl_fleet, "cut-ref")
    dev.arm(None)
    assert run_ota(dev).outcome is OtaOutcome.UPDATED
    return dev.counter.total


def _settle(dev: VirtualDevice) -> OtaOutcome:
    """Run update cycles until the fleet has nothing more to offer."""
    outcomes = []
    for _ in range(4):
        report = run_ota(dev)
        outcomes.append(report.outcome)
        if report.outcome is OtaOutcome.NO_UPDATE:
            return outcomes[-2] if len(outcomes) > 1 else report.outcome
    pytest.fail(f"no settled state after {outcomes}")


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS))
def test_power_cut_after_any_write_of_an_update_always_boots_a_valid_app(
    shard: int, base: VirtualDevice, pl_fleet: Fleet, writes_per_update: int
) -> None:
    assert writes_per_update > 40  # NVS, erases, writes, otadata, eFuse: all counted
    finished = seen_cuts = 0
    for n in range(shard, MAX_WRITES, SHARDS):
        dev = provision(base, pl_fleet, f"cut-{n:03d}")
        dev.arm(FaultPlan(n))
        try:
            run_ota(dev)
        except PowerCut:
            seen_cuts += 1
        else:  # n is past the last write of the update: done
            finished += 1
            break
        # power back on: the old app or the new one runs, never one below the eFuse
        boot = dev.boot()
        assert boot.ok and boot.app is not None, (n, boot.refusal)
        assert (boot.app.partition, boot.app.version) in {("ota_0", "1.0.0"), ("ota_1", "2.0.0")}
        assert boot.app.secure_version is not None
        assert security_state(dev.efuses).secure_version <= boot.app.secure_version, n
        # the client finishes (or re-does) the update on its next cycles
        _settle(dev)
        final = dev.boot()
        assert final.ok and final.app is not None, n
        version = (final.app.partition, final.app.version, final.app.ota_state)
        efuse_version = security_state(dev.efuses).secure_version
        row = pl_fleet.device(f"cut-{n:03d}")
        assert row is not None
        if version == ("ota_1", "2.0.0", "VALID"):
            assert efuse_version == 2, n
            assert row["last_outcome"] == "updated", n
        else:  # the new app was cut before confirming itself: the bootloader aborted it
            assert version == ("ota_0", "1.0.0", "VALID"), (n, version)
            assert efuse_version == 1, n
            assert row["last_outcome"] == "rolled_back", (n, row)
        assert dev.running is not None and OtaNvs(dev.running).pending() is None, n
    assert finished == 1
    assert seen_cuts >= (writes_per_update - shard) // SHARDS
