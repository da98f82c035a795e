"""``espsec audit``: the production-readiness report of a project, devices and releases."""

from __future__ import annotations

import json
from pathlib import Path

import click

from espsec._io import STDIO, declare_input, write_output
from espsec.chips import EFUSE_MODEL_CHIPS
from espsec.cli._common import (
    CHIP_PORT,
    EspsecCommand,
    chip_option,
    json_option,
    note,
    output_option,
)
from espsec.cli.advisories import data_dir_option, default_data_dir

FORMATS = ("text", "json", "sarif", "html")
_SEVERITIES = ("info", "low", "medium", "high", "critical")


def _format_of(output: Path | None, chosen: str | None) -> str:
    if chosen is not None:
        return chosen
    if output is None or str(output) == STDIO:
        return "text"
    name = output.name.lower()
    if name.endswith((".sarif", ".sarif.json")):
        return "sarif"
    if name.endswith((".html", ".htm")):
        return "html"
    if name.endswith(".json"):
        return "json"
    return "text"


@click.command("audit", cls=EspsecCommand)
@click.argument(
    "inputs",
    nargs=-1,
    type=click.Path(exists=True, path_type=Path),
    metavar="INPUT...",
)
@click.option(
    "--port",
    "ports",
    multiple=True,
    type=CHIP_PORT,
    help="A chip in download mode to read eFuses from (serial port or socket://HOST:PORT "
    "of espsec device serve); repeatable.",
)
@chip_option(
    chips=EFUSE_MODEL_CHIPS,
    required=False,
    help="Chip of an espefuse eFuse file without an espsec sidecar.",
)
@click.option(
    "--profile",
    type=click.Choice(("development", "production")),
    default="production",
    show_default=True,
    help="What is acceptable: a lab build, or a device about to ship.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="Report format for -o (default: from its suffix: .sarif, .html, .json, else text).",
)
@output_option(required=False, help="Write the report here ('-': standard output).")
@click.option(
    "--fail-on",
    type=click.Choice(_SEVERITIES),
    help="Exit 1 when a finding is this severe or worse (CI gating).",
)
@click.option("--brief", is_flag=True, help="Text: one line per finding, no evidence.")
@data_dir_option
@json_option
def group(
    inputs: tuple[Path, ...],
    ports: tuple[str, ...],
    chip: str | None,
    profile: str,
    fmt: str | None,
    output: Path | None,
    fail_on: str | None,
    brief: bool,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Audit ESP-IDF projects, devices, eFuse states, images and release bundles.

    INPUT is any mix of: a project folder (sdkconfig, build/), a virtual device folder,
    an espefuse JSON summary or virtual eFuse file, an app image, a release bundle, a
    factory manifest.jsonl, a Wi-Fi policy JSON. Every finding names its rule, severity,
    the guide section it enforces, the evidence and the fix.
    """
    from espsec.audit import Profile, Severity, run_audit
    from espsec.audit.report_text import render_text

    for path in inputs:
        if path.is_file():
            declare_input(path)
    if not inputs and not ports:
        raise click.UsageError("give at least one INPUT or --port")
    report = run_audit(
        list(inputs),
        ports=ports,
        chip=chip,
        profile=Profile(profile),
        data_dir=data_dir if data_dir is not None else default_data_dir(),
    )
    threshold = Severity.parse(fail_on) if fail_on else None
    if output is not None:
        kind = _format_of(output, fmt)
        if kind == "sarif":
            from espsec.audit.report_sarif import to_sarif

            text = json.dumps(to_sarif(report, base=Path.cwd()), indent=2) + "\n"
        elif kind == "html":
            from espsec.audit.report_html import render_html

            text = render_html(report, fail_on=threshold)
        elif kind == "json":
            text = json.dumps(report.to_json(), indent=2) + "\n"
        else:
            text = render_text(report, verbose=not brief)
        write_output(output, text.encode())
        if str(output) != STDIO:
            note(f"{kind} report -> {output}", output)
    elif fmt in ("sarif", "html"):
        raise click.UsageError(f"--format {fmt} needs -o FILE (or -o -)")
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    elif output is None or str(output) != STDIO:
        click.echo(render_text(report, verbose=not brief), nl=False)
    if threshold is not None and report.fails(threshold):
        worst = report.worst()
        assert worst is not None
        click.echo(
            f"failed: a {worst.label} finding is at or above --fail-on {threshold.label}",
            err=True,
        )
        raise SystemExit(1)
