"""Fixed-size C fields shared by the image formats: NUL-padded strings and byte checks."""

from __future__ import annotations

from espsec.errors import FormatError


def decode_cstr(raw: bytes, *, offset: int, field: str) -> str:
    """A ``char[N]`` field: UTF-8 text, then NUL padding to the end (no NUL if full).

    Bytes after the first NUL must be zero, so that encoding the text again gives back
    exactly ``raw``.
    """
    text, nul, rest = raw.partition(b"\0")
    if nul and rest.strip(b"\0"):
        bad = len(text) + 1 + next(i for i, b in enumerate(rest) if b)
        raise FormatError(
            "bytes after the string terminator",
            offset=offset + bad,
            field=field,
            expected="zero padding",
            found=f"0x{raw[bad]:02x}",
        )
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            "string is not UTF-8",
            offset=offset + exc.start,
            field=field,
            expected="UTF-8 text",
            found=f"byte 0x{text[exc.start]:02x}",
        ) from None


def encode_cstr(text: str, size: int, *, field: str) -> bytes:
    """``text`` as a ``char[size]`` field (UTF-8, NUL-padded; may fill it completely)."""
    raw = text.encode("utf-8")
    if len(raw) > size:
        raise ValueError(f"{field} is {len(raw)} bytes of UTF-8, at most {size} fit")
    if b"\0" in raw:
        raise ValueError(f"{field} must not contain NUL characters")
    return raw.ljust(size, b"\0")


def check_cstr(text: str, size: int, *, field: str) -> None:
    """Raise :class:`ValueError` unless ``text`` fits a ``char[size]`` field."""
    encode_cstr(text, size, field=field)


def check_uint(value: int, bits: int, *, field: str) -> None:
    """Raise :class:`ValueError` unless ``value`` is an unsigned ``bits``-bit integer."""
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{field} must fit in {bits} bits, got {value}")


def check_size(raw: bytes, size: int, *, field: str) -> None:
    """Raise :class:`ValueError` unless ``raw`` is exactly ``size`` bytes."""
    if len(raw) != size:
        raise ValueError(f"{field} must be {size} bytes, got {len(raw)}")


def require_length(data: bytes, size: int, *, offset: int, field: str) -> None:
    """Raise :class:`FormatError` unless ``data`` is exactly ``size`` bytes."""
    if len(data) != size:
        raise FormatError(
            "truncated" if len(data) < size else "wrong length",
            offset=offset + min(len(data), size),
            field=field,
            expected=f"{size} bytes",
            found=f"{len(data)} bytes",
        )
