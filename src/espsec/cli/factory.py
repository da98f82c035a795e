"""``espsec factory``: plan, run, resume and report a batch of per-device provisioning."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from espsec.cli._common import (
    CHIP_PORT,
    INPUT,
    UrlParam,
    colour,
    command_group,
    emit,
    json_option,
)
from espsec.errors import UsageError

group = command_group("factory", "Batch provisioning: keys, eFuses, identity, NVS, journal.")

_dir = click.Path(file_okay=False, path_type=Path)


class JournalParam(click.ParamType[str]):
    """``postgresql://USER@HOST:PORT/DB`` (no password: it comes from PGPASSFILE or
    PGPASSWORD, never from argv) or ``sqlite:PATH``."""

    name = "url"
    _postgres = UrlParam("postgresql", "postgres")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from urllib.parse import urlsplit

        text = str(value)
        if text.startswith("sqlite:") and len(text) > len("sqlite:"):
            return text
        if not text.startswith(("postgresql:", "postgres:")):
            self.fail(f"expected postgresql://... or sqlite:PATH, found {text!r}", param, ctx)
        self._postgres.convert(text, param, ctx)
        if urlsplit(text).password is not None:
            self.fail(
                "the journal URL holds a password: put it in PGPASSFILE (or PGPASSWORD)",
                param,
                ctx,
            )
        return text


journal_option = click.option(
    "--journal",
    "journal_url",
    type=JournalParam(),
    envvar="ESPSEC_FACTORY_JOURNAL",
    show_envvar=True,
    metavar="URL",
    help="postgresql://... to share the batch between stations (the password comes from "
    "PGPASSFILE/PGPASSWORD), or sqlite:PATH; default: OUTPUT/journal.sqlite.",
)
station_option = click.option(
    "--station", help="This station's name in the journal (default: the host name)."
)


def _targets(devices: Path | None, ports: tuple[str, ...]) -> list[Any]:
    from espsec.factory import PortTarget, VirtualTarget

    if devices is not None and ports:
        raise UsageError("give --devices DIR or --port PORT, not both")
    if devices is None and not ports:
        raise UsageError("nothing to provision: give --devices DIR (virtual) or --port PORT")
    if devices is not None:
        return [VirtualTarget(devices)]
    return [PortTarget(p) for p in ports]


@contextmanager
def _progress(show: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar with ETA on a terminal (never when piped or NO_COLOR)."""
    if not show or not colour(err=True):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("provisioning", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _render_summary(doc: dict[str, Any]) -> None:
    click.echo(
        f"batch {doc['batch']} on {doc['station']}: {doc['provisioned']} provisioned; "
        + ", ".join(f"{k} {v}" for k, v in doc["counts"].items() if v)
    )
    for serial in doc["partial"]:
        click.echo(f"  {serial}: eFuses partly burned (recorded; needs inspection)")
    for item in doc["failed"]:
        click.echo(f"  {item['serial']}: failed: {item['error']}")
    unlisted = doc["partial_count"] + doc["failed_count"] - len(doc["partial"]) - len(doc["failed"])
    if unlisted:
        click.echo(f"  ... and {unlisted} more (espsec factory status)")
    click.echo(f"manifest: {doc['manifest']}")


@group.command("plan")
@journal_option
@json_option
@click.argument("spec", type=INPUT)
def plan(journal_url: str | None, as_json: bool, spec: Path) -> None:
    """Check SPEC (a sample device's eFuse plan under the plan rules) and record its serials."""
    from espsec.factory import open_factory

    with open_factory(spec, journal_url=journal_url) as factory:
        report = factory.plan()

    def render() -> None:
        click.echo(
            f"batch {report['batch']}: {report['devices']} {report['chip']} devices, "
            f"profile {report['profile']} -> {report['output']}"
        )
        for line in report["efuse_plan"]:
            click.echo(f"  {line}")
        for code in report["warnings"]:
            click.echo(f"  warning: {code}")

    emit(report, as_json, render)


@group.command("run")
@click.option("--devices", type=_dir, help="Provision virtual devices in DIR/<serial>.")
@click.option(
    "--port",
    "ports",
    type=CHIP_PORT,
    multiple=True,
    help="A chip in download mode: serial port or socket://HOST:PORT; repeatable.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Provision at most this many devices.")
@journal_option
@station_option
@json_option
@click.argument("spec", type=INPUT)
def run(
    devices: Path | None,
    ports: tuple[str, ...],
    limit: int | None,
    journal_url: str | None,
    station: str | None,
    as_json: bool,
    spec: Path,
) -> None:
    """Provision devices of SPEC (first finishing this station's interrupted ones)."""
    from espsec.factory import RunSummary, open_factory

    targets = _targets(devices, ports)
    with open_factory(spec, journal_url=journal_url, station=station) as factory:
        summaries: list[RunSummary] = []
        with _progress(not as_json) as progress:
            if devices is not None:
                summaries.append(factory.run(targets[0], limit=limit, progress=progress))
            else:  # one chip per port
                for target in targets:
                    summaries.append(factory.run(target, limit=1, progress=progress))
    doc = summaries[-1].to_json()
    doc["provisioned"] = sum(s.provisioned for s in summaries)
    doc["partial"] = [p for s in summaries for p in s.partial]
    doc["partial_count"] = sum(s.partial_count for s in summaries)
    doc["failed"] = [f for s in summaries for f in s.to_json()["failed"]]
    doc["failed_count"] = sum(s.failed_count for s in summaries)
    emit(doc, as_json, lambda: _render_summary(doc))
    if doc["partial_count"] or doc["failed_count"]:
        sys.exit(1)


@group.command("resume")
@click.option("--devices", type=_dir, help="The virtual devices' folder of the run.")
@click.option(
    "--port", "ports", type=CHIP_PORT, multiple=True, help="The chip the run was provisioning."
)
@journal_option
@station_option
@json_option
@click.argument("spec", type=INPUT)
def resume(
    devices: Path | None,
    ports: tuple[str, ...],
    journal_url: str | None,
    station: str | None,
    as_json: bool,
    spec: Path,
) -> None:
    """Finish this station's devices of SPEC that a crash left unfinished."""
    from espsec.factory import open_factory

    targets = _targets(devices, ports)
    with open_factory(spec, journal_url=journal_url, station=station) as factory:
        summary = factory.resume(targets[0])
    doc = summary.to_json()
    emit(doc, as_json, lambda: _render_summary(doc))
    if not summary.ok:
        sys.exit(1)


@group.command("status")
@journal_option
@json_option
@click.argument("spec", type=INPUT)
def status(journal_url: str | None, as_json: bool, spec: Path) -> None:
    """Devices of SPEC per state; exit 1 if any is partly burned or failed."""
    from espsec.factory import open_factory

    with open_factory(spec, journal_url=journal_url) as factory:
        report = factory.status()

    def render() -> None:
        counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items() if v)
        click.echo(f"batch {report['batch']}: {report['devices']} devices: {counts or 'none'}")
        for item in report["attention"]:
            click.echo(f"  {item['serial']}: {item['state']} (station {item['station']})")

    emit(report, as_json, render)
    if report["attention"]:
        sys.exit(1)
