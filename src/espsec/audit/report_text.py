"""The audit report as plain text (what ``espsec audit`` prints)."""

from __future__ import annotations

from espsec.audit.findings import Report


def render_text(report: Report, *, verbose: bool = True) -> str:
    """Findings most severe first, each with its evidence, fix and guide section."""
    lines = [f"espsec audit, {report.profile.value} profile"]
    lines += [f"  input: {text}" for text in report.inputs]
    if report.database:
        lines.append(f"  {report.database}")
    lines += [f"  note: {text}" for text in report.notes]
    lines.append("")
    if not report.findings:
        lines.append("no findings")
    for f in report.findings:
        rule = report.rule(f.rule)
        lines.append(f"{f.severity.label.upper():8} {f.rule} {rule.name}: {f.message}")
        lines.append(f"         in {f.subject}")
        if verbose:
            lines += [f"         evidence: {e.describe()}" for e in f.evidence]
            lines.append(f"         fix: {f.fix}")
            lines.append(f"         guide: {rule.guide}")
    counts = ", ".join(f"{n} {label}" for label, n in report.counts().items())
    lines += ["", f"{len(report.findings)} findings: {counts}"]
    return "\n".join(lines) + "\n"
