"""``espsec fleet``: the fleet OTA server and its admin API."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from espsec import secure_boot
from espsec._io import read_bytes, write_secret
from espsec._text import printable
from espsec.cli._common import (
    HOST,
    INPUT,
    PORT,
    URL,
    UrlParam,
    command_group,
    emit,
    json_option,
    key_digest_slots,
    output_option,
    source,
)
from espsec.errors import UsageError

if TYPE_CHECKING:  # each command imports the fleet code it uses: --help loads no server
    from espsec.fleet import AdminClient
    from espsec.fleet.tls import TlsFiles

group = command_group("fleet", "Fleet OTA server: releases, cohorts, devices.")

_dir = click.Path(file_okay=False, path_type=Path)


@group.command("init")
@click.option(
    "--pub-key",
    "pub_keys",
    type=INPUT,
    multiple=True,
    help="A trusted Secure Boot public key (PEM); repeatable, slot order.",
)
@click.option(
    "--key-digest",
    "digests",
    multiple=True,
    metavar="HEX_OR_FILE",
    help="A trusted eFuse key digest, slot 0, 1, 2 in order ('-' = empty slot).",
)
@click.option("--revoked", type=click.IntRange(0, 2), multiple=True, help="Revoked slot number.")
@click.option(
    "--hostname",
    "hostnames",
    type=HOST,
    multiple=True,
    help="Name or IP for the server certificate (repeatable; default localhost, 127.0.0.1, ::1).",
)
@click.option(
    "--manifest-ttl",
    type=click.IntRange(1, 86400 * 365),
    default=600,
    show_default=True,
    help="Manifest lifetime, s.",
)
@output_option(
    "--token-output",
    "token_output",
    required=False,
    secret=True,
    help="Write the admin token to this new file (0600) [default: print it once, keep no file].",
)
@output_option(
    "--ca-key-output",
    "ca_key_output",
    required=False,
    secret=True,
    help="Make the TLS CA now and write its key here, not in STATE_DIR (keep it offline).",
)
@click.option(
    "--device-ca",
    type=INPUT,
    help="CA that device client certificates must chain to [default: a new one in STATE_DIR].",
)
@json_option
@click.argument("state_dir", type=_dir)
def init(
    pub_keys: tuple[Path, ...],
    digests: tuple[str, ...],
    revoked: tuple[int, ...],
    hostnames: tuple[str, ...],
    manifest_ttl: int,
    token_output: Path | None,
    ca_key_output: Path | None,
    device_ca: Path | None,
    as_json: bool,
    state_dir: Path,
) -> None:
    """Create a fleet in STATE_DIR trusting the given Secure Boot keys.

    Devices authenticate with mutual TLS: their client certificates must chain to the
    device CA and name their device id.
    """
    from espsec.fleet import digests_from, init_fleet
    from espsec.fleet.config import DEFAULT_HOSTNAMES, DEVICE_CA, MANIFEST_PUB, TLS_DIR

    device_ca_pem = read_bytes(device_ca, what="device CA") if device_ca is not None else None
    keys = []
    for path in pub_keys:
        with source(str(path)):
            keys.append(secure_boot.load_public_key(read_bytes(path, what="key file")))
    slots = digests_from(keys, key_digest_slots(digests))
    for wanted, what in ((token_output, "token file"), (ca_key_output, "CA key")):
        if wanted is None:
            continue
        if not wanted.parent.is_dir():
            # Checked first: the token is shown only once, so it must not fail to be written.
            raise UsageError(f"no such folder for the {what}", source=str(wanted))
    token = init_fleet(
        state_dir,
        key_digests=slots,
        revoked=revoked,
        hostnames=hostnames or DEFAULT_HOSTNAMES,
        manifest_ttl=manifest_ttl,
        device_ca_pem=device_ca_pem,
    )
    if token_output is not None:
        write_secret(token_output, token.encode() + b"\n")
    if ca_key_output is not None:
        from espsec.fleet.tls import generate_tls

        generate_tls(
            state_dir / TLS_DIR, hostnames or DEFAULT_HOSTNAMES, ca_key_output=ca_key_output
        )
    report: dict[str, Any] = {
        "state_dir": str(state_dir),
        "key_digests": [d.hex() if d else None for d in slots],
        "manifest_public_key": str(state_dir / MANIFEST_PUB),
        "admin_token_file": None if token_output is None else str(token_output),
        "device_ca": str(state_dir / DEVICE_CA),
        "tls_ca_key": None if ca_key_output is None else str(ca_key_output),
    }
    if token_output is None:
        report["admin_token"] = token

    def render() -> None:
        click.echo(f"fleet initialised in {state_dir}")
        click.echo(f"  provision devices with the manifest key {state_dir / MANIFEST_PUB}")
        click.echo(f"  device client certificates must chain to {state_dir / DEVICE_CA}")
        if ca_key_output is not None:
            click.echo(f"  TLS CA key written to {ca_key_output}: keep it offline")
        if token_output is not None:
            click.echo(f"  admin token written to {token_output} (keep it secret)")
        else:
            click.echo("  admin token (shown once, stored only hashed; keep it secret):")
            click.echo(token)

    emit(report, as_json, render)


@group.command("serve")
@click.option(
    "--host", type=HOST, default="127.0.0.1", show_default=True, help="Device listener address."
)
@click.option(
    "--port", type=PORT, default=8443, show_default=True,
    help="Device listener port (mutual TLS; 0: any free port).",
)  # fmt: skip
@click.option(
    "--admin-host", type=HOST, default="127.0.0.1", show_default=True,
    help="Admin API and dashboard listener address (keep it private).",
)  # fmt: skip
@click.option(
    "--admin-port", type=PORT, default=8444, show_default=True,
    help="Admin API and dashboard port (0: any free port).",
)  # fmt: skip
@click.option("--cert", type=INPUT, help="Server certificate chain (PEM) [default: generated].")
@click.option("-k", "--key", "key_file", type=INPUT, help="Server private key (PEM).")
@click.option(
    "--database",
    type=UrlParam("postgresql", "postgres"),
    envvar="ESPSEC_FLEET_DATABASE",
    show_envvar=True,
    help="postgresql://USER@HOST/DB (no password in it: libpq reads ~/.pgpass or "
    "PGPASSFILE) [default: STATE_DIR/fleet.sqlite3].",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True,
    help="Server processes on the same listeners and database.",
)  # fmt: skip
@click.option(
    "--max-connections", type=click.IntRange(16, 1_000_000), default=4096, show_default=True,
    help="Open device connections per process; more are closed at once.",
)  # fmt: skip
@click.option(
    "--keep-alive", type=click.IntRange(1, 3600), default=30, show_default=True,
    help="Seconds an idle device connection is kept open between requests.",
)  # fmt: skip
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.option(
    "--max-seconds",
    type=click.FloatRange(0, None),
    help="Stop after this long (default: until interrupted).",
)
@click.argument("state_dir", type=_dir)
def serve_cmd(
    host: str,
    port: int,
    admin_host: str,
    admin_port: int,
    cert: Path | None,
    key_file: Path | None,
    database: str | None,
    workers: int,
    max_connections: int,
    keep_alive: int,
    access_log: bool,
    max_seconds: float | None,
    state_dir: Path,
) -> None:
    """Run the fleet HTTPS server (TLS certificate generated on first start).

    Devices connect to --port with their client certificates; the admin API and the
    dashboard are on --admin-port (127.0.0.1 by default).
    """
    from espsec.fleet import serve
    from espsec.fleet.server import Limits

    if database is not None:
        _check_database_url(database)

    def ready(url: str, admin_url: str, files: TlsFiles, warning: str | None) -> None:
        click.echo(f"fleet server on {url}", err=True)
        click.echo(f"fleet admin on {admin_url} (dashboard: {admin_url}/dashboard/)", err=True)
        if files.ca_cert is not None:
            click.echo(f"  devices trust the CA {files.ca_cert}", err=True)
        if warning is not None:
            click.echo(f"warning: {warning}", err=True)

    serve(
        state_dir,
        host=host,
        port=port,
        admin_host=admin_host,
        admin_port=admin_port,
        certfile=cert,
        keyfile=key_file,
        database=database,
        workers=workers,
        limits=Limits(max_connections=max_connections, keep_alive=keep_alive),
        access_log=access_log,
        on_ready=ready,
        max_seconds=max_seconds,
    )


def _check_database_url(url: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise UsageError(
            f"--database must be a postgresql:// URL (the default is SQLite in STATE_DIR), "
            f"not {printable(url)[:80]!r}"
        )
    if parts.password:
        raise UsageError(
            "--database holds a password: put it in a libpq password file (~/.pgpass or "
            "PGPASSFILE) instead; secrets never come from the command line"
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
        from espsec.fleet import AdminClient
        from espsec.fleet.config import TLS_DIR
        from espsec.ota import TlsTrust

        token_file, ca, pin = self.token_file, self.ca, self.pin
        if self.state_dir is not None:
            legacy = self.state_dir / "admin-token"  # a token file kept in the state folder
            if token_file is None and legacy.exists():
                token_file = legacy
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
            type=URL,
            envvar="ESPSEC_FLEET_URL",
            show_envvar=True,
            required=True,
            help="https://host:port of the fleet's admin listener (--admin-port).",
        ),
        click.option(
            "--token-file",
            type=INPUT,
            envvar="ESPSEC_FLEET_TOKEN_FILE",
            show_envvar=True,
            help="Admin token file (or the token itself in ESPSEC_FLEET_TOKEN).",
        ),
        click.option(
            "--ca",
            type=INPUT,
            envvar="ESPSEC_FLEET_CA",
            show_envvar=True,
            help="CA certificate to trust (PEM).",
        ),
        click.option("--pin", type=INPUT, help="Exact server certificate to trust (PEM or DER)."),
        click.option(
            "--state-dir",
            type=_dir,
            envvar="ESPSEC_FLEET_STATE",
            show_envvar=True,
            help="Fleet state folder: take the CA and token from it.",
        ),
    ]
    decorated: Callable[..., None] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


release = command_group("release", "Upload and list releases.")
cohort = command_group("cohort", "Assign releases to cohorts.")
devices = command_group("devices", "List devices, move them between cohorts.")
for sub in (release, cohort, devices):
    group.add_command(sub)


@release.command("upload")
@_admin_options
@json_option
@click.argument("bundle", type=INPUT)
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
                printable(
                    f"{r['id']}  {r['chip']:<9} {r['project_name']} {r['version']} "
                    f"secure_version={r['secure_version']}"
                )
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
@click.option("--cohort", "cohort_name", help="Only devices of this cohort.")
@click.option("--weak", is_flag=True, help="Only devices the posture rules flag.")
@json_option
def devices_list(
    admin: AdminTarget,
    cohort_name: str | None,
    weak: bool,
    as_json: bool,
) -> None:
    """List devices with their version, secure_version, boot state, last outcome and
    posture weaknesses."""
    with admin.client() as client:
        rows = client.devices(cohort=cohort_name, weak=True if weak else None)

    def render() -> None:
        for d in rows:
            weak = ",".join(d.get("posture_flags") or []) or "-"
            click.echo(
                printable(
                    f"{d['device_id']}  cohort={d['cohort']} {d['chip']} {d['version']} "
                    f"secure_version={d['secure_version']} boot={d['boot_state']} "
                    f"last={d['last_outcome'] or '-'} weak={weak}"
                )
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
@click.option("--device-id", help="Only this device.")
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
                printable(
                    f"{_utc(r['at'])} {r['device_id']} {r['release_id']} {r['outcome']}: "
                    f"{r['reason']}"
                )
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

    def render() -> None:
        latency = result.get("check_in_latency_s") or {}

        def ms(value: object) -> str:
            return f"{value * 1000:.1f} ms" if isinstance(value, int | float) else "-"

        click.echo(
            f"check-in latency: {latency.get('n', 0)} check-ins, p50 {ms(latency.get('p50'))}, "
            f"p99 {ms(latency.get('p99'))}"
        )
        for name, count in sorted((result.get("counts") or {}).items()):
            click.echo(printable(f"  {name}: {count}"))

    emit(result, as_json, render)


# -- staged rollouts ---------------------------------------------------------------------

rollout = command_group("rollout", "Staged rollouts that halt by themselves on failures.")
group.add_command(rollout)


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _render_rollout(r: dict[str, Any]) -> None:
    steps = ",".join(f"{s:g}" for s in r["steps"])
    window = r["window"]
    progress = r["progress"]
    click.echo(
        printable(
            f"rollout {r['id']}: release {r['release_id']} to cohort {r['cohort']} "
            f"{r['state']} at {r['percent']:g}% (steps {steps})"
        )
    )
    click.echo(
        f"  devices {progress['devices']}, offered {progress['offered']}, "
        f"updated {progress['updated']}"
    )
    click.echo(
        f"  last {window['outcomes']} outcome(s) since {_utc(window['since'])}: failure rate "
        f"{_percent(window['failure_rate'])}, rollback rate {_percent(window['rollback_rate'])} "
        f"(halts above {_percent(r['halt_on_failure_rate'])})"
    )
    if r.get("halt_reason"):
        click.echo(printable(f"  halted: {r['halt_reason']}"))


@rollout.command("start")
@_admin_options
@click.option("--cohort", "cohort_name", default="default", show_default=True)
@click.option(
    "--steps", default="1,10,50,100", show_default=True,
    help="Percentages of the cohort, in order; the last is 100.",
)  # fmt: skip
@click.option(
    "--halt-on-failure-rate", type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05, show_default=True,
    help="Halt when failures or rollbacks pass this share of the outcomes in the window.",
)  # fmt: skip
@click.option("--window", default="1h", show_default=True, help="Outcome window (30m, 1h, 2d).")
@click.option("--step-interval", help="Time at each step before the next [default: --window].")
@click.option(
    "--min-reports", type=click.IntRange(1, 1_000_000), default=1, show_default=True,
    help="Outcomes needed in the window before the rate can halt the rollout.",
)  # fmt: skip
@json_option
@click.argument("release_id", metavar="RELEASE")
def rollout_start(
    admin: AdminTarget,
    cohort_name: str,
    steps: str,
    halt_on_failure_rate: float,
    window: str,
    step_interval: str | None,
    min_reports: int,
    as_json: bool,
    release_id: str,
) -> None:
    """Offer RELEASE to a growing share of a cohort; halt on failures or rollbacks."""
    from espsec.fleet import rollout as policy

    policy.parse_steps(steps)
    options: dict[str, Any] = {
        "steps": steps,
        "halt_on_failure_rate": halt_on_failure_rate,
        "window_s": policy.parse_duration(window),
        "min_reports": min_reports,
    }
    if step_interval is not None:
        options["step_interval_s"] = policy.parse_duration(step_interval)
    with admin.client() as client:
        result = client.start_rollout(release_id, cohort_name, **options)
    emit(result, as_json, lambda: _render_rollout(result))


def _rollout_action(action: str, doc: str) -> None:
    @_admin_options
    @json_option
    @click.argument("rollout_id", metavar="ROLLOUT", type=click.IntRange(1))
    def command(admin: AdminTarget, as_json: bool, rollout_id: int) -> None:
        with admin.client() as client:
            result = client.rollout_action(rollout_id, action)
        emit(result, as_json, lambda: _render_rollout(result))

    command.__doc__ = doc
    rollout.command(action)(command)


_rollout_action("pause", "Hold ROLLOUT at its current step.")
_rollout_action("resume", "Continue a paused or halted ROLLOUT (outcomes counted from now).")
_rollout_action("abort", "Stop offering ROLLOUT's release; the cohort keeps its release.")


@rollout.command("status")
@_admin_options
@json_option
@click.argument("rollout_id", metavar="[ROLLOUT]", type=click.IntRange(1), required=False)
def rollout_status(admin: AdminTarget, as_json: bool, rollout_id: int | None) -> None:
    """ROLLOUT's state, progress and failure rate (no ROLLOUT: every recent rollout).

    Exits 1 when a rollout shown is halted.
    """
    with admin.client() as client:
        rows = [client.rollout(rollout_id)] if rollout_id is not None else client.rollouts()
    result: Any = rows[0] if rollout_id is not None else rows

    def render() -> None:
        if not rows:
            click.echo("no rollouts")
        for r in rows:
            _render_rollout(r)

    emit(result, as_json, render)
    if any(r["state"] == "halted" for r in rows):
        raise SystemExit(1)


# -- device posture ----------------------------------------------------------------------


@group.command("posture")
@_admin_options
@json_option
def posture(admin: AdminTarget, as_json: bool) -> None:
    """The fleet's security posture: devices by Secure Boot, flash encryption, JTAG and
    download mode, and the weak devices (exits 1 when there are any)."""
    with admin.client() as client:
        result = client.posture()

    def render() -> None:
        click.echo(f"{result['devices']} device(s), {result['weak_devices']} weak")
        for name, counts in result["by_field"].items():
            shown = ", ".join(f"{printable(k)}: {n}" for k, n in counts.items()) or "-"
            click.echo(f"  {name}: {shown}")
        titles = {r["code"]: r for r in result["rules"]}
        for code, n in result["by_flag"].items():
            rule = titles.get(code, {"severity": "?", "title": code})
            click.echo(printable(f"  [{rule['severity']}] {code} ({n}): {rule['title']}"))
        for d in result["weak"][:50]:
            click.echo(printable(f"  {d['device_id']} ({d['cohort']}): {', '.join(d['flags'])}"))
        if len(result["weak"]) > 50:
            click.echo(f"  ... and {len(result['weak']) - 50} more (--json lists them all)")

    emit(result, as_json, render)
    if result["weak_devices"]:
        raise SystemExit(1)


# -- TLS ---------------------------------------------------------------------------------

tls = command_group("tls", "The fleet server's TLS certificate.")
group.add_command(tls)


@tls.command("renew")
@click.option(
    "--ca-key", type=INPUT,
    help="The TLS CA key, when it is kept offline (see `fleet init --ca-key-output`).",
)  # fmt: skip
@click.option(
    "--days", type=click.IntRange(8, 825), default=825, show_default=True,
    help="Validity of the new certificate.",
)  # fmt: skip
@json_option
@click.argument("state_dir", type=_dir)
def tls_renew(ca_key: Path | None, days: int, as_json: bool, state_dir: Path) -> None:
    """Issue a new server certificate and key from the fleet's TLS CA (devices keep
    trusting the same CA; a running server picks it up within a minute)."""
    from espsec.fleet.config import TLS_DIR, load_config
    from espsec.fleet.tls import days_left, renew_tls

    config = load_config(state_dir)
    files = renew_tls(state_dir / TLS_DIR, config.hostnames, ca_key_file=ca_key, days=days)
    result = {
        "server_certificate": str(files.server_cert),
        "days_left": round(days_left(files.server_cert), 1),
    }
    emit(
        result,
        as_json,
        lambda: click.echo(
            f"renewed {files.server_cert}: valid for {result['days_left']:.0f} more days"
        ),
    )
