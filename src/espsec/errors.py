"""One exception hierarchy for every user-facing failure.

Library code raises these; only :mod:`espsec.cli` turns them into messages and exit
codes. Messages never contain key material.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class EspsecError(Exception):
    """Base of every error espsec reports to a user.

    ``source`` names the file (or other input) the error is about; the CLI fills it in
    when the library did not know it. ``exit_code`` is what the CLI exits with.
    """

    exit_code = 1

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class UsageError(EspsecError):
    """The request itself is wrong (bad option combination, bad argument value)."""

    exit_code = 2


class FormatError(EspsecError):
    """Bytes that do not follow the format they claim to be in.

    Carries the offset and field that failed, and what was expected versus found.
    """

    def __init__(
        self,
        what: str,
        *,
        offset: int | None = None,
        field: str | None = None,
        expected: object = None,
        found: object = None,
        source: str | None = None,
    ) -> None:
        parts = []
        if offset is not None:
            parts.append(f"offset 0x{offset:x}")
        if field:
            parts.append(field)
        where = " ".join(parts)
        message = f"{where}: {what}" if where else what
        shown = [
            f"{label} {_show(value)}"
            for label, value in (("expected", expected), ("found", found))
            if value is not None
        ]
        if shown:
            message += f" ({', '.join(shown)})"
        super().__init__(message, source=source)
        self.offset = offset
        self.field = field
        self.expected = expected
        self.found = found


class KeyFormatError(EspsecError):
    """A key file that is not a key, or not a key of the type or size required."""


class UnsupportedError(EspsecError):
    """A valid request the target chip (or this version of espsec) cannot do."""

    exit_code = 2


class VerificationError(EspsecError):
    """A signature, digest, CRC or other check failed."""


class OutputExistsError(UsageError):
    """Refusing to overwrite an existing file (keys are never overwritten silently)."""


@contextmanager
def with_source(name: str) -> Iterator[None]:
    """Attach ``name`` (a file) to any :class:`EspsecError` raised inside the block that
    does not name its input yet."""
    try:
        yield
    except EspsecError as exc:
        if exc.source is None:
            exc.source = name
        raise


def _show(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"0x{value:x}" if value > 9 else str(value)
    if isinstance(value, bytes):
        return value.hex() if len(value) <= 16 else f"{len(value)} bytes"
    return str(value)
