"""``espsec secure-boot``: keys, signing, external signatures, verification, digests."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import click

from espsec import secure_boot
from espsec._io import read_bytes, write_output, write_secret
from espsec.chips import EFUSE_MODEL_CHIPS, SCHEMES, get_chip
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
from espsec.errors import UsageError, VerificationError

group = command_group("secure-boot", "Secure Boot v2: sign, verify, key digests.")


def _private_key(path: Path) -> secure_boot.PrivateKey:
    with source(str(path)):
        return secure_boot.load_private_key(read_bytes(path, what="key file"))


PKCS11_HELP = (
    "Sign inside a PKCS#11 token: an RFC 7512 URI such as "
    "'pkcs11:token=T;object=sb;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
    "&pin-source=file:PIN_FILE' (repeatable). PIN from pin-source=file:/env:, or "
    "$ESPSEC_PKCS11_PIN; module from module-path or $ESPSEC_PKCS11_MODULE."
)

pkcs11_option = click.option(
    "--pkcs11-uri", "pkcs11_uris", multiple=True, metavar="URI", help=PKCS11_HELP
)


def pkcs11_signers(stack: ExitStack, uris: tuple[str, ...]) -> list[secure_boot.Signer]:
    """Open one token signer per URI; the stack closes their sessions."""
    signers: list[secure_boot.Signer] = []
    if not uris:
        return signers
    from espsec.secure_boot.pkcs11 import Pkcs11Signer

    for uri in uris:
        with source(uri.split("?", 1)[0]):
            signers.append(stack.enter_context(Pkcs11Signer(uri)))
    return signers


def trust_options(func: Callable[..., None]) -> Callable[..., None]:
    """The trusted-key options of a verifying command, as ``keys``, ``digests`` and
    ``revoked`` (``secure-boot verify``, ``ota verify-release``)."""
    for option in reversed(
        (
            click.option(
                "-k", "--key", "keys", type=INPUT, multiple=True,
                help="Trusted key, public or private.",
            ),
            click.option(
                "--key-digest", "digests", multiple=True,
                help="Trusted eFuse digest, slot 0, 1, 2 in order (hex or a 32-byte file; "
                "'-' = empty slot).",
            ),
            click.option(
                "--revoked", type=click.IntRange(0, 2), multiple=True, help="Revoked slot number."
            ),
        )
    ):  # fmt: skip
        func = option(func)
    return func


def read_public_key(path: Path) -> secure_boot.PublicKey:
    """The public key in the file ``path`` (a private key gives its public half)."""
    with source(str(path)):
        return secure_boot.load_public_key(read_bytes(path, what="key file"))


@group.command("generate-key")
@click.option("--scheme", type=click.Choice(SCHEMES), default="rsa3072", show_default=True)
@output_option(help="The private key to create (PEM, mode 0600; never overwrites).", secret=True)
@output_option(
    "--pub-key-output",
    "pub_key_output",
    required=False,
    help="Also write the public key PEM here.",
)
@json_option
def generate_key(scheme: str, output: Path, pub_key_output: Path | None, as_json: bool) -> None:
    """Generate a Secure Boot v2 signing key."""
    pem = secure_boot.generate_private_key(scheme)
    public = secure_boot.load_private_key(pem)
    write_secret(output, pem)
    if pub_key_output is not None:
        write_output(pub_key_output, secure_boot.public_key_pem(public))
    report = {
        "output": str(output),
        "scheme": scheme,
        "pub_key_output": str(pub_key_output) if pub_key_output else None,
        "key_digest": secure_boot.key_digest(public).hex(),
    }
    emit(report, as_json, lambda: note(f"{scheme} signing key written to {output}", pub_key_output))


@group.command("extract-public-key")
@output_option(help="The public key PEM to write ('-': standard output).")
@json_option
@click.argument("key", type=INPUT)
def extract_public_key(output: Path, as_json: bool, key: Path) -> None:
    """Write the public key PEM of a private KEY."""
    private = _private_key(key)
    write_output(output, secure_boot.public_key_pem(private))
    report = {"output": str(output), "scheme": secure_boot.scheme_of(private)}
    emit(report, as_json, lambda: note(f"public key written to {output}", output))


@group.command("sign")
@click.option("-k", "--key", "keys", type=INPUT, multiple=True, help="Private key (repeatable).")
@click.option(
    "--signature",
    "signatures",
    type=INPUT,
    multiple=True,
    help="Signature made elsewhere (repeatable, paired in order with --pub-key).",
)
@click.option("--pub-key", "pub_keys", type=INPUT, multiple=True, help="Public key of --signature.")
@pkcs11_option
@click.option("-a", "--append", is_flag=True, help="Add blocks to an already signed image.")
@chip_option(required=False)
@output_option(help="The signed image to write ('-': standard output).")
@json_option
@click.argument("image", type=INPUT)
def sign(
    keys: tuple[Path, ...],
    signatures: tuple[Path, ...],
    pub_keys: tuple[Path, ...],
    pkcs11_uris: tuple[str, ...],
    append: bool,
    chip: str | None,
    output: Path,
    as_json: bool,
    image: Path,
) -> None:
    """Sign IMAGE for Secure Boot v2 (pads to 4 KiB, appends the signature sector).

    Keys come from files (-k), from a PKCS#11 token (--pkcs11-uri: RSA-PSS or ECDSA
    inside the token, as espsecure --hsm), or as signatures made elsewhere. The chip
    comes from the image header unless --chip is given.
    """
    if len(signatures) != len(pub_keys):
        raise UsageError(
            f"--signature and --pub-key come in pairs: got {len(signatures)} signature(s) "
            f"and {len(pub_keys)} public key(s)"
        )
    private: list[secure_boot.PrivateKey | secure_boot.Signer] = [_private_key(k) for k in keys]
    external = []
    for sig_path, pub_path in zip(signatures, pub_keys, strict=True):
        with source(str(sig_path)):
            external.append(
                secure_boot.ExternalSignature(
                    read_public_key(pub_path), read_bytes(sig_path, what="signature file")
                )
            )
    target = get_chip(chip) if chip else None
    data = read_bytes(image, what="image")
    with ExitStack() as stack:
        private += pkcs11_signers(stack, pkcs11_uris)
        with source(str(image)):
            signed = secure_boot.sign(data, private, external=external, append=append, chip=target)
    write_output(output, signed)
    count = sum(
        1
        for s in secure_boot.read_sector(signed[-secure_boot.SECTOR_SIZE :])
        if s.state is secure_boot.SlotState.VALID
    )
    report = {"output": str(output), "size": len(signed), "signature_blocks": count}
    emit(
        report,
        as_json,
        lambda: note(f"signed {image} -> {output}: {count} signature block(s)", output),
    )


@group.command("digest")
@click.option("--scheme", type=click.Choice(SCHEMES), help="Signature scheme to digest for.")
@click.option("--pub-key", type=INPUT, help="Take the scheme from this public key.")
@click.option("-a", "--append", is_flag=True, help="IMAGE is already signed (digest its content).")
@output_option(help="The raw digest to write ('-': standard output).")
@output_option(
    "--padded-image-output",
    "padded_image_output",
    required=False,
    help="Also write the exact padded bytes that are signed.",
)
@json_option
@click.argument("image", type=INPUT)
def digest(
    scheme: str | None,
    pub_key: Path | None,
    append: bool,
    output: Path,
    padded_image_output: Path | None,
    as_json: bool,
    image: Path,
) -> None:
    """Export what an HSM or signing server must sign for IMAGE.

    The output is the image digest (SHA-256, or SHA-384 for ECDSA P-384) over the
    0xFF-padded image. Sign it with RSA-PSS (MGF1-SHA256, salt 32) or ECDSA as a
    prehashed digest; or sign the --padded-image-output bytes with a tool that hashes
    itself.
    """
    if (scheme is None) == (pub_key is None):
        raise UsageError("give exactly one of --scheme or --pub-key")
    if pub_key is not None:
        scheme = secure_boot.scheme_of(read_public_key(pub_key))
    assert scheme is not None
    with source(str(image)):
        data = read_bytes(image, what="image")
        content = secure_boot.existing_content(data) if append else secure_boot.pad_to_sector(data)
        # content is 4 KiB-aligned already, so this pads nothing: it only checks and hashes.
        value = secure_boot.signing_digest(content, scheme)
    write_output(output, value)
    if padded_image_output is not None:
        write_output(padded_image_output, content)
    report = {
        "output": str(output),
        "scheme": scheme,
        "signed_length": len(content),
        "digest": value.hex(),
        "padded_image_output": str(padded_image_output) if padded_image_output else None,
    }
    emit(
        report,
        as_json,
        lambda: note(
            f"{scheme} digest of {len(content)} bytes written to {output}: {value.hex()}",
            output,
            padded_image_output,
        ),
    )


@group.command("verify")
@trust_options
@click.option(
    "--efuse-file",
    type=INPUT,
    help="Trust the digests and revocations of this virtual eFuse file, as the ROM does.",
)
@chip_option(chips=EFUSE_MODEL_CHIPS, required=False)
@json_option
@click.argument("image", type=INPUT)
def verify(
    keys: tuple[Path, ...],
    digests: tuple[str, ...],
    revoked: tuple[int, ...],
    efuse_file: Path | None,
    chip: str | None,
    as_json: bool,
    image: Path,
) -> None:
    """Verify IMAGE against keys, eFuse key digests or an eFuse file; exit 1 if none verifies.

    --chip names the chip of --efuse-file when it has no espsec sidecar.
    """
    if efuse_file is not None and (digests or revoked):
        raise UsageError("--efuse-file already gives the digests and revocations")
    if chip is not None and efuse_file is None:
        raise UsageError("--chip names the chip of --efuse-file: give one")
    trusted = [read_public_key(k) for k in keys]
    slots = key_digest_slots(digests) if digests else None
    if efuse_file is not None:
        from espsec import efuse

        with source(str(efuse_file)):
            state = efuse.security_state(efuse.load(efuse_file, chip))
        slots = [bytes.fromhex(s.digest) if s.digest else None for s in state.digest_slots]
        revoked = tuple(s.index for s in state.digest_slots if s.revoked)
    with source(str(image)):
        report = secure_boot.verify(
            read_bytes(image, what="image"), keys=trusted, key_digests=slots, revoked=revoked
        )

    def render() -> None:
        for b in report.blocks:
            line = f"block {b.index}: {b.verdict.value}"
            if b.scheme:
                line += f" ({b.scheme}"
                line += f", eFuse slot {b.slot})" if b.slot is not None else ")"
            if b.detail:
                line += f": {b.detail}"
            click.echo(line)
        if report.verified is not None:
            click.echo(f"{image}: signature verified (block {report.verified.index})")

    emit(report.to_json(), as_json, render)
    if not report.ok:
        raise VerificationError(f"no valid signature: {report.reason}", source=str(image))


@group.command("key-digest")
@output_option(required=False, help="Also write the 32 raw bytes here ('-': standard output).")
@json_option
@click.argument("key", type=INPUT)
def key_digest(output: Path | None, as_json: bool, key: Path) -> None:
    """The SECURE_BOOT_DIGESTn eFuse value for KEY (public or private), in hex."""
    public = read_public_key(key)
    value = secure_boot.key_digest(public)
    if output is not None:
        write_output(output, value)
    report = {
        "scheme": secure_boot.scheme_of(public),
        "key_digest": value.hex(),
        "output": str(output) if output else None,
    }
    emit(report, as_json, lambda: note(value.hex(), output))


@group.command("info")
@json_option
@click.argument("image", type=INPUT)
def info(as_json: bool, image: Path) -> None:
    """Show the signature blocks of a signed IMAGE."""
    with source(str(image)):
        blocks = secure_boot.info(read_bytes(image, what="image"))

    def render() -> None:
        for b in blocks:
            line = f"block {b.index} @0x{b.offset:x}: {b.state.value}"
            if b.scheme:
                match = "matches" if b.image_digest_matches else "DOES NOT match"
                line += f", {b.scheme}, image digest {match}, key digest {b.key_digest.hex()}"  # type: ignore[union-attr]
            if b.error:
                line += f": {b.error}"
            click.echo(line)

    emit([b.to_json() for b in blocks], as_json, render)
