"""``espsec flash-encryption``: keys, XTS-AES encrypt/decrypt, whole-flash images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from espsec._io import output_file, read_bytes
from espsec.chips import DEFAULT_CHIP, get_chip
from espsec.cli._common import (
    INPUT,
    INT,
    InputPath,
    chip_option,
    colour,
    command_group,
    emit,
    json_option,
    note,
    output_option,
    source,
)
from espsec.errors import UsageError

group = command_group(
    "flash-encryption", "Flash encryption (XTS-AES): keys, encrypt/decrypt, whole flash."
)

_key = click.option(
    "-k", "--key", "key_path", type=INPUT, required=True, help="Key file (32 or 64 bytes)."
)
PROGRESS_THRESHOLD = 16 << 20
"""Inputs at least this large get a progress bar (on a terminal)."""


@group.command("generate-key")
@click.option(
    "--bits",
    type=click.Choice(["256", "512"]),
    default="256",
    show_default=True,
    help="256: XTS-AES-128 (XTS_AES_128_KEY); 512: XTS-AES-256 (XTS_AES_256_KEY_1/_2).",
)
@output_option(help="The key file to create (mode 0600; never overwrites).", secret=True)
@json_option
def generate_key(bits: str, output: Path, as_json: bool) -> None:
    """Generate a flash-encryption key file from OS entropy."""
    from espsec.flash_encryption import keys as fe_keys

    new = fe_keys.generate_key_file(output, int(bits))
    report = {"output": str(output), "bits": new.bits, "mode": new.mode}
    emit(report, as_json, lambda: click.echo(f"{new.bits}-bit {new.mode} key written to {output}"))


def _transform_command(decrypt: bool) -> Callable[..., None]:
    verb = "decrypt" if decrypt else "encrypt"

    @_key
    @click.option(
        "--address", type=INT, required=True, help="Flash address of INPUT (multiple of 16)."
    )
    @chip_option(required=False)
    @output_option(help=f"The {verb}ed data to write ('-': standard output).")
    @json_option
    @click.argument("input_path", metavar="INPUT", type=InputPath(allow_dash=False))
    def command(
        key_path: Path,
        address: int,
        chip: str | None,
        output: Path,
        as_json: bool,
        input_path: Path,
    ) -> None:
        from espsec.flash_encryption import keys as fe_keys
        from espsec.flash_encryption.cipher import process_file

        key = fe_keys.load_key(key_path)
        if chip is not None:
            key.check_chip(get_chip(chip))
        size = input_path.stat().st_size if input_path.is_file() else 0
        with _progress(size, f"{verb}ing", enabled=not as_json) as advance:
            written = process_file(
                key, input_path, output, address, decrypt=decrypt, progress=advance
            )
        report = {
            "input": str(input_path),
            "output": str(output),
            "address": f"0x{address:x}",
            "size": written,
            "mode": key.mode,
            "operation": verb,
        }
        emit(
            report,
            as_json,
            lambda: note(
                f"{verb}ed {written} bytes at 0x{address:x} with {key.mode} to {output}", output
            ),
        )

    command.__doc__ = (
        f"{verb.capitalize()} INPUT as stored at flash --address "
        "(byte-identical to espsecure --aes-xts; --chip also checks the key size)."
    )
    made: Callable[..., None] = command
    return made


group.command("encrypt")(_transform_command(decrypt=False))
group.command("decrypt")(_transform_command(decrypt=True))


@group.command("encrypt-flash")
@_key
@click.option(
    "--build-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="ESP-IDF build folder (uses its flasher_args.json).",
)
@click.option("--partition-table", "table_path", type=INPUT, help="Partition table, CSV or binary.")
@click.option(
    "--write",
    "writes",
    type=(INT, INPUT),
    multiple=True,
    metavar="OFFSET FILE",
    help="Place FILE at OFFSET (repeatable).",
)
@click.option("--flash-size", help="Flash size, e.g. 4MB, at most 128MB (default: from the build).")
@chip_option(required=False)
@click.option(
    "--partition-table-offset", "table_offset", type=INT, help="Default: the chip's (0x8000)."
)
@output_option(help="The whole-flash image to write ('-': standard output).")
@json_option
def encrypt_flash_cmd(
    key_path: Path,
    build_dir: Path | None,
    table_path: Path | None,
    writes: tuple[tuple[int, Path], ...],
    flash_size: str | None,
    chip: str | None,
    table_offset: int | None,
    as_json: bool,
    output: Path,
) -> None:
    """Write the whole flash of a device with --key after flashing these files.

    Bootloader, partition table, app partitions, otadata, nvs_keys and partitions
    flagged `encrypted` are encrypted; everything else is stored plain. The chip comes
    from the build when --chip is not given, else the default (esp32s3).
    """
    from espsec.flash_encryption import keys as fe_keys
    from espsec.flash_encryption.whole_flash import (
        FlashWrite,
        encrypt_flash,
        load_build_dir,
        parse_flash_size,
    )
    from espsec.image.partition_table import load_partition_table

    key = fe_keys.load_key(key_path)
    file_writes: list[FlashWrite] = []
    size: int | None = parse_flash_size(flash_size) if flash_size else None
    if build_dir is not None:
        if table_path is not None:
            raise UsageError("give either --build-dir or --partition-table, not both")
        layout = load_build_dir(build_dir)
        target = get_chip(chip) if chip else layout.chip
        table = layout.table
        table_offset = layout.table_offset if table_offset is None else table_offset
        file_writes.extend(layout.writes)
        size = size if size is not None else layout.flash_size
    else:
        if table_path is None:
            raise UsageError("give --build-dir, or --partition-table with --write OFFSET FILE")
        target = get_chip(chip or DEFAULT_CHIP)
        if table_offset is None:
            table_offset = target.partition_table_offset
        with source(str(table_path)):
            table = load_partition_table(
                read_bytes(table_path, what="partition table"),
                table_offset=table_offset,
                bootloader_offset=target.bootloader_offset,
            )
    for offset, path in writes:
        file_writes.append(FlashWrite(offset, read_bytes(path, what="flash file"), str(path)))
    if size is None:
        raise UsageError("the flash size is not known: give --flash-size (e.g. 4MB)")
    flash = encrypt_flash(
        key, table, file_writes, flash_size=size, chip=target, table_offset=table_offset
    )
    with output_file(output) as fh:
        flash.write_to(fh)

    def render() -> None:
        note(f"{target.display_name} flash image ({size} bytes, {key.mode}) -> {output}", output)
        for w in flash.writes:
            state = "encrypted" if w.encrypted else "plain"
            note(f"  0x{w.offset:08x}  {w.length:>9}  {state:<9}  {w.region:<16} {w.name}", output)

    emit({**flash.report(), "output": str(output)}, as_json, render)


@contextmanager
def _progress(total: int, label: str, *, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr for large inputs on a terminal (never when piped
    or NO_COLOR); nothing for small ones."""
    if not enabled or total < PROGRESS_THRESHOLD or not colour(err=True):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TransferSpeedColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
