"""``espsec device sign``: the work behind the command (kept out of ``cli/device.py``)."""

from __future__ import annotations

from pathlib import Path

import click

from espsec._io import read_bytes, write_output
from espsec.cli._common import emit


def sign_command(folder: Path, data_file: Path, output: Path, as_json: bool) -> None:
    """Sign ``data_file`` with the identity of the virtual device in ``folder``."""
    from espsec.device.identity import sign_with_device

    data = read_bytes(data_file, what="data file")
    result = sign_with_device(folder, data)
    write_output(output, result.signature)
    report = {
        "algorithm": result.algorithm,
        "key_source": result.key_source,
        "signature": str(output),
        "length": len(result.signature),
    }
    emit(
        report,
        as_json,
        lambda: click.echo(
            f"{result.algorithm} signature by the {result.key_source} key -> {output}",
            err=str(output) == "-",
        ),
    )


def provision_identity_command(
    folder: Path,
    device_id: str,
    ca: Path,
    ca_key: Path,
    key_block: int | None,
    as_json: bool,
    *,
    curve: str = "P-256",
) -> None:
    """Give the device in ``folder`` an identity signed by the device CA (``curve``: of
    an ECDSA-peripheral key)."""
    from espsec._pem import load_certificate, load_private_key
    from espsec.cli._common import source
    from espsec.device import VirtualDevice
    from espsec.device.identity import provision_identity
    from espsec.identity.ecdsa import EcdsaCurve

    with source(str(ca)):
        ca_cert = load_certificate(read_bytes(ca, what="device CA"))
    with source(str(ca_key)):
        key = load_private_key(read_bytes(ca_key, what="device CA key"))
    dev = VirtualDevice.open(folder)
    cert = provision_identity(
        dev, device_id, ca_cert, key, key_id=key_block, curve=EcdsaCurve(curve.upper())
    )
    dev.save()
    ecdsa = "ecdsa" in dev.chip.peripherals
    source_name = f"ECDSA peripheral {curve.upper()}" if ecdsa else "DS peripheral"
    report = {
        "device_id": device_id,
        "key": source_name,
        "subject": cert.subject.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }
    emit(
        report,
        as_json,
        lambda: click.echo(f"{folder}: identity for {device_id} ({source_name} key in eFuse)"),
    )
