"""``espsec secure-boot``: keys, signing, external signatures, verification, digests."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import click

from espsec import secure_boot
from espsec._io import read_bytes, write_atomic, write_secret
from espsec.chips import SCHEMES, get_chip
from espsec.cli._common import emit, json_option, key_digest_slots, source
from espsec.errors import UsageError, VerificationError

group = click.Group("secure-boot", help="Secure Boot v2: sign, verify, key digests.")

_in = click.Path(exists=False, dir_okay=False, path_type=Path)


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
    from espsec.secure_boot.pkcs11 import Pkcs11Signer

    signers: list[secure_boot.Signer] = []
    for uri in uris:
        with source(uri.split("?", 1)[0]):
            signers.append(stack.enter_context(Pkcs11Signer(uri)))
    return signers


def _public_key(path: Path) -> secure_boot.PublicKey:
    with source(str(path)):
        return secure_boot.load_public_key(read_bytes(path, what="key file"))


@group.command("generate-key")
@click.option("--scheme", type=click.Choice(SCHEMES), default="rsa3072", show_default=True)
@click.option("--pub-key", "pub_out", type=_in, help="Also write the public key PEM here.")
@click.argument("key", type=_in)
def generate_key(scheme: str, pub_out: Path | None, key: Path) -> None:
    """Generate a signing KEY (PEM, mode 0600; never overwrites)."""
    pem = secure_boot.generate_private_key(scheme)
    if pub_out is not None and pub_out.exists():
        raise UsageError("refusing to overwrite an existing file", source=str(pub_out))
    write_secret(key, pem)
    if pub_out is not None:
        write_atomic(pub_out, secure_boot.public_key_pem(secure_boot.load_private_key(pem)))
    click.echo(f"{scheme} signing key written to {key}")


@group.command("extract-public-key")
@click.argument("key", type=_in)
@click.argument("output", type=_in)
def extract_public_key(key: Path, output: Path) -> None:
    """Write the public key PEM of a private KEY."""
    write_atomic(output, secure_boot.public_key_pem(_private_key(key)))
    click.echo(f"public key written to {output}")


@group.command("sign")
@click.option("-k", "--key", "keys", type=_in, multiple=True, help="Private key (repeatable).")
@click.option(
    "--signature",
    "signatures",
    type=_in,
    multiple=True,
    help="Signature made elsewhere (repeatable, paired in order with --pub-key).",
)
@click.option("--pub-key", "pub_keys", type=_in, multiple=True, help="Public key of --signature.")
@pkcs11_option
@click.option("-a", "--append", is_flag=True, help="Add blocks to an already signed image.")
@click.option("--chip", help="Target chip (default: from the image header).")
@click.option("-o", "--output", type=_in, required=True, help="Signed image to write.")
@click.argument("image", type=_in)
def sign(
    keys: tuple[Path, ...],
    signatures: tuple[Path, ...],
    pub_keys: tuple[Path, ...],
    pkcs11_uris: tuple[str, ...],
    append: bool,
    chip: str | None,
    output: Path,
    image: Path,
) -> None:
    """Sign IMAGE for Secure Boot v2 (pads to 4 KiB, appends the signature sector).

    Keys come from files (-k), from a PKCS#11 token (--pkcs11-uri: RSA-PSS or ECDSA
    inside the token, as espsecure --hsm), or as signatures made elsewhere.
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
                    _public_key(pub_path), read_bytes(sig_path, what="signature file")
                )
            )
    target = get_chip(chip) if chip else None
    data = read_bytes(image, what="image")
    with ExitStack() as stack:
        private += pkcs11_signers(stack, pkcs11_uris)
        with source(str(image)):
            signed = secure_boot.sign(data, private, external=external, append=append, chip=target)
    write_atomic(output, signed)
    count = sum(
        1
        for s in secure_boot.read_sector(signed[-secure_boot.SECTOR_SIZE :])
        if s.state is secure_boot.SlotState.VALID
    )
    click.echo(f"signed {image} -> {output}: {count} signature block(s)")


@group.command("digest")
@click.option("--scheme", type=click.Choice(SCHEMES), help="Signature scheme to digest for.")
@click.option("--pub-key", type=_in, help="Take the scheme from this public key.")
@click.option("-a", "--append", is_flag=True, help="IMAGE is already signed (digest its content).")
@click.option("--padded-image", type=_in, help="Also write the exact padded bytes that are signed.")
@click.option("-o", "--output", type=_in, required=True, help="Raw digest to write.")
@click.argument("image", type=_in)
def digest(
    scheme: str | None,
    pub_key: Path | None,
    append: bool,
    padded_image: Path | None,
    output: Path,
    image: Path,
) -> None:
    """Export what an HSM or signing server must sign for IMAGE.

    The output is the image digest (SHA-256, or SHA-384 for ECDSA P-384) over the
    0xFF-padded image. Sign it with RSA-PSS (MGF1-SHA256, salt 32) or ECDSA as a
    prehashed digest; or sign the --padded-image bytes with a tool that hashes itself.
    """
    if (scheme is None) == (pub_key is None):
        raise UsageError("give exactly one of --scheme or --pub-key")
    if pub_key is not None:
        scheme = secure_boot.scheme_of(_public_key(pub_key))
    assert scheme is not None
    with source(str(image)):
        data = read_bytes(image, what="image")
        content = secure_boot.existing_content(data) if append else secure_boot.pad_to_sector(data)
        # content is 4 KiB-aligned already, so this pads nothing: it only checks and hashes.
        value = secure_boot.signing_digest(content, scheme)
    write_atomic(output, value)
    if padded_image is not None:
        write_atomic(padded_image, content)
    click.echo(f"{scheme} digest of {len(content)} bytes written to {output}: {value.hex()}")


@group.command("verify")
@click.option(
    "-k", "--key", "keys", type=_in, multiple=True, help="Trusted key, public or private."
)
@click.option(
    "--key-digest",
    "digests",
    multiple=True,
    help="Trusted eFuse digest, slot 0, 1, 2 in order (hex or a 32-byte file; '-' = empty slot).",
)
@click.option("--revoked", type=click.IntRange(0, 2), multiple=True, help="Revoked slot number.")
@click.option(
    "--efuse-file",
    type=_in,
    help="Trust the digests and revocations of this virtual eFuse file, as the ROM does.",
)
@click.option("--chip", help="Chip of --efuse-file, if it has no espsec sidecar.")
@json_option
@click.argument("image", type=_in)
def verify(
    keys: tuple[Path, ...],
    digests: tuple[str, ...],
    revoked: tuple[int, ...],
    efuse_file: Path | None,
    chip: str | None,
    as_json: bool,
    image: Path,
) -> None:
    """Verify IMAGE against keys, eFuse key digests or an eFuse file; exit 1 if none verifies."""
    if efuse_file is not None and (digests or revoked):
        raise UsageError("--efuse-file already gives the digests and revocations")
    trusted = [_public_key(k) for k in keys]
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
@click.option("-o", "--output", type=_in, help="Write the 32 raw bytes here.")
@json_option
@click.argument("key", type=_in)
def key_digest(output: Path | None, as_json: bool, key: Path) -> None:
    """The SECURE_BOOT_DIGESTn eFuse value for KEY (public or private)."""
    public = _public_key(key)
    value = secure_boot.key_digest(public)
    if output is not None:
        write_atomic(output, value)
    emit(
        {"scheme": secure_boot.scheme_of(public), "key_digest": value.hex()},
        as_json,
        lambda: click.echo(value.hex()),
    )


@group.command("info")
@json_option
@click.argument("image", type=_in)
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
