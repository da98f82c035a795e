"""Staged rollouts: which devices get a release, and when a rollout halts by itself.

A rollout offers a release to a growing share of one cohort (``--steps 1,10,50,100``
percent). A device is in the share when its *bucket*, a hash of the release id and its
device id, is below the step's percentage: the choice is deterministic, the same on
every server process, and a device chosen at 1 % stays chosen at 10 %. Devices outside
the share keep the cohort's assigned release.

The rollout **halts** by itself when, among the outcomes reported for the release by
the cohort in the last ``window`` seconds, the share of failures (``failed`` and
``refused``) or of rollbacks passes the threshold; the halt and its reason are kept.
Otherwise each step is held for ``step_interval`` seconds and the next one follows; after
the last (100 %) the cohort's release becomes the rollout's and the rollout is
``completed``. ``pause`` holds the current step; ``resume`` continues (after a halt, it
counts outcomes only from the resume on); ``abort`` stops offering the release.

Everything here is pure: :mod:`espsec.fleet.service` reads the counts and writes the
changes in one transaction.
"""

from __future__ import annotations

import hashlib
from typing import Any

from espsec.errors import UsageError
from espsec.fleet.db import RolloutRow

RUNNING = "running"
PAUSED = "paused"
HALTED = "halted"
ABORTED = "aborted"
COMPLETED = "completed"
ACTIVE_STATES = (RUNNING, PAUSED, HALTED)
OFFERING_STATES = (RUNNING, PAUSED)
"""States in which the devices in the share are offered the release."""
FAILURES = ("failed", "refused")
ROLLBACKS = ("rolled_back",)
MAX_STEPS = 20
BUCKETS = 10_000


def parse_steps(text: str) -> tuple[float, ...]:
    """``1,10,50,100``: increasing percentages in (0, 100], ending at 100."""
    try:
        steps = tuple(float(s) for s in text.split(","))
    except ValueError:
        raise UsageError(f"steps {text!r} must be percentages such as 1,10,50,100") from None
    if not steps or len(steps) > MAX_STEPS:
        raise UsageError(f"give 1 to {MAX_STEPS} steps, not {len(steps)}")
    if any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
        raise UsageError(f"steps {text!r} must increase, each above 0 and at most 100")
    if steps[-1] != 100:
        raise UsageError(f"the last step must be 100 (the whole cohort), not {steps[-1]:g}")
    return steps


def steps_text(steps: tuple[float, ...]) -> str:
    return ",".join(f"{s:g}" for s in steps)


def bucket(release_id: str, device_id: str) -> int:
    """The device's place in the rollout of ``release_id``, 0 to 9999."""
    digest = hashlib.sha256(f"espsec-rollout\0{release_id}\0{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def selected(rollout: RolloutRow, device_id: str) -> bool:
    """Whether the rollout offers its release to ``device_id`` now."""
    if rollout.state not in OFFERING_STATES:
        return False
    return bucket(rollout.release_id, device_id) < round(rollout.percent * BUCKETS / 100)


def window_start(rollout: RolloutRow, now: int) -> int:
    return max(now - rollout.window_s, rollout.window_from)


def rates(counts: dict[str, int]) -> tuple[int, int, int]:
    """(outcomes, failures, rollbacks) from per-outcome counts."""
    failures = sum(counts.get(o, 0) for o in FAILURES)
    rollbacks = sum(counts.get(o, 0) for o in ROLLBACKS)
    return sum(counts.values()), failures, rollbacks


def evaluate(rollout: RolloutRow, counts: dict[str, int], now: int) -> dict[str, Any] | None:
    """The change a running rollout needs now (halt, next step, completion), or ``None``."""
    if rollout.state != RUNNING:
        return None
    outcomes, failures, rollbacks = rates(counts)
    if outcomes and outcomes >= rollout.min_reports:
        for name, n in (("failure", failures), ("rollback", rollbacks)):
            if n / outcomes > rollout.threshold:
                return {
                    "state": HALTED,
                    "updated_at": now,
                    "halt_reason": (
                        f"{name} rate {n}/{outcomes} = {n / outcomes:.1%} passed the "
                        f"threshold {rollout.threshold:.1%} in the last "
                        f"{_duration(rollout.window_s)} (at step {rollout.percent:g}%)"
                    ),
                }
    if now - rollout.step_started_at < rollout.step_interval_s:
        return None
    if rollout.step + 1 >= len(rollout.percents):
        return {"state": COMPLETED, "updated_at": now}
    return {"step": rollout.step + 1, "step_started_at": now, "updated_at": now}


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``1h``, ``2d`` as seconds (1 s to 30 days)."""
    units = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    number, unit = raw, "s"
    for name in sorted(units, key=len, reverse=True):
        if raw.endswith(name):
            number, unit = raw[: -len(name)], name
            break
    if not number.isdigit() or len(number) > 9:
        raise UsageError(f"duration {text!r} must look like 90s, 15m, 1h or 2d")
    seconds = int(number) * units[unit]
    if not 1 <= seconds <= 30 * 86400:
        raise UsageError(f"duration {text!r} must be between 1 s and 30 days")
    return seconds


def to_json(rollout: RolloutRow) -> dict[str, Any]:
    return {
        "id": rollout.id,
        "release_id": rollout.release_id,
        "cohort": rollout.cohort,
        "steps": list(rollout.percents),
        "step": rollout.step,
        "percent": rollout.percent,
        "state": rollout.state,
        "halt_on_failure_rate": rollout.threshold,
        "window_s": rollout.window_s,
        "step_interval_s": rollout.step_interval_s,
        "min_reports": rollout.min_reports,
        "created_at": rollout.created_at,
        "step_started_at": rollout.step_started_at,
        "window_from": rollout.window_from,
        "updated_at": rollout.updated_at,
        "halt_reason": rollout.halt_reason,
    }
