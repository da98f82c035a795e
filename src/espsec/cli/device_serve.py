"""``espsec device provision-serve`` and ``espsec device local-ctrl-serve``: the device's
runtime services on the network.

Kept apart from :mod:`espsec.cli.device` and attached to its group by
:func:`register`; each command boots the device folder, starts the service and serves
until interrupted (or ``--max-seconds``), saving the folder after every change.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from espsec.cli._common import HOST, INPUT, PORT, EspsecCommand, emit, json_option, read_secret
from espsec.errors import UsageError

_dir = click.Path(file_okay=False, exists=True, path_type=Path)


def _security_options(f: click.decorators.FC) -> click.decorators.FC:
    options = [
        click.option("--sec-ver", type=click.IntRange(0, 2), default=2, show_default=True),
        click.option(
            "--pop-file", type=INPUT, help="Security 1: file with the proof of possession."
        ),
        click.option("--sec2-username", help="Security 2: the username."),
        click.option(
            "--sec2-password-file", type=INPUT, help="Security 2: file with the password."
        ),
        click.option(
            "--sec-patch-ver",
            type=click.IntRange(0, 1),
            default=1,
            show_default=True,
            help="Security 2 nonce rule: 1 counter nonce (current), 0 fixed IV (old firmware).",
        ),
        click.option(
            "--max-failed-sessions",
            type=click.IntRange(1, None),
            help="Refuse new sessions after this many failed handshakes (off: as ESP-IDF).",
        ),
        click.option(
            "--host", type=HOST, default="127.0.0.1", show_default=True, help="Listen here."
        ),
        click.option(
            "--port",
            type=PORT,
            default=80,
            show_default=True,
            help="TCP port to listen on (0: any free port; the address is printed).",
        ),
        click.option(
            "--max-seconds",
            type=click.FloatRange(0, None),
            help="Stop after this long (default: until interrupted).",
        ),
        json_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _security(opts: dict[str, Any]) -> Any:
    from espsec.device.provisioning import SecurityOptions

    sec_ver = opts["sec_ver"]
    if sec_ver == 2 and (not opts["sec2_username"] or opts["sec2_password_file"] is None):
        raise UsageError("--sec-ver 2 needs --sec2-username and --sec2-password-file")
    if sec_ver != 1 and opts["pop_file"] is not None:
        raise UsageError("--pop-file is for --sec-ver 1")
    return SecurityOptions(
        sec_ver,
        pop=read_secret(opts["pop_file"], "PoP file"),
        username=opts["sec2_username"].encode() if opts["sec2_username"] else None,
        password=read_secret(opts["sec2_password_file"], "password file"),
        sec_patch_ver=opts["sec_patch_ver"],
        max_failed_sessions=opts["max_failed_sessions"],
    )


def _serve(server: Any, max_seconds: float | None) -> None:
    server.start()
    try:
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@click.command("provision-serve", cls=EspsecCommand)
@click.argument("folder", metavar="DIR", type=_dir)
@_security_options
@click.option(
    "--min-auth-mode",
    default="open",
    show_default=True,
    help="Weakest AP auth mode to join: open, wep, wpa, wpa-wpa2, wpa2, wpa2-wpa3, wpa3-sae.",
)
@click.option("--pmf-required", is_flag=True, help="Refuse APs without PMF.")
@click.option("--wpa3-only", is_flag=True, help="Join only with WPA3-SAE.")
def provision_serve(
    folder: Path, min_auth_mode: str, pmf_required: bool, wpa3_only: bool, **opts: Any
) -> None:
    """Serve Wi-Fi provisioning (protocomm over HTTP) from the device in DIR.

    Endpoints proto-ver, prov-session, prov-config, prov-scan, prov-ctrl and custom-data;
    APs come from DIR/wifi_aps.json, credentials go to the app's NVS, session events
    to DIR/provisioning.log. The Wi-Fi policy comes from the options (the sdkconfig
    option table has no Wi-Fi options yet).
    """
    from espsec.device.provisioning import DeviceRuntimeService, open_provisioning
    from espsec.provisioning.protocomm import ProtocommHttpServer
    from espsec.provisioning.wifi_prov import WifiPolicy, parse_auth

    security = _security(opts)
    policy = WifiPolicy(parse_auth(min_auth_mode), pmf_required, wpa3_only)
    with DeviceRuntimeService(folder) as runtime:
        prov = open_provisioning(runtime, security, policy)
        server = ProtocommHttpServer(prov.protocomm, host=opts["host"], port=opts["port"])
        click.echo(
            f"provisioning on http://{server.address} (security {security.sec_ver})", err=True
        )
        _serve(server, opts["max_seconds"])
        report = prov.report()
    emit(report, opts["as_json"], lambda: click.echo(f"stopped: station {report['sta_state']}"))


@click.command("local-ctrl-serve", cls=EspsecCommand)
@click.argument("folder", metavar="DIR", type=_dir)
@_security_options
@click.option("--cert", type=INPUT, help="HTTPS certificate (PEM) [default: the device's own].")
@click.option("-k", "--key", type=INPUT, help="Private key of --cert (PEM).")
def local_ctrl_serve(folder: Path, cert: Path | None, key: Path | None, **opts: Any) -> None:
    """Serve ESP Local Control (protocomm over HTTPS) from the device in DIR.

    Properties come from DIR/local_ctrl.json (or a default set); persistent ones live
    in the app's NVS. Without --cert/--key the device uses DIR/local_ctrl_cert.pem,
    a self-signed certificate made on first use: clients pin it (espsec local-ctrl --pin).
    """
    from espsec.device.local_ctrl import open_local_ctrl, server_identity, server_ssl_context
    from espsec.device.provisioning import DeviceRuntimeService
    from espsec.provisioning.protocomm import ProtocommHttpServer

    if (cert is None) != (key is None):
        raise UsageError("give both --cert and --key, or neither")
    security = _security(opts)
    with DeviceRuntimeService(folder) as runtime:
        service, pc = open_local_ctrl(runtime, security)
        context = server_ssl_context(*server_identity(folder, cert, key))
        server = ProtocommHttpServer(pc, host=opts["host"], port=opts["port"], ssl_context=context)
        click.echo(
            f"local control on https://{server.address} (security {security.sec_ver})", err=True
        )
        _serve(server, opts["max_seconds"])
        report = {
            "properties": [p.to_json() for p in service.properties],
            "sessions": [e.to_json() for e in pc.log.events],
        }
    emit(report, opts["as_json"], lambda: click.echo("stopped"))


def register(group: click.Group) -> None:
    """Add the service commands to ``espsec device``."""
    group.add_command(provision_serve)
    group.add_command(local_ctrl_serve)
