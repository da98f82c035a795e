"""``espsec advisories``: the signed database of ESP-IDF advisories and release branches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from espsec.cli._common import INPUT, chip_option, command_group, emit, json_option
from espsec.errors import UsageError

group = command_group(
    "advisories", "Espressif security advisories and ESP-IDF CVEs: list, check, import."
)


def default_data_dir() -> Path:
    """Where imported databases live: ``$XDG_DATA_HOME/espsec`` (``~/.local/share/espsec``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "espsec"


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ESPSEC_DATA_DIR",
    show_envvar=True,
    default=None,
    help="Folder of the imported advisory database (default: $XDG_DATA_HOME/espsec).",
)


def _dir(data_dir: Path | None) -> Path:
    return data_dir if data_dir is not None else default_data_dir()


@group.command("list")
@data_dir_option
@chip_option(required=False, help="Only advisories that concern this chip.")
@json_option
def list_command(data_dir: Path | None, chip: str | None, as_json: bool) -> None:
    """Every advisory in the database, and the ESP-IDF release table."""
    from espsec.audit import advisories

    db = advisories.load(_dir(data_dir))
    shown = [a for a in db.advisories if a.affects_chip(chip)]
    report: dict[str, Any] = {
        "database": db.describe(),
        "advisories": [a.to_json() for a in shown],
        "releases": {
            "recorded": db.releases.recorded.isoformat(),
            "branches": [
                {
                    "branch": b.branch,
                    "latest": b.latest,
                    "latest_date": b.latest_date.isoformat(),
                    "end_of_support": db.releases.end_of_support(b).isoformat(),
                }
                for b in db.releases.branches
            ],
        },
    }

    def render() -> None:
        click.echo(db.describe())
        for row in advisories.summary_rows(shown):
            aliases = f" ({row['aliases']})" if row["aliases"] else ""
            click.echo(f"{row['id']}{aliases} [{row['severity']}] {row['title']}")
            click.echo(f"    chips: {row['chips']}; fixed in: {row['fixed']}")
        click.echo(f"ESP-IDF releases (recorded {db.releases.recorded.isoformat()}):")
        for b in db.releases.branches:
            end = db.releases.end_of_support(b).isoformat()
            click.echo(f"    v{b.branch}: latest v{b.latest}, support until {end}")

    emit(report, as_json, render)


@group.command("check")
@click.argument("targets", nargs=-1, required=True, metavar="VERSION_OR_INPUT...")
@chip_option(required=False, help="The chip a bare version is built for.")
@data_dir_option
@json_option
def check(targets: tuple[str, ...], chip: str | None, data_dir: Path | None, as_json: bool) -> None:
    """Advisories, end of life and missing bugfix releases of ESP-IDF versions.

    Each target is a version (``v5.4.1``) or an input the audit reads (an app image, a
    release bundle, a project or device folder). Exits 1 when an advisory applies.
    """
    import datetime as dt

    from espsec.audit import Profile, advisories, audit_inputs
    from espsec.audit.inputs import load_path
    from espsec.audit.subjects import Inputs, VersionSubject

    found = Inputs()
    for target in targets:
        if Path(target).exists():
            found.merge(load_path(Path(target), chip=chip))
            continue
        version = advisories.IdfVersion.parse(target)
        if version is None:
            raise UsageError(f"{target!r} is neither an ESP-IDF version nor an existing file")
        found.versions.append(VersionSubject(target, target, version, chip, "argument"))
        found.described.append(f"ESP-IDF {target}" + (f" on {chip}" if chip else ""))
    db = advisories.load(_dir(data_dir))
    report = audit_inputs(found, profile=Profile.PRODUCTION, database=db, as_of=dt.date.today())
    wanted = {"ADV001", "IDF001", "IDF002", "IDF003"}
    findings = [f for f in report.findings if f.rule in wanted]

    def render() -> None:
        click.echo(db.describe())
        if not findings:
            click.echo("no advisory applies; on the latest bugfix release")
        for f in findings:
            click.echo(f"{f.severity.label.upper():8} {f.rule} {f.message}")
            click.echo(f"         in {f.subject}; fix: {f.fix}")

    emit(
        {"database": db.describe(), "findings": [f.to_json() for f in findings]},
        as_json,
        render,
    )
    applying = [f for f in findings if f.rule == "ADV001"]
    if applying:
        click.echo(f"failed: {len(applying)} advisory finding(s)", err=True)
        raise SystemExit(1)


@group.command("import")
@click.argument("database", type=INPUT)
@click.option(
    "--signature",
    type=INPUT,
    help="The detached signature (default: DATABASE.sig).",
)
@data_dir_option
@json_option
def import_command(
    database: Path, signature: Path | None, data_dir: Path | None, as_json: bool
) -> None:
    """Install a newer advisory database, if a key pinned in espsec signed it.

    An older or equal ``serial`` is refused (a rollback), as is any file whose
    signature does not verify. The packaged database is never modified.
    """
    from espsec.audit import advisories

    folder = _dir(data_dir)
    before = advisories.load(folder).sha256
    db = advisories.import_database(database, data_dir=folder, signature=signature)
    verb = "already in use:" if db.sha256 == before else "installed"
    emit(
        {"installed": db.origin, "database": db.describe()},
        as_json,
        lambda: click.echo(f"{verb} {db.describe()}"),
    )
