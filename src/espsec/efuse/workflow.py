"""The ``espsec efuse`` burns as library calls, on a virtual eFuse file.

Every burn is staged whole first (espefuse's one-time-programmable rules) and checked
against the plan policy (:class:`~espsec.efuse.BurnPlan`): a burn that would brick or
weaken the chip is refused unless its finding code is in ``allow``. The file is written
only when nothing refuses and every bit can be burned.

Example::

    from espsec import efuse
    from espsec.efuse.workflow import burn_file

    chip = efuse.load("efuse.bin")
    result = burn_file(chip, "efuse.bin", [efuse.BurnField("SECURE_VERSION", 1)])
    result.outcome  # BurnOutcome.BURNED
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from espsec._io import PathLike, read_bytes
from espsec.efuse.burn import Operation
from espsec.efuse.keys import KeyFiles, PemDigest, PemScheme
from espsec.efuse.model import Efuses, save
from espsec.efuse.plan import BurnPlan, PlanReport, build_operations, parse_plan
from espsec.errors import UsageError, with_source


class BurnOutcome(StrEnum):
    """What a burn did to the file."""

    REFUSED = "refused"
    """The policy refused the burn: nothing burned."""
    PLANNED = "planned"
    """A dry run that nothing refuses: nothing burned."""
    NOTHING = "nothing"
    """Every requested bit was already burned."""
    BURNED = "burned"
    """Burned and the file saved."""


@dataclass(frozen=True)
class FileBurn:
    """The plan report of a burn and what happened to the eFuse file."""

    report: PlanReport
    outcome: BurnOutcome
    path: Path

    @property
    def applied(self) -> bool:
        return self.outcome is BurnOutcome.BURNED

    def to_dict(self) -> dict[str, Any]:
        return self.report.to_dict() | {"applied": self.applied}


def burn_file(
    efuses: Efuses,
    path: PathLike,
    operations: Iterable[Operation],
    *,
    allow: Iterable[str] = (),
    apply: bool = True,
) -> FileBurn:
    """Stage ``operations`` on ``efuses``, check the policy, and (with ``apply``, unless
    refused) burn them and save ``efuses`` to ``path``.

    An operation the chip cannot take raises its error (one line naming the field or
    block); a policy refusal is a :attr:`BurnOutcome.REFUSED` result, not an error.
    """
    report = BurnPlan(operations, allow=allow).check(efuses, strict=True)
    if report.refused:
        outcome = BurnOutcome.REFUSED
    elif not apply:
        outcome = BurnOutcome.PLANNED
    elif report.staged is None or report.staged.empty:
        outcome = BurnOutcome.NOTHING
    else:
        report.staged.commit(efuses)
        with with_source(str(path)):
            save(efuses, path)
        outcome = BurnOutcome.BURNED
    return FileBurn(report, outcome, Path(path))


def burn_plan_file(
    efuses: Efuses,
    path: PathLike,
    plan_file: PathLike,
    pem_digest: PemDigest,
    *,
    allow: Iterable[str] = (),
    apply: bool = False,
    pem_scheme: PemScheme | None = None,
) -> FileBurn:
    """:func:`burn_file` with the operations of a plan file (one espefuse-like command a
    line; key files relative to the plan). Errors in the plan name the plan file.

    ``pem_digest`` computes the Secure Boot digest of a PEM key a ``burn-key-digest``
    line names, ``pem_scheme`` its scheme (see :mod:`espsec.efuse.keys`).
    """
    plan = Path(plan_file)
    text = read_bytes(plan, what="plan file")
    with with_source(str(plan)):
        try:
            lines = parse_plan(text.decode())
        except UnicodeDecodeError:
            raise UsageError("a plan file is text (UTF-8)") from None
        files = KeyFiles(plan.parent, pem_digest, pem_scheme)
        ops = build_operations(efuses.layout, lines, files)
        # A request the chip refuses on staging is an error in the plan.
        return burn_file(efuses, path, ops, allow=allow, apply=apply)
