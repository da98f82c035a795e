"""``espsec fleet``: the fleet OTA server and its admin API."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from espsec import secure_boot
from espsec._io import read_bytes, write_secret
from espsec.cli._common import emit, json_option, key_digest_slots, source
from espsec.errors import UsageError
from espsec.fleet import AdminClient, digests_from, init_fleet, serve
from espsec.fleet.config import DEFAULT_HOSTNAMES, DEVICE_CA, MANIFEST_PUB, TLS_DIR
from espsec.fleet.tls import TlsFiles
from espsec.ota import TlsTrust

group = click.Group("fleet", help="Fleet OTA server: releases, cohorts, devices.")

_path = click.Path(dir_okay=False, path_type=Path)
_dir = click.Path(file_okay=False, path_type=Path)


@group.command("init")
@click.option(
    "--sb-key", "sb_keys", type=_path, multiple=True, help="Trusted Secure Boot public key."
)
@click.option(
    "--sb-key-digest",
    "digests",
    multiple=True,
    help="Trusted eFuse key digest, slot 0, 1, 2 in order (hex; '-' = empty slot).",
)
@click.option("--revoked", type=click.IntRange(0, 2), multiple=True, help="Revoked slot number.")
@click.option(
    "--hostname",
    "hostnames",
    multiple=True,
    help="Name or IP for the server certificate (repeatable; default localhost, 127.0.0.1, ::1).",
)
@click.option(
    "--manifest-ttl", type=int, default=600, show_default=True, help="Manifest lifetime, s."
)
@click.option(
    "--token-out", type=_path, help="Admin token file (0600) [default: STATE_DIR/admin-token]."
)
@click.option(
    "--device-ca",
    type=_path,
    help="CA that device client certificates must chain to [default: a new one in STATE_DIR].",
)
@json_option
@click.argument("state_dir", type=_dir)
def init(
    sb_keys: tuple[Path, ...],
    digests: tuple[str, ...],
    revoked: tuple[int, ...],
    hostnames: tuple[str, ...],
    manifest_ttl: int,
    token_out: Path | None,
    device_ca: Path | None,
    as_json: bool,
    state_dir: Path,
) -> None:
    """Create a fleet in STATE_DIR trusting the given Secure Boot keys.

    Devices authenticate with mutual TLS: their client certificates must chain to the
    device CA and name their device id.
    """
    device_ca_pem = read_bytes(device_ca, what="device CA") if device_ca is not None else None
    keys = []
    for path in sb_keys:
        with source(str(path)):
            keys.append(secure_boot.load_public_key(read_bytes(path, what="key file")))
    slots = digests_from(keys, key_digest_slots(digests))
    token_path = token_out or state_dir / "admin-token"
    if token_path.exists():
        raise UsageError("refusing to overwrite an existing token file", source=str(token_path))
    if token_out is not None and not token_out.parent.is_dir():
        # Checked first: the token is shown only once, so it must not fail to be written.
        raise UsageError("no such folder for the token file", source=str(token_out))
    token = init_fleet(
        state_dir,
        key_digests=slots,
        revoked=revoked,
        hostnames=hostnames or DEFAULT_HOSTNAMES,
        manifest_ttl=manifest_ttl,
        device_ca_pem=device_ca_pem,
    )
    write_secret(token_path, token.encode() + b"\n")
    report = {
        "state_dir": str(state_dir),
        "key_digests": [d.hex() if d else None for d in slots],
        "manifest_public_key": str(state_dir / MANIFEST_PUB),
        "admin_token_file": str(token_path),
        "device_ca": str(state_dir / DEVICE_CA),
    }

    def render() -> None:
        click.echo(f"fleet initialised in {state_dir}")
        click.echo(f"  provision devices with the manifest key {state_dir / MANIFEST_PUB}")
        click.echo(f"  admin token written to {token_path} (keep it secret)")
        click.echo(f"  device client certificates must chain to {state_dir / DEVICE_CA}")

    emit(report, as_json, render)


@group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8443, show_default=True)
@click.option("--cert", type=_path, help="Server certificate chain (PEM) [default: generated].")
@click.option("--key", "key_file", type=_path, help="Server private key (PEM).")
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.argument("state_dir", type=_dir)
def serve_cmd(
    host: str,
    port: int,
    cert: Path | None,
    key_file: Path | None,
    access_log: bool,
    state_dir: Path,
) -> None:
    """Run the fleet HTTPS server (TLS certificate generated on first start)."""

    def ready(url: str, files: TlsFiles) -> None:
        click.echo(f"fleet server on {url}", err=True)
        if files.ca_cert is not None:
            click.echo(f"  devices trust the CA {files.ca_cert}", err=True)

    serve(
        state_dir,
        host=host,
        port=port,
        certfile=cert,
        keyfile=key_file,
        access_log=access_log,
        on_ready=ready,
    )


@dataclass(frozen=True)
class AdminTarget:
    """Where and how an admin command reaches the fleet (from the shared options)."""

    url: str
    token_file: Path | None
    ca: Path | None
    pin: Path | None
    state_dir: Path | None

    def client(self) -> AdminClient:
        token_file, ca, pin = self.token_file, self.ca, self.pin
        if self.state_dir is not None:
            token_file = token_file or self.state_dir / "admin-token"
            if ca is None and pin is None:
                ca = self.state_dir / TLS_DIR / "ca.pem"
        if token_file is not None:
            token = read_bytes(token_file, what="token file").decode("utf-8", "replace").strip()
        else:
            token = os.environ.get("ESPSEC_FLEET_TOKEN", "").strip()
        if not token:
            raise UsageError(
                "no admin token: give --token-file, --state-dir or set ESPSEC_FLEET_TOKEN"
            )
        if (ca is None) == (pin is None):
            raise UsageError("give exactly one of --ca or --pin (or --state-dir)")
        if ca is not None:
            with source(str(ca)):
                trust = TlsTrust.ca(read_bytes(ca, what="CA certificate"))
                trust.context()  # a file with no certificate in it fails here, named
        else:
            assert pin is not None
            with source(str(pin)):
                trust = TlsTrust.pinned(read_bytes(pin, what="pinned certificate"))
        return AdminClient(self.url, token, trust)


def _admin_options(func: Callable[..., None]) -> Callable[..., None]:
    """Add the shared --url/--token-file/--ca/--pin/--state-dir options as ``admin``."""

    @functools.wraps(func)
    def wrapper(
        *args: Any,
        url: str,
        token_file: Path | None,
        ca: Path | None,
        pin: Path | None,
        state_dir: Path | None,
        **kwargs: Any,
    ) -> None:
        func(*args, admin=AdminTarget(url, token_file, ca, pin, state_dir), **kwargs)

    options = [
        click.option(
            "--url",
            envvar="ESPSEC_FLEET_URL",
            required=True,
            help="https://host:port of the fleet.",
        ),
        click.option(
            "--token-file",
            type=_path,
            envvar="ESPSEC_FLEET_TOKEN_FILE",
            help="Admin token file (or set ESPSEC_FLEET_TOKEN).",
        ),
        click.option(
            "--ca", type=_path, envvar="ESPSEC_FLEET_CA", help="CA certificate to trust (PEM)."
        ),
        click.option("--pin", type=_path, help="Exact server certificate to trust (PEM or DER)."),
        click.option(
            "--state-dir",
            type=_dir,
            envvar="ESPSEC_FLEET_STATE",
            help="Fleet state folder: take the CA and token from it.",
        ),
    ]
    decorated: Callable[..., None] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


release = click.Group("release", help="Upload and list releases.")
cohort = click.Group("cohort", help="Assign releases to cohorts.")
devices = click.Group("devices", help="List devices, move them between cohorts.")
for sub in (release, cohort, devices):
    group.add_command(sub)


@release.command("upload")
@_admin_options
@json_option
@click.argument("bundle", type=_path)
def release_upload(
    admin: AdminTarget,
    as_json: bool,
    bundle: Path,
) -> None:
    """Upload a release BUNDLE (`ota pack` output); refused unless its signature verifies."""
    data = read_bytes(bundle, what="release bundle")
    with admin.client() as client, source(str(bundle)):
        row = client.upload_release(data)
    emit(
        row,
        as_json,
        lambda: click.echo(
            f"release {row['id']}: {row['project_name']} {row['version']} "
            f"(secure_version {row['secure_version']}) accepted"
        ),
    )


@release.command("list")
@_admin_options
@json_option
def release_list(
    admin: AdminTarget,
    as_json: bool,
) -> None:
    """List uploaded releases."""
    with admin.client() as client:
        rows = client.releases()

    def render() -> None:
        for r in rows:
            click.echo(
                f"{r['id']}  {r['chip']:<9} {r['project_name']} {r['version']} "
                f"secure_version={r['secure_version']}"
            )

    emit(rows, as_json, render)


@cohort.command("assign")
@_admin_options
@json_option
@click.argument("name")
@click.argument("release_id", required=False)
def cohort_assign(
    admin: AdminTarget,
    as_json: bool,
    name: str,
    release_id: str | None,
) -> None:
    """Offer RELEASE_ID to cohort NAME (no RELEASE_ID: stop offering updates)."""
    with admin.client() as client:
        result = client.assign_cohort(name, release_id)
    emit(result, as_json, lambda: click.echo(f"cohort {name} -> {release_id or 'no release'}"))


@cohort.command("list")
@_admin_options
@json_option
def cohort_list(
    admin: AdminTarget,
    as_json: bool,
) -> None:
    """List cohorts and their releases."""
    with admin.client() as client:
        rows = client.cohorts()

    def render() -> None:
        for r in rows:
            click.echo(f"{r['name']}: {r['release_id'] or 'no release'}")

    emit(rows, as_json, render)


@devices.command("list")
@_admin_options
@json_option
def devices_list(
    admin: AdminTarget,
    as_json: bool,
) -> None:
    """List devices with their version, secure_version, boot state and last outcome."""
    with admin.client() as client:
        rows = client.devices()

    def render() -> None:
        for d in rows:
            click.echo(
                f"{d['device_id']}  cohort={d['cohort']} {d['chip']} {d['version']} "
                f"secure_version={d['secure_version']} boot={d['boot_state']} "
                f"last={d['last_outcome'] or '-'}"
            )

    emit(rows, as_json, render)


@devices.command("assign")
@_admin_options
@json_option
@click.argument("device_id")
@click.argument("cohort_name", metavar="COHORT")
def devices_assign(
    admin: AdminTarget,
    as_json: bool,
    device_id: str,
    cohort_name: str,
) -> None:
    """Put DEVICE_ID in COHORT."""
    with admin.client() as client:
        result = client.assign_device(device_id, cohort_name)
    emit(result, as_json, lambda: click.echo(f"{device_id} -> cohort {cohort_name}"))


def _utc(timestamp: object) -> str:
    """A Unix time from the server as ISO 8601 UTC (the JSON output keeps the number)."""
    if not isinstance(timestamp, int | float):
        return str(timestamp)
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@group.command("reports")
@_admin_options
@click.option("--device", "device_id", help="Only this device.")
@json_option
def reports(
    admin: AdminTarget,
    device_id: str | None,
    as_json: bool,
) -> None:
    """Update outcomes devices reported (newest first)."""
    with admin.client() as client:
        rows = client.reports(device_id)

    def render() -> None:
        for r in rows:
            click.echo(
                f"{_utc(r['at'])} {r['device_id']} {r['release_id']} {r['outcome']}: {r['reason']}"
            )

    emit(rows, as_json, render)


@group.command("stats")
@_admin_options
@json_option
def stats(
    admin: AdminTarget,
    as_json: bool,
) -> None:
    """Server counters and check-in latency percentiles."""
    with admin.client() as client:
        result = client.stats()
    emit(result, True, lambda: None)
