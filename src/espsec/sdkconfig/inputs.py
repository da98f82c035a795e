"""The input readers: one per kind of input, each returning :data:`Assignments`.

``sdkconfig`` and ``sdkconfig.defaults`` text (:func:`read_sdkconfig`), kconfgen's
``config/sdkconfig.json`` (:func:`read_json`) and ``NAME=VALUE`` lists (:func:`read_name_values`)
all give the same thing: typed assignments by current option name, which
:func:`~espsec.sdkconfig.resolve.resolve` turns into a configuration. Nothing is turned back
into text on the way.

Names: a file also holds other components' options, so a file reader refuses only names
in the table's own namespaces that the table does not know; ``NAME=VALUE`` names bootloader
options and must all be in the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from espsec.errors import UsageError
from espsec.sdkconfig.expr import Value
from espsec.sdkconfig.options import TABLE
from espsec.sdkconfig.resolve import (
    TARGET,
    Assignment,
    Assignments,
    SdkconfigError,
    canonical,
    check_name,
)
from espsec.sdkconfig.table import Table

_ASSIGN = re.compile(r"CONFIG_([A-Za-z0-9_]+)=(.*)")
_NOT_SET = re.compile(r"#\s*CONFIG_([A-Za-z0-9_]+) is not set")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_DECIMAL = re.compile(r"-?[0-9]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_NAME = re.compile(r"[A-Za-z0-9_]+")


def parse_value(text: str) -> Value | None:
    """An ``sdkconfig`` value: ``y``/``n``, a number, ``0x`` hex or a quoted string."""
    if text == "y":
        return True
    if text == "n":
        return False
    if m := _STRING.fullmatch(text):
        return re.sub(r"\\(.)", r"\1", m.group(1))
    if _HEX.fullmatch(text):
        return int(text, 16)
    if _DECIMAL.fullmatch(text):
        return int(text, 10)
    return None


def read_sdkconfig(
    data: str | bytes, *, source: str | None = None, table: Table = TABLE
) -> dict[str, Assignment]:
    """The assignments of an ``sdkconfig`` or ``sdkconfig.defaults`` file.

    A later assignment of the same name wins; ``# CONFIG_X is not set`` assigns ``n``.
    Raises :class:`SdkconfigError` naming the line of a malformed line or value, or of a
    misspelt option.
    """
    if isinstance(data, bytes):
        try:
            text_data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdkconfigError(
                "not UTF-8 text",
                line=data[: exc.start].count(b"\n") + 1,
                expected="UTF-8",
                found="invalid bytes",
                source=source,
            ) from None
    else:
        text_data = data
    found: dict[str, Assignment] = {}
    for number, raw_line in enumerate(text_data.splitlines(), start=1):
        text = raw_line.strip()
        if not text:
            continue
        if text.startswith("#"):
            if m := _NOT_SET.fullmatch(text):
                found[m.group(1)] = Assignment(False, source, number)
            continue
        m = _ASSIGN.fullmatch(text)
        if m is None:
            raise SdkconfigError(
                "not an option assignment",
                line=number,
                expected="CONFIG_NAME=value or a # comment",
                found=text[:60],
                source=source,
            )
        value = parse_value(m.group(2))
        if value is None:
            raise SdkconfigError(
                "malformed value",
                line=number,
                option=f"CONFIG_{m.group(1)}",
                expected='y, n, a number, 0x hex or a "string"',
                found=m.group(2)[:60],
                source=source,
            )
        found[m.group(1)] = Assignment(value, source, number)
    return _checked(found, foreign_ok=True, table=table)


def read_json(
    document: object, *, source: str | None = None, table: Table = TABLE
) -> dict[str, Assignment]:
    """The assignments of kconfgen's ``sdkconfig.json``: an object of option names (without
    ``CONFIG_``) to ``true``/``false``, numbers (hex options too) and strings."""
    if not isinstance(document, Mapping):
        raise SdkconfigError("not a kconfgen sdkconfig.json object", source=source)
    found: dict[str, Assignment] = {}
    for name, value in document.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SdkconfigError(
                "not an option name", expected="NAME", found=str(name)[:60], source=source
            )
        if not isinstance(value, bool | int | str):
            raise SdkconfigError(
                "malformed value",
                option=f"CONFIG_{name}",
                expected="true, false, a number or a string",
                found=type(value).__name__,
                source=source,
            )
        found[name] = Assignment(value, source, written=name)
    return _checked(found, foreign_ok=True, table=table)


def read_name_values(
    items: Iterable[str], *, source: str = "--config", table: Table = TABLE
) -> dict[str, Assignment]:
    """The assignments of ``NAME=VALUE`` strings (``CONFIG_`` optional). A value is read as in
    an ``sdkconfig`` file; a string option also takes an unquoted string. Every name must be
    an option of the table (or ``IDF_TARGET``). An item without ``=`` is a
    :class:`~espsec.errors.UsageError`."""
    found: dict[str, Assignment] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().removeprefix("CONFIG_")
        text = text.strip()
        if not sep or not _NAME.fullmatch(name):
            raise UsageError(f"{source} takes NAME=VALUE, got {item[:60]!r}")
        value = parse_value(text)
        current = table.renames[name].new if name in table.renames else name
        wants_string = current == TARGET or (
            current in table.rows and table.rows[current].type == "string"
        )
        if wants_string and not isinstance(value, str):
            value = text
        if value is None:
            raise SdkconfigError(
                "malformed value",
                option=f"CONFIG_{name}",
                expected='y, n, a number, 0x hex or a "string"',
                found=text[:60],
                source=source,
            )
        found[name] = Assignment(value, source, written=name)
    return _checked(found, foreign_ok=False, table=table)


def _checked(found: Assignments, *, foreign_ok: bool, table: Table) -> dict[str, Assignment]:
    for name, assignment in found.items():
        check_name(name, assignment, foreign_ok=foreign_ok, table=table)
    return canonical(found, table=table)
