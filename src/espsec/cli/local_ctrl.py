"""``espsec local-ctrl``: list, read and set a device's properties over ESP Local Control.

Every command connects over HTTPS, checks the device's certificate (``--ca``, ``--pin``
or an ESP x509 ``--cert-bundle``: one is required), reads ``esp_local_ctrl/version``,
establishes the protocomm session and talks on ``esp_local_ctrl/control``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from espsec._io import read_bytes
from espsec.cli._common import (
    ADDRESS,
    INPUT,
    command_group,
    emit,
    json_option,
    read_secret,
    source,
)
from espsec.errors import UsageError, VerificationError

group = command_group("local-ctrl", "Read and set device properties (ESP Local Control).")


def _connection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--service-name",
            type=ADDRESS,
            required=True,
            help="HOST:PORT of the device's local control.",
        ),
        click.option("--sec-ver", type=click.IntRange(0, 2), default=2, show_default=True),
        click.option("--pop-file", type=INPUT, help="Security 1: file with the PoP."),
        click.option("--sec2-username", help="Security 2: the username."),
        click.option(
            "--sec2-password-file", type=INPUT, help="Security 2: file with the password."
        ),
        click.option(
            "--allow-sec2-patch0",
            is_flag=True,
            help="Accept security 2 with sec_patch_ver 0 (old firmware).",
        ),
        click.option("--ca", type=INPUT, help="Trust devices whose certificate chains to this CA."),
        click.option("--pin", type=INPUT, help="Trust exactly this device certificate (PEM)."),
        click.option(
            "--cert-bundle", type=INPUT, help="Trust the roots of this ESP x509 certificate bundle."
        ),
        json_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _client(opts: dict[str, Any]) -> Any:
    import hashlib
    import ssl

    from espsec import _pem
    from espsec.provisioning.local_ctrl import LocalCtrlClient
    from espsec.provisioning.protocomm import HttpTransport

    trusts = [k for k in ("ca", "pin", "cert_bundle") if opts[k] is not None]
    if len(trusts) != 1:
        raise UsageError("give exactly one of --ca, --pin or --cert-bundle")
    sec_ver = opts["sec_ver"]
    if sec_ver == 2 and (not opts["sec2_username"] or opts["sec2_password_file"] is None):
        raise UsageError("--sec-ver 2 needs --sec2-username and --sec2-password-file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if opts["ca"] is not None:
        from cryptography.hazmat.primitives.serialization import Encoding

        cas = _pem.load_certificates(read_bytes(opts["ca"], what="CA"), source=str(opts["ca"]))
        context.load_verify_locations(
            cadata="".join(c.public_bytes(Encoding.PEM).decode() for c in cas)
        )
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # checked below, before any protocomm byte
    transport = HttpTransport(opts["service_name"], ssl_context=context)
    transport.connect()
    der = transport.peer_certificate or b""
    if opts["pin"] is not None:
        with source(str(opts["pin"])):
            pinned = _pem.load_certificate(read_bytes(opts["pin"], what="pinned certificate"))
        from cryptography.hazmat.primitives import serialization

        want = hashlib.sha256(pinned.public_bytes(serialization.Encoding.DER)).digest()
        if not der or hashlib.sha256(der).digest() != want:
            raise VerificationError("the device's certificate is not the pinned one")
    elif opts["cert_bundle"] is not None:
        from espsec.identity.cert_bundle import CertBundle, verify_chain

        with source(str(opts["cert_bundle"])):
            bundle = CertBundle.parse(read_bytes(opts["cert_bundle"], what="certificate bundle"))
        cert = _pem.load_certificate(der, source="the device's certificate", allow_der=True)
        result = verify_chain(bundle, [cert])
        if not result.trusted:
            raise VerificationError(f"the device's certificate: {result.reason}")
    return LocalCtrlClient.connect(
        transport,
        sec_ver,
        pop=read_secret(opts["pop_file"], "PoP file"),
        username=opts["sec2_username"].encode() if opts["sec2_username"] else None,
        password=read_secret(opts["sec2_password_file"], "password file"),
        min_patch_version=0 if opts["allow_sec2_patch0"] else 1,
    )


def _line(prop: dict[str, object]) -> str:
    flags = ",".join(prop["flags"]) or "-"  # type: ignore[arg-type]
    return f"{prop['name']:<20} {prop['type']:<10} {flags:<20} {prop['value']}"


@group.command("list")
@_connection_options
def list_cmd(**opts: Any) -> None:
    """List every property with its type, flags and value."""
    props = [p.to_json() for p in _client(opts).properties()]

    def render() -> None:
        for p in props:
            click.echo(_line(p))

    emit(props, opts["as_json"], render)


@group.command("get")
@click.argument("name")
@_connection_options
def get_cmd(name: str, **opts: Any) -> None:
    """Print property NAME."""
    prop = _client(opts).get(name).to_json()
    emit(prop, opts["as_json"], lambda: click.echo(_line(prop)))


@group.command("set")
@click.argument("name")
@click.argument("value")
@_connection_options
def set_cmd(name: str, value: str, **opts: Any) -> None:
    """Set property NAME to VALUE (converted to the property's type)."""
    prop = _client(opts).set(name, value).to_json()
    emit(prop, opts["as_json"], lambda: click.echo(_line(prop)))
