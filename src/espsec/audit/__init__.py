"""Security audit: a production-readiness report over builds, devices and releases.

The audit reads any mix of inputs (:mod:`.inputs`: an ESP-IDF project, a virtual device
or a chip in download mode, an eFuse summary or file, app images, release bundles,
factory manifests, a Wi-Fi policy), runs every rule of :mod:`.rules` under a profile
(``production`` or ``development``) and matches the ESP-IDF versions it finds against the
signed advisory database of :mod:`.advisories`. The :class:`~.findings.Report` renders as
text, JSON, SARIF 2.1.0 (:mod:`.report_sarif`) or a self-contained HTML page
(:mod:`.report_html`).

Example::

    from espsec import audit

    report = audit.run_audit(["my-project/", "device/"], profile=audit.Profile.PRODUCTION)
    high = [f.rule for f in report.findings if f.severity >= audit.Severity.HIGH]
    report.fails(audit.Severity.HIGH)  # what ``espsec audit --fail-on high`` exits on
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from espsec._io import PathLike
from espsec._lazy import lazy_exports
from espsec.audit import advisories
from espsec.audit.advisories import Database, IdfVersion
from espsec.audit.findings import (
    Evidence,
    Finding,
    Profile,
    Report,
    RuleInfo,
    Severity,
    sort_findings,
)
from espsec.audit.rules import RULES, Context, Rule, run
from espsec.audit.subjects import Inputs

if TYPE_CHECKING:
    from espsec.audit.inputs import load_inputs

# The readers open virtual devices and ports: loaded on first use, so the rules and the
# subjects serve a caller that builds its own (the fleet's posture) without them.
_LAZY = {"load_inputs": "espsec.audit.inputs"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "RULES",
    "Database",
    "Evidence",
    "Finding",
    "IdfVersion",
    "Inputs",
    "Profile",
    "Report",
    "Rule",
    "RuleInfo",
    "Severity",
    "advisories",
    "audit_inputs",
    "load_inputs",
    "run_audit",
]


def audit_inputs(
    inputs: Inputs,
    *,
    profile: Profile = Profile.PRODUCTION,
    database: Database | None = None,
    as_of: dt.date | None = None,
) -> Report:
    """Run every rule over ``inputs`` (``as_of``: the date support periods are judged on)."""
    db = database if database is not None else advisories.load()
    ctx = Context(inputs, profile, db, as_of or dt.date.today())
    notes = []
    if inputs.versions and not inputs.configs and not any(v.config for v in inputs.versions):
        notes.append(
            "no build configuration given: advisories were matched on version and chip only"
        )
    if not inputs.versions:
        notes.append("no ESP-IDF version found (no app image, bundle or project build)")
    return Report(
        profile=profile,
        inputs=tuple(inputs.described),
        rules=tuple(r.info() for r in RULES),
        findings=sort_findings(run(ctx)),
        database=db.describe(),
        notes=tuple(notes),
    )


def run_audit(
    paths: Sequence[str | Path],
    *,
    ports: Sequence[str] = (),
    chip: str | None = None,
    profile: Profile = Profile.PRODUCTION,
    data_dir: PathLike | None = None,
    as_of: dt.date | None = None,
) -> Report:
    """Load ``paths`` and ``ports`` and audit them with the newest advisory database
    (the packaged one, or one imported into ``data_dir``)."""
    from espsec.audit.inputs import load_inputs

    inputs = load_inputs(paths, ports=ports, chip=chip)
    return audit_inputs(inputs, profile=profile, database=advisories.load(data_dir), as_of=as_of)
