"""``espsec prov``: provision a device's Wi-Fi, in the manner of esp_prov.

``espsec prov [OPTIONS]`` reads the device's ``proto-ver``, establishes the protocomm
session (security 0, 1 or 2; a device that offers less than asked is refused), and then
scans, sends credentials and custom data, or resets / re-provisions, as asked.
``espsec prov gen-sec2-cred`` writes the salt and verifier a security 2 firmware is built
with. Secrets (PoP, password, passphrase) are read from files, never from argv.

Exit codes: 0 done (and, with ``--ssid``, connected); 1 refused, failed to connect, or
bad input; 2 usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from espsec._io import write_output
from espsec.cli._common import (
    ADDRESS,
    INPUT,
    command_group,
    emit,
    json_option,
    output_option,
    read_secret,
    style,
)
from espsec.errors import UsageError

_dir = click.Path(file_okay=False, exists=True, path_type=Path)


@click.option(
    "--transport", type=click.Choice(["httpd", "ble-sim"]), default="httpd", show_default=True
)
@click.option(
    "--service-name",
    type=ADDRESS,
    default="192.168.4.1:80",
    show_default=True,
    help="httpd: HOST:PORT of the device's provisioning server.",
)
@click.option(
    "--device",
    metavar="DIR",
    type=_dir,
    help="ble-sim: the device folder, served over simulated BLE.",
)
@click.option("--sec-ver", type=click.IntRange(0, 2), default=2, show_default=True)
@click.option("--pop-file", type=INPUT, help="Security 1: file with the proof of possession.")
@click.option("--sec2-username", help="Security 2: the username.")
@click.option("--sec2-password-file", type=INPUT, help="Security 2: file with the password.")
@click.option(
    "--allow-sec2-patch0",
    is_flag=True,
    help="Accept security 2 with sec_patch_ver 0 (old firmware; a fixed GCM nonce).",
)
@click.option("--ssid", help="The network to join.")
@click.option("--passphrase-file", type=INPUT, help="File with the network passphrase.")
@click.option("--custom-data", help="Send this text to the custom-data endpoint.")
@click.option("--scan", "do_scan", is_flag=True, help="List the networks the device sees.")
@click.option("--reset", "do_reset", is_flag=True, help="Reset the device after a failed attempt.")
@click.option("--reprov", "do_reprov", is_flag=True, help="Let a provisioned device re-provision.")
@json_option
@click.pass_context
def _prov(ctx: click.Context, /, **opts: Any) -> None:
    if ctx.invoked_subcommand is not None:
        return
    _provision(ctx, **opts)


group = command_group(
    "prov",
    "Provision Wi-Fi over protocomm (as esp_prov), or make security 2 credentials.",
    invoke_without_command=True,
    callback=_prov,
    params=list(reversed(_prov.__click_params__)),  # type: ignore[attr-defined]
)


def _provision(
    ctx: click.Context,
    *,
    transport: str,
    service_name: str,
    device: Path | None,
    sec_ver: int,
    pop_file: Path | None,
    sec2_username: str | None,
    sec2_password_file: Path | None,
    allow_sec2_patch0: bool,
    ssid: str | None,
    passphrase_file: Path | None,
    custom_data: str | None,
    do_scan: bool,
    do_reset: bool,
    do_reprov: bool,
    as_json: bool,
) -> None:
    from espsec.provisioning.protocomm import HttpTransport
    from espsec.provisioning.prov_client import ProvClient

    if passphrase_file is not None and ssid is None:
        raise UsageError("--passphrase-file needs --ssid")
    if sec_ver == 2 and (not sec2_username or sec2_password_file is None):
        raise UsageError("--sec-ver 2 needs --sec2-username and --sec2-password-file")
    if sec_ver != 1 and pop_file is not None:
        raise UsageError("--pop-file is for --sec-ver 1")
    if transport == "ble-sim" and device is None:
        raise UsageError("--transport ble-sim needs --device DIR")
    pop = read_secret(pop_file, "PoP file")
    password = read_secret(sec2_password_file, "password file")
    passphrase = read_secret(passphrase_file, "passphrase file") or b""
    username = sec2_username.encode() if sec2_username else None
    security: dict[str, Any] = {"pop": pop, "username": username, "password": password}
    min_patch = 0 if allow_sec2_patch0 else 1

    runtime = None
    if transport == "ble-sim":
        from espsec.device.provisioning import (
            DeviceRuntimeService,
            SecurityOptions,
            open_provisioning,
        )
        from espsec.provisioning.protocomm import BleSimTransport, GattServer
        from espsec.provisioning.wifi_prov import WifiPolicy

        assert device is not None
        runtime = DeviceRuntimeService(device)
        prov = open_provisioning(runtime, SecurityOptions(sec_ver, **security), WifiPolicy())
        link: Any = BleSimTransport(GattServer(prov.protocomm))
    else:
        link = HttpTransport(service_name)
    doc: dict[str, object] = {"transport": transport}
    ok = True
    try:
        client = ProvClient.connect(link, sec_ver, min_patch_version=min_patch, **security)
        doc["version"] = client.version.to_json()
        doc["session"] = f"security {sec_ver} established"
        if do_scan:
            doc["scan"] = client.scan()
        if do_reset:
            client.reset()
            doc["reset"] = True
        if do_reprov:
            client.reprov()
            doc["reprov"] = True
        if custom_data is not None:
            doc["custom_data_reply"] = client.custom_data(custom_data.encode()).decode(
                "utf-8", "replace"
            )
        if ssid is not None:
            status = client.provision(ssid.encode(), passphrase)
            doc["status"] = status.to_json()
            ok = status.state == "connected"
    finally:
        if runtime is not None:
            runtime.close()
    emit(doc, as_json, lambda: _render(doc))
    if not ok:
        ctx.exit(1)


def _render(doc: dict[str, Any]) -> None:
    version = doc["version"]
    click.echo(
        f"device {version['ver'] or '?'}: {doc['session']}"
        f" (sec_patch_ver {version['sec_patch_ver']}, cap {', '.join(version['cap']) or '-'})"
    )
    for ap in doc.get("scan", []):
        click.echo(
            f"  {ap['ssid']:<32} {ap['bssid']}  ch {ap['channel']:>3}  "
            f"{ap['rssi']:>4} dBm  {ap['auth']}"
        )
    if doc.get("reset"):
        click.echo("reset: the device takes new credentials")
    if doc.get("reprov"):
        click.echo("reprov: the device takes new credentials")
    if "custom_data_reply" in doc:
        click.echo(f"custom data: device answered {doc['custom_data_reply']!r}")
    status = doc.get("status")
    if status is not None:
        if status["state"] == "connected":
            c = status["connected"]
            click.echo(
                f"connected to {c['ssid']} ({c['auth_mode']}, {c['bssid']}), IP {c['ip4_addr']}"
            )
        else:
            click.echo(style(f"connection {status['state']}: {status['fail_reason']}", fg="red"))


@group.command("gen-sec2-cred")
@click.option("--sec2-username", "username", required=True, help="The security 2 username.")
@click.option("--sec2-password-file", "password_file", type=INPUT, required=True)
@click.option(
    "--sec2-salt-len", "salt_len", type=click.IntRange(8, 64), default=16, show_default=True
)
@output_option(help="C source with sec2_salt and sec2_verifier for the firmware.")
@json_option
def gen_sec2_cred(
    username: str, password_file: Path, salt_len: int, output: Path, as_json: bool
) -> None:
    """Write the salt and verifier for firmware (esp_prov --sec2_gen_cred)."""
    from espsec.provisioning.protocomm import srp

    password = read_secret(password_file, "password file")
    if not password:
        raise UsageError(f"{password_file}: the password file is empty")
    salt = srp.new_salt(salt_len)
    verifier = srp.verifier(username.encode(), password, salt)
    write_output(output, srp.c_arrays(salt, verifier).encode())
    doc = {
        "username": username,
        "salt": salt.hex(),
        "verifier": verifier.hex(),
        "output": str(output),
    }
    emit(
        doc,
        as_json,
        lambda: click.echo(f"sec2_salt ({len(salt)} bytes) and sec2_verifier -> {output}"),
    )
