"""``espsec cert-bundle``: build, dump and check ESP-IDF x509 certificate bundles."""

from __future__ import annotations

import datetime
from pathlib import Path

import click

from espsec._io import read_bytes, write_output
from espsec.cli._common import (
    INPUT,
    command_group,
    emit,
    json_option,
    note,
    output_option,
    source,
)

group = command_group(
    "cert-bundle",
    "x509 certificate bundles (gen_crt_bundle.py format) and esp_crt_bundle_attach checks.",
)
_max_certs = click.option(
    "--max-certs",
    type=click.IntRange(1, 0xFFFF),
    default=200,
    show_default=True,
    help="CONFIG_MBEDTLS_CERTIFICATE_BUNDLE_MAX_CERTS.",
)


@group.command("build")
@output_option(help="The bundle to write ('-': standard output).")
@click.option("--legacy", is_flag=True, help="ESP-IDF v5.3 and earlier layout (big-endian).")
@click.option(
    "--filter",
    "filter_csv",
    type=INPUT,
    help="Keep only certificates named in this CSV's second column (cmn_crt_authorities.csv).",
)
@_max_certs
@json_option
@click.argument("certs", type=INPUT, nargs=-1, required=True)
def build(
    output: Path,
    legacy: bool,
    filter_csv: Path | None,
    max_certs: int,
    as_json: bool,
    certs: tuple[Path, ...],
) -> None:
    """Build a bundle from CERTS: PEM or DER files, or Mozilla's CA CSV (``PEM Info``)."""
    from espsec.identity import cert_bundle as cb

    names = None
    if filter_csv is not None:
        names = cb.filter_names(read_bytes(filter_csv, what="filter CSV"), source=str(filter_csv))
    found = []
    for path in certs:
        with source(str(path)):
            data = read_bytes(path, what="certificate file")
            found.extend(cb.certificates_from_file(data, source=str(path), names=names))
    bundle = cb.CertBundle.from_certificates(found, legacy=legacy, max_certs=max_certs)
    write_output(output, bundle.to_bytes())
    report = {"output": str(output), **bundle.to_json()}
    emit(report, as_json, lambda: note(f"{len(bundle.entries)} certificate(s) -> {output}", output))


@group.command("dump")
@click.option("--legacy/--current", default=None, help="Force the layout (default: detect).")
@_max_certs
@json_option
@click.argument("bundle", type=INPUT)
def dump(legacy: bool | None, max_certs: int, as_json: bool, bundle: Path) -> None:
    """List the roots in BUNDLE (subject, key type, offset)."""
    from espsec.identity import cert_bundle as cb

    with source(str(bundle)):
        parsed = cb.CertBundle.parse(
            read_bytes(bundle, what="certificate bundle"), legacy=legacy, max_certs=max_certs
        )
    report = parsed.to_json()

    def render() -> None:
        click.echo(f"{bundle}: {report['format']} bundle, {report['count']} certificate(s)")
        if not parsed.is_sorted:
            click.echo("warning: not sorted by subject; the device's binary search will miss roots")
        for entry, off in zip(parsed.entries, parsed.offsets(), strict=True):
            where = "" if parsed.legacy else f"@0x{off:x} "
            click.echo(f"  {where}{entry.subject_text} [{cb.key_text(entry.public_key)}]")

    emit(report, as_json, render)


@group.command("verify-chain")
@click.option("--hostname", help="Also check the server certificate is for this host name.")
@click.option(
    "--at",
    "at",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Check validity at this UTC time instead of now.",
)
@click.option("--legacy/--current", default=None, help="Force the bundle layout.")
@_max_certs
@json_option
@click.argument("bundle", type=INPUT)
@click.argument("chain", type=INPUT)
def verify_chain(
    hostname: str | None,
    at: datetime.datetime | None,
    legacy: bool | None,
    max_certs: int,
    as_json: bool,
    bundle: Path,
    chain: Path,
) -> None:
    """Check a server CHAIN (PEM, leaf first) as a device with BUNDLE attached would.

    Exit 0 if the device accepts it, 1 if not.
    """
    from espsec._pem import load_certificates
    from espsec.identity import cert_bundle as cb

    with source(str(bundle)):
        parsed = cb.CertBundle.parse(
            read_bytes(bundle, what="certificate bundle"), legacy=legacy, max_certs=max_certs
        )
    with source(str(chain)):
        certs = load_certificates(read_bytes(chain, what="certificate chain"))
    now = at.replace(tzinfo=datetime.UTC) if at is not None else None
    result = cb.verify_chain(parsed, certs, now=now, hostname=hostname)

    def render() -> None:
        for step in result.steps:
            mark = "ok  " if step.ok else "FAIL"
            extra = f" ({step.detail})" if step.detail else ""
            click.echo(f"  {mark} {step.check}: {step.subject}{extra}")
        click.echo(("trusted: " if result.trusted else "refused: ") + result.reason)

    emit(result.to_json(), as_json, render)
    if not result.trusted:
        raise SystemExit(1)
