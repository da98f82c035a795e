"""``espsec device sign``: the work behind the command (kept out of ``cli/device.py``)."""

from __future__ import annotations

from pathlib import Path

import click

from espsec._io import command_scope, read_bytes, write_output
from espsec.cli._common import emit


def sign_command(folder: Path, data_file: Path, output: Path, as_json: bool) -> None:
    """Sign ``data_file`` with the identity of the virtual device in ``folder``."""
    from espsec.device.identity import sign_with_device

    with command_scope():
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
