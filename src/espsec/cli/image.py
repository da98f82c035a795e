"""``espsec image``: inspect app and bootloader images."""

from __future__ import annotations

from pathlib import Path

import click

from espsec._io import read_bytes, write_output
from espsec.chips import get_chip
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
from espsec.image import (
    WP_PIN_DISABLED,
    AppDesc,
    BootloaderDesc,
    ImageInfo,
    build_app_image,
    build_bootloader_image,
    image_info,
)
from espsec.image.header import revision_text
from espsec.image.info import IMAGE_VERSION

group = command_group("image", "App and bootloader images: inspect, check, synthesize.")


@group.command("build-app")
@chip_option()
@click.option("--version", "app_version", default="1.0.0", show_default=True)
@click.option("--project-name", default="app", show_default=True)
@click.option("--secure-version", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--code-size", type=click.IntRange(4, 15 * 2**20), default=4096, show_default=True)
@output_option(help="The app image to write ('-': standard output).")
@json_option
def build_app(
    chip: str,
    app_version: str,
    project_name: str,
    secure_version: int,
    code_size: int,
    output: Path,
    as_json: bool,
) -> None:
    """Write a synthetic but valid app image (for rehearsals, demos and backend tests)."""
    data = build_app_image(
        get_chip(chip),
        version=app_version,
        project_name=project_name,
        secure_version=secure_version,
        code_size=code_size,
    )
    write_output(output, data)
    report = {
        "output": str(output),
        "chip": chip,
        "version": app_version,
        "secure_version": secure_version,
        "size": len(data),
    }
    emit(
        report,
        as_json,
        lambda: note(
            f"{chip} app {app_version} (secure_version {secure_version}) -> {output}", output
        ),
    )


@group.command("build-bootloader")
@chip_option()
@click.option("--version", "bl_version", type=click.IntRange(0, 2**32 - 1), default=1)
@click.option("--secure-version", type=click.IntRange(0, 255), default=0, show_default=True)
@output_option(help="The bootloader image to write ('-': standard output).")
@json_option
def build_bootloader(
    chip: str, bl_version: int, secure_version: int, output: Path, as_json: bool
) -> None:
    """Write a synthetic but valid second-stage bootloader image."""
    data = build_bootloader_image(get_chip(chip), version=bl_version, secure_version=secure_version)
    write_output(output, data)
    report = {
        "output": str(output),
        "chip": chip,
        "version": bl_version,
        "secure_version": secure_version,
        "size": len(data),
    }
    emit(report, as_json, lambda: note(f"{chip} bootloader v{bl_version} -> {output}", output))


@group.command("info")
@click.argument("file", type=INPUT)
@json_option
@click.pass_context
def info(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Show the header, segments, checks and descriptor of an image FILE.

    Reports what ``esptool image-info`` does, plus whether a Secure Boot v2 signature
    sector follows. Exits 1 if the checksum, the appended SHA-256 or the app descriptor
    is invalid.
    """
    with source(str(file)):
        report = image_info(read_bytes(file, what="image file"))
    emit(report.to_dict(), as_json, lambda: _render(report))
    if not report.checksum_valid or report.digest_valid is False or report.descriptor_error:
        ctx.exit(1)


def _valid(ok: bool) -> str:
    return "valid" if ok else "invalid"


def _safe(text: str) -> str:
    """Descriptor strings come from the file: show control characters escaped."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _title(text: str) -> None:
    click.echo()
    click.echo(text)
    click.echo("=" * len(text))


def _render(report: ImageInfo) -> None:
    img = report.image
    hdr = img.header
    chip = report.chip.display_name if report.chip else f"unknown chip id {hdr.chip_id}"
    click.echo(f"File size: {report.file_size} bytes (image {img.image_length} bytes)")
    click.echo(f"Detected chip: {chip}")

    _title("Image header")
    click.echo(f"Image version: {IMAGE_VERSION}")
    click.echo(f"Entry point: 0x{hdr.entry_addr:08x}")
    click.echo(f"Segments: {len(img.segments)}")
    click.echo(f"Flash size: {hdr.flash_size_name or f'invalid (0x{hdr.spi_size:x})'}")
    click.echo(f"Flash freq: {report.flash_freq or f'unknown (0x{hdr.spi_speed:x})'}")
    click.echo(f"Flash mode: {hdr.spi_mode_name or f'invalid ({hdr.spi_mode})'}")
    disabled = " (disabled)" if hdr.wp_pin == WP_PIN_DISABLED else ""
    click.echo(f"WP pin: 0x{hdr.wp_pin:02x}{disabled}")
    drives = ", ".join(f"{k}: 0x{v:x}" for k, v in hdr.pin_drive_strengths.items())
    click.echo(f"Flash pins drive settings: {drives}")
    click.echo(f"Chip ID: {hdr.chip_id}")
    click.echo(
        f"Minimal chip revision: {revision_text(hdr.min_chip_rev_full)} "
        f"(legacy min_rev = {hdr.min_chip_rev})"
    )
    click.echo(f"Maximal chip revision: {revision_text(hdr.max_chip_rev_full)}")

    _title("Segments")
    click.echo(f"{'Segment':>7}  {'Length':>8}  {'Load addr':>10}  {'File offs':>10}  Memory types")
    for s in report.segments:
        click.echo(
            f"{s.index:>7}  0x{s.length:06x}  0x{s.load_addr:08x}  0x{s.file_offset:08x}  "
            + ", ".join(s.memory_types)
        )

    _title("Image footer")
    calc = report.calculated_checksum
    suffix = "" if report.checksum_valid else f", calculated 0x{calc:02x}"
    click.echo(f"Checksum: 0x{img.checksum:02x} ({_valid(report.checksum_valid)}{suffix})")
    if img.digest is None:
        click.echo("Validation hash: not appended")
    else:
        ok = bool(report.digest_valid)
        click.echo(f"Validation hash: {report.calculated_digest.hex()} ({_valid(ok)})")
    if report.signature_sector_offset is None:
        click.echo(f"Secure Boot v2 signature sector: none ({len(img.trailer)} trailing bytes)")
    else:
        click.echo(
            f"Secure Boot v2 signature sector: at 0x{report.signature_sector_offset:x}, "
            f"{report.signature_sector_length} bytes"
        )

    desc = report.descriptor
    if isinstance(desc, AppDesc):
        _title("Application information")
        click.echo(f"Project name: {_safe(desc.project_name)}")
        click.echo(f"App version: {_safe(desc.version)}")
        click.echo(f"Compile time: {_safe(desc.date)} {_safe(desc.time)}")
        click.echo(f"ELF file SHA256: {desc.app_elf_sha256.hex()}")
        click.echo(f"ESP-IDF: {_safe(desc.idf_ver)}")
        click.echo(
            f"Minimal eFuse block revision: {revision_text(desc.min_efuse_blk_rev_full)[1:]}"
        )
        click.echo(
            f"Maximal eFuse block revision: {revision_text(desc.max_efuse_blk_rev_full)[1:]}"
        )
        if desc.mmu_page_bytes:
            click.echo(f"MMU page size: {desc.mmu_page_bytes // 1024} KB")
        click.echo(f"Secure version: {desc.secure_version}")
    elif report.descriptor_error:
        _title("Application information")
        click.echo(f"Invalid app descriptor: {report.descriptor_error}")
    elif isinstance(desc, BootloaderDesc):
        _title("Bootloader information")
        click.echo(f"Bootloader version: {desc.version}")
        click.echo(f"ESP-IDF: {_safe(desc.idf_ver)}")
        click.echo(f"Compile time: {_safe(desc.date_time)}")
        click.echo(f"Secure version: {desc.secure_version}")
