"""The audit report as one self-contained HTML page.

Inline CSS, an inline SVG bar chart of findings per severity, one table row per finding
(rule, what was found where, evidence, fix, the guide section); no script, no external
resource, so the page opens the same from a CI artifact, an e-mail or a file share.
Everything that comes from an input is escaped.
"""

from __future__ import annotations

from html import escape

from espsec import __version__
from espsec.audit.findings import Report, Severity

COLOURS = {
    Severity.CRITICAL: "#7b1fa2",
    Severity.HIGH: "#c62828",
    Severity.MEDIUM: "#ef6c00",
    Severity.LOW: "#f9a825",
    Severity.INFO: "#607d8b",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#212121}
h1{font-size:1.5rem;margin:0 0 .25rem}
.meta{color:#555;font-size:.9rem;margin:.1rem 0}
.summary{display:flex;gap:2rem;align-items:center;margin:1.5rem 0}
.verdict{font-size:1.1rem;font-weight:600;padding:.5rem 1rem;border-radius:.3rem}
.pass{background:#e8f5e9;color:#1b5e20}.fail{background:#ffebee;color:#b71c1c}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #ddd;padding:.45rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}
.sev{color:#fff;border-radius:.25rem;padding:.1rem .4rem;font-size:.8rem;font-weight:600}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em}
ul.ev{margin:0;padding-left:1rem}
footer{margin-top:2rem;color:#777;font-size:.8rem}
"""


def _chart(report: Report) -> str:
    """Horizontal bars, one per severity, scaled to the largest count."""
    counts = report.counts()
    biggest = max(counts.values()) or 1
    width, bar_h, gap, label_w = 420, 22, 8, 80
    height = len(counts) * (bar_h + gap)
    rows = []
    for i, (label, n) in enumerate(counts.items()):
        y = i * (bar_h + gap)
        w = round((width - label_w - 40) * n / biggest)
        colour = COLOURS[Severity.parse(label)]
        rows.append(
            f'<text x="0" y="{y + 16}" font-size="13">{label}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{colour}">'
            f"<title>{n} {label}</title></rect>"
            f'<text x="{label_w + w + 6}" y="{y + 16}" font-size="13">{n}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" id="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="findings per severity">{"".join(rows)}</svg>'
    )


def render_html(report: Report, *, fail_on: Severity | None = None) -> str:
    """The page (``fail_on``: show pass/fail as ``--fail-on`` would judge it)."""
    total = len(report.findings)
    if fail_on is not None:
        failed = report.fails(fail_on)
        verdict = (
            f'<div class="verdict {"fail" if failed else "pass"}" id="verdict">'
            f"{'FAIL' if failed else 'PASS'} at --fail-on {fail_on.label}</div>"
        )
    else:
        worst = report.worst()
        verdict = (
            f'<div class="verdict {"fail" if worst and worst >= Severity.HIGH else "pass"}" '
            f'id="verdict">{total} findings'
            + (f", worst {worst.label}" if worst is not None else "")
            + "</div>"
        )
    rows = []
    for f in report.findings:
        rule = report.rule(f.rule)
        evidence = "".join(f"<li><code>{escape(e.describe())}</code></li>" for e in f.evidence)
        colour = COLOURS[f.severity]
        link = (
            f'<br><a href="{escape(f.help_uri, quote=True)}">{escape(f.advisory or "")}</a>'
            if f.help_uri
            else ""
        )
        rows.append(
            f'<tr class="finding" data-severity="{f.severity.label}">'
            f'<td><span class="sev" style="background:{colour}">{f.severity.label}</span></td>'
            f"<td><code>{escape(f.rule)}</code><br>{escape(rule.name)}</td>"
            f"<td>{escape(f.message)}<br><small>{escape(f.subject)}</small>{link}</td>"
            f'<td><ul class="ev">{evidence}</ul></td>'
            f"<td>{escape(f.fix)}</td>"
            f"<td><small>{escape(rule.guide)}</small></td></tr>"
        )
    table = (
        "<table><thead><tr><th>Severity</th><th>Rule</th><th>Finding</th><th>Evidence</th>"
        f"<th>Fix</th><th>Guide</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No findings.</p>"
    )
    inputs = "".join(f"<li>{escape(text)}</li>" for text in report.inputs)
    notes = "".join(f"<li>{escape(text)}</li>" for text in report.notes)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>espsec security audit ({escape(report.profile.value)})</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Security audit: production readiness</h1>"
        f'<p class="meta">Profile: <b>{escape(report.profile.value)}</b></p>'
        f'<p class="meta">{escape(report.database)}</p>'
        f'<ul class="meta">{inputs}</ul>'
        f'<div class="summary">{_chart(report)}{verdict}</div>'
        + (f'<ul class="meta">{notes}</ul>' if notes else "")
        + table
        + f"<footer>espsec {escape(__version__)}; rules enforce the ESP-IDF security guide "
        "(docs/en/security/security.rst).</footer></body></html>\n"
    )
