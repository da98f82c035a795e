"""Helpers every command group uses: JSON output, integer options, error context."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from espsec.errors import EspsecError

json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")


def emit(report: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print ``report`` as JSON, or call ``render`` for the human-readable form."""
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=False))
    else:
        render()


@contextmanager
def source(name: str) -> Iterator[None]:
    """Attach ``name`` (a file) to any :class:`EspsecError` raised inside the block."""
    try:
        yield
    except EspsecError as exc:
        if exc.source is None:
            exc.source = name
        raise


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
