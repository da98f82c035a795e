"""``espsec ota``: pre-encrypted images, device ECIES keys, release bundles."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from espsec import ota, secure_boot
from espsec._io import read_bytes, write_output
from espsec.chips import get_chip
from espsec.cli._common import (
    INPUT,
    chip_option,
    command_group,
    emit,
    json_option,
    key_digest_slots,
    note,
    output_option,
    source,
)
from espsec.cli.ds import read_hmac_key
from espsec.cli.secure_boot import pkcs11_option, pkcs11_signers, read_public_key, trust_options
from espsec.errors import UsageError

group = command_group("ota", "Pre-encrypted OTA images and signed release bundles.")


@group.command("encrypt")
@click.option(
    "-k",
    "--key",
    "key_path",
    type=INPUT,
    required=True,
    help="RSA-3072 public key, or the device's ECIES P-256 public key (PEM).",
)
@output_option(help="The esp_encrypted_img to write ('-': standard output).")
@json_option
@click.argument("input_path", metavar="IMAGE", type=INPUT)
def encrypt(key_path: Path, output: Path, as_json: bool, input_path: Path) -> None:
    """Encrypt IMAGE into an esp_encrypted_img (scheme chosen by the key type)."""
    with source(str(key_path)):
        key = ota.load_recipient_key(read_bytes(key_path, what="key file"))
    data = read_bytes(input_path, what="image")
    with source(str(input_path)):
        encrypted = ota.encrypt_image(data, key)
    write_output(output, encrypted)
    scheme = ota.encrypted_image.scheme_of_key(key).value
    report = {
        "output": str(output),
        "scheme": scheme,
        "bin_size": len(data),
        "recipient": ota.recipient_id(key),
    }
    emit(report, as_json, lambda: note(f"{scheme}: encrypted {input_path} -> {output}", output))


@group.command("decrypt")
@click.option(
    "-k", "--key", "key_path", type=INPUT, help="RSA-3072 or device P-256 private key (PEM)."
)
@click.option("--hmac-key", "hmac_path", type=INPUT, help="The device's 32-byte HMAC eFuse key.")
@output_option(help="The plain image to write ('-': standard output).")
@json_option
@click.argument("input_path", metavar="IMAGE", type=INPUT)
def decrypt(
    key_path: Path | None, hmac_path: Path | None, output: Path, as_json: bool, input_path: Path
) -> None:
    """Decrypt an esp_encrypted_img IMAGE; written only if the GCM tag verifies (else exit 1)."""
    if (key_path is None) == (hmac_path is None):
        raise UsageError("give exactly one of --key or --hmac-key")
    key: ota.DecryptionKey
    if key_path is not None:
        with source(str(key_path)):
            key = ota.load_decryption_key(read_bytes(key_path, what="key file"))
    else:
        assert hmac_path is not None
        with source(str(hmac_path)):
            key = ota.device_private_key(read_hmac_key(hmac_path))
    data = read_bytes(input_path, what="encrypted image")
    with source(str(input_path)):
        plain = ota.decrypt_image(data, key)
    write_output(output, plain)
    report = {"output": str(output), "length": len(plain)}
    emit(
        report,
        as_json,
        lambda: note(f"decrypted {input_path} -> {output} ({len(plain)} bytes)", output),
    )


@group.command("device-key")
@click.option("--hmac-key", "hmac_path", type=INPUT, required=True, help="32-byte HMAC eFuse key.")
@output_option(help="The device's ECIES public key PEM to write ('-': standard output).")
@json_option
def device_key(hmac_path: Path, output: Path, as_json: bool) -> None:
    """Write the ECIES public key a device with this HMAC eFuse key uses (encrypt to it)."""
    with source(str(hmac_path)):
        public = ota.device_public_key(read_hmac_key(hmac_path))
    write_output(output, ota.public_key_pem(public))
    report = {"output": str(output), "recipient": ota.recipient_id(public)}
    emit(report, as_json, lambda: note(f"device ECIES public key written to {output}", output))


@group.command("pack")
@click.option(
    "-k",
    "--key",
    "keys",
    type=INPUT,
    multiple=True,
    help="Secure Boot v2 signing key (repeatable); also signs the release statement.",
)
@pkcs11_option
@click.option(
    "--encrypt-to",
    "recipients",
    type=INPUT,
    multiple=True,
    help="Pre-encrypt for this RSA-3072 or device ECIES public key (repeatable).",
)
@click.option("--include-plaintext", is_flag=True, help="Also ship the unencrypted signed image.")
@chip_option(required=False)
@output_option(
    "--signed-image-output",
    "signed_out",
    required=False,
    help="Also write the signed image here.",
)
@output_option(help="The release bundle to write ('-': standard output).")
@json_option
@click.argument("image", type=INPUT)
def pack(
    keys: tuple[Path, ...],
    pkcs11_uris: tuple[str, ...],
    recipients: tuple[Path, ...],
    include_plaintext: bool,
    chip: str | None,
    signed_out: Path | None,
    output: Path,
    as_json: bool,
    image: Path,
) -> None:
    """Sign (Secure Boot v2) and optionally pre-encrypt IMAGE into a release bundle.

    The keys (-k files, or --pkcs11-uri keys inside a token) sign both the image and the
    release statement. The chip comes from the image header unless --chip is given.
    """
    if not keys and not pkcs11_uris:
        raise UsageError("give at least one signing key (-k FILE or --pkcs11-uri URI)")
    if signed_out is not None and recipients and not include_plaintext:
        raise UsageError("--signed-image-output needs a plain payload (use --include-plaintext)")
    private: list[secure_boot.PrivateKey | secure_boot.Signer] = []
    for path in keys:
        with source(str(path)):
            private.append(secure_boot.load_private_key(read_bytes(path, what="key file")))
    public = []
    for path in recipients:
        with source(str(path)):
            public.append(ota.load_recipient_key(read_bytes(path, what="key file")))
    data = read_bytes(image, what="image")
    with ExitStack() as stack:
        private += pkcs11_signers(stack, pkcs11_uris)
        with source(str(image)):
            bundle = ota.pack(
                data,
                private,
                encrypt_to=public,
                include_plaintext=include_plaintext,
                chip=get_chip(chip) if chip else None,
            )
    write_output(output, bundle.to_bytes())
    if signed_out is not None:  # there is a plain payload: checked before packing
        plain = next(
            d
            for p, d in zip(bundle.statement.payloads, bundle.payloads, strict=True)
            if p.encryption == "none"
        )
        write_output(signed_out, plain)
    st = bundle.statement
    report = {
        "output": str(output),
        "release_id": bundle.release_id,
        "version": st.version,
        "secure_version": st.secure_version,
        "payloads": [p.to_dict() for p in st.payloads],
    }

    def render() -> None:
        note(
            f"release {bundle.release_id}: {st.project_name} {st.version} "
            f"(secure_version {st.secure_version}) -> {output}",
            output,
            signed_out,
        )
        for p in st.payloads:
            note(f"  {p.name}: {p.encryption}, {p.length} bytes", output, signed_out)

    emit(report, as_json, render)


def _render_inspect(report: dict[str, Any]) -> None:
    for key, value in report.items():
        if isinstance(value, list | dict):
            click.echo(f"{key}:")
            items = value if isinstance(value, list) else [value]
            for item in items:
                click.echo(f"  {json.dumps(item, sort_keys=False)}")
        else:
            click.echo(f"{key}: {value}")


@group.command("inspect")
@json_option
@click.argument("file", type=INPUT)
def inspect(as_json: bool, file: Path) -> None:
    """Show a release bundle's, pre-encrypted image's or app image's version,
    secure_version, signatures and encryption (describes; does not verify trust)."""
    with source(str(file)):
        report = ota.describe(read_bytes(file, what="file"))
    emit(report, as_json, lambda: _render_inspect(report))


@group.command("verify-release")
@trust_options
@json_option
@click.argument("bundle", type=INPUT)
def verify_release(
    keys: tuple[Path, ...],
    digests: tuple[str, ...],
    revoked: tuple[int, ...],
    as_json: bool,
    bundle: Path,
) -> None:
    """Check a release bundle as the fleet server will before accepting it."""
    trusted = [read_public_key(path) for path in keys]
    slots = key_digest_slots(digests) if digests else None
    with source(str(bundle)):
        parsed = ota.ReleaseBundle.parse(read_bytes(bundle, what="release bundle"))
        report = ota.verify_release(parsed, keys=trusted, key_digests=slots, revoked=revoked)
    emit(
        report.to_json(),
        as_json,
        lambda: click.echo(f"{bundle}: release {report.release_id} verified"),
    )
