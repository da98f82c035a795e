"""The audit report as SARIF 2.1.0, the format GitHub code scanning takes.

One run; the tool's ``rules`` are every audit rule, each with a ``security-severity``
property (GitHub grades alerts by it: 9.0+ critical, 7.0+ high, 4.0+ medium, else low)
and the ``security`` tag. Each finding is a result whose location is the input it concerns
(the ``sdkconfig`` line for a Kconfig option), with a fingerprint that stays stable across
runs so that code scanning tracks it. Paths under ``base`` are written relative to it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from espsec import __version__
from espsec.audit.findings import Finding, Report, Severity

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/espressif/esp-idf/blob/master/docs/en/security/security.rst"

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _uri(path: str, base: Path | None) -> str:
    if "://" in path:
        return path
    p = Path(path)
    if base is not None:
        try:
            return Path(os.path.relpath(p.resolve(), base.resolve())).as_posix()
        except ValueError:
            pass
    return p.resolve().as_uri() if p.is_absolute() else p.as_posix()


def _location(finding: Finding, base: Path | None) -> dict[str, Any]:
    located = next((e for e in finding.evidence if e.line), None)
    path = located.source if located is not None else finding.subject
    # GitHub code scanning wants a line; a binary input (image, eFuse file) gets line 1
    # and its byte offsets stay in the result's evidence.
    region = {"startLine": located.line if located is not None and located.line else 1}
    return {"physicalLocation": {"artifactLocation": {"uri": _uri(path, base)}, "region": region}}


def _fingerprint(finding: Finding) -> str:
    text = "\0".join((finding.rule, finding.subject, finding.advisory or "", finding.message))
    return hashlib.sha256(text.encode()).hexdigest()


def to_sarif(report: Report, *, base: Path | None = None) -> dict[str, Any]:
    """The SARIF log of ``report`` (``base``: the folder URIs are made relative to)."""
    index = {rule.id: i for i, rule in enumerate(report.rules)}
    rules = [
        {
            "id": rule.id,
            "name": rule.name,
            "shortDescription": {"text": rule.title},
            "fullDescription": {"text": f"{rule.title}. Enforces {rule.guide}."},
            "help": {
                "text": f"{rule.fix}\nGuide: {rule.guide}",
                "markdown": f"**Fix:** {rule.fix}\n\n**Guide:** {rule.guide}",
            },
            "helpUri": INFORMATION_URI,
            "defaultConfiguration": {"level": _LEVEL[rule.severity]},
            "properties": {
                "tags": ["security"],
                "security-severity": _SECURITY_SEVERITY[rule.severity],
                "precision": "high",
            },
        }
        for rule in report.rules
    ]
    results = []
    for f in report.findings:
        evidence = "; ".join(e.describe() for e in f.evidence)
        text = f"{f.message}. Evidence: {evidence}. Fix: {f.fix}"
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": _LEVEL[f.severity],
            "message": {"text": text},
            "locations": [_location(f, base)],
            "partialFingerprints": {"espsecFinding/v1": _fingerprint(f)},
            "properties": {
                "severity": f.severity.label,
                "security-severity": _SECURITY_SEVERITY[f.severity],
                "subject": f.subject,
                "evidence": [e.to_json() for e in f.evidence],
            },
        }
        if f.advisory is not None:
            result["properties"]["advisory"] = f.advisory
            result["properties"]["advisoryUri"] = f.help_uri
        results.append(result)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "espsec",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "results": results,
        "properties": {
            "profile": report.profile.value,
            "inputs": list(report.inputs),
            "database": report.database,
        },
    }
    if base is not None:
        run["originalUriBaseIds"] = {"SRCROOT": {"uri": base.resolve().as_uri() + "/"}}
        for result in results:
            loc = result["locations"][0]["physicalLocation"]["artifactLocation"]
            if "://" not in loc["uri"] and not loc["uri"].startswith("/"):
                loc["uriBaseId"] = "SRCROOT"
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
