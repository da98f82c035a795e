"""``espsec ds``: Digital Signature peripheral data (``esp_ds_data_t``) on the host."""

from __future__ import annotations

from pathlib import Path

import click

from espsec._io import read_bytes, write_output
from espsec.chips import CHIPS, DEFAULT_CHIP
from espsec.cli._common import (
    INPUT,
    chip_option,
    command_group,
    emit,
    json_option,
    note,
    output_option,
    source,
)
from espsec.errors import FormatError, UsageError

group = command_group("ds", "Digital Signature peripheral: encrypt and check esp_ds_data_t.")

_hmac_key = click.option(
    "--hmac-key",
    "hmac_key_file",
    type=INPUT,
    required=True,
    help="32-byte HMAC key file (the eFuse key of purpose HMAC_DOWN_DIGITAL_SIGNATURE).",
)
DS_CHIPS = tuple(sorted(name for name, chip in CHIPS.items() if "ds" in chip.peripherals))
"""Chips with a Digital Signature peripheral (``SOC_DIG_SIGN_SUPPORTED``)."""


def read_hmac_key(path: Path) -> bytes:
    """A 32-byte HMAC key file (one eFuse key block); any other size is bad input (exit 1)."""
    data = read_bytes(path, what="HMAC key file")
    if len(data) != 32:
        raise FormatError(
            "not an HMAC key file",
            expected="32 bytes",
            found=f"{len(data)} bytes",
            source=str(path),
        )
    return data


def parse_iv(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        iv = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"--iv must be 32 hex digits, found {text!r}") from None
    if len(iv) != 16:
        raise UsageError(f"--iv must be 16 bytes (32 hex digits), found {len(iv)} bytes")
    return iv


@group.command("encrypt")
@_hmac_key
@click.option("-k", "--key", "key_file", type=INPUT, required=True, help="RSA private key (PEM).")
@click.option("--iv", help="AES-CBC IV, 32 hex digits (default: random).")
@chip_option(chips=DS_CHIPS, default=DEFAULT_CHIP)
@output_option(help="The esp_ds_data_t to write ('-': standard output).")
@json_option
def encrypt(
    hmac_key_file: Path, key_file: Path, iv: str | None, chip: str, output: Path, as_json: bool
) -> None:
    """Encrypt an RSA private key for the DS peripheral (esp_ds_data_t).

    The chip fixes the DS size: 4096 bits on ESP32-S3/P4, 3072 on ESP32-C3/C6/H2.
    """
    from cryptography.hazmat.primitives.asymmetric import rsa

    from espsec._pem import RSA, load_private_key
    from espsec.identity import ds

    hmac_key = read_hmac_key(hmac_key_file)
    with source(str(key_file)):
        key = load_private_key(read_bytes(key_file, what="key file"), kinds=[RSA])
    if not isinstance(key, rsa.RSAPrivateKey):  # pragma: no cover - kinds=[RSA]
        raise UsageError("the DS peripheral signs with RSA keys only")
    with source(str(key_file)):
        data = ds.encrypt(key, hmac_key, iv=parse_iv(iv), chip=chip)
    write_output(output, data.to_bytes())
    report = {"output": str(output), "chip": chip, "rsa_bits": data.bits, "ds_bits": data.max_bits}
    emit(report, as_json, lambda: note(f"RSA-{data.bits} DS data for {chip} -> {output}", output))


@group.command("check")
@_hmac_key
@click.option(
    "--cert", "cert_file", type=INPUT, help="Also check the key matches this certificate."
)
@json_option
@click.argument("ds_data", type=INPUT)
def check(hmac_key_file: Path, cert_file: Path | None, as_json: bool, ds_data: Path) -> None:
    """Check DS_DATA decrypts under the HMAC key as the DS peripheral would (exit 1 if not)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from espsec._pem import load_certificate
    from espsec.identity import ds
    from espsec.identity.hmac import ds_aes_key

    hmac_key = read_hmac_key(hmac_key_file)
    with source(str(ds_data)):
        data = ds.DsData.parse(read_bytes(ds_data, what="DS data"))
    cert = None
    if cert_file is not None:
        with source(str(cert_file)):
            cert = load_certificate(read_bytes(cert_file, what="certificate"), allow_der=True)
    report: dict[str, object] = {"rsa_bits": data.bits, "ds_bits": data.max_bits}
    try:
        params = ds.decrypt(data, ds_aes_key(hmac_key))
    except ds.DsError as exc:
        report.update(ok=False, error=exc.esp_err, reason=exc.message)
    else:
        report["ok"] = True
        if cert is not None:
            public = cert.public_key()
            same = isinstance(public, rsa.RSAPublicKey) and public.public_numbers().n == params.m
            report.update(ok=same, matches_certificate=same)

    def render() -> None:
        if report["ok"]:
            extra = " and matches the certificate" if cert is not None else ""
            click.echo(f"{ds_data}: RSA-{data.bits} DS data opens with the HMAC key{extra}")
        elif "error" in report:
            click.echo(f"{ds_data}: {report['reason']}")
        else:
            click.echo(f"{ds_data}: the DS key is not the certificate's key")

    emit(report, as_json, render)
    if not report["ok"]:
        raise SystemExit(1)
