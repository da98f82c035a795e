"""Helpers every command group uses: JSON output, integer options, error context."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from espsec._io import read_bytes
from espsec.errors import FormatError, UsageError, with_source

source = with_source
"""Attach a file name to any :class:`~espsec.errors.EspsecError` raised inside the block."""

json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")


def emit(report: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print ``report`` as JSON, or call ``render`` for the human-readable form."""
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=False))
    else:
        render()


class IntParam(click.ParamType[int]):
    """An integer in decimal or ``0x`` hex, as esptool accepts addresses."""

    name = "int"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return int(str(value), 0)
        except ValueError:
            self.fail(f"expected an integer such as 0x10000, found {value!r}", param, ctx)


INT = IntParam()


def key_digest_slots(values: tuple[str, ...]) -> list[bytes | None]:
    """``--key-digest`` values in slot order: 64 hex digits, a 32-byte file, or ``-`` (empty)."""
    if len(values) > 3:
        raise UsageError(f"at most 3 eFuse key digests (slots 0-2), got {len(values)}")
    return [None if v == "-" else _key_digest(v) for v in values]


def _key_digest(text: str) -> bytes:
    path = Path(text)
    if path.is_file():
        raw = read_bytes(path, what="digest file")
        if len(raw) != 32:
            raise FormatError(
                "not a key digest", expected="32 bytes", found=f"{len(raw)} bytes", source=text
            )
        return raw
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"key digest {text!r} is neither a file nor 64 hex digits") from None
    if len(value) != 32:
        raise UsageError(f"key digest must be 32 bytes (64 hex digits), found {len(value)} bytes")
    return value
