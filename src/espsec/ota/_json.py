"""Canonical JSON out, strict JSON in: the encoding of release statements and manifests.

Canonical form: UTF-8, keys sorted, no whitespace, no floats (integers only), no NaN.
Strict parsing refuses duplicate keys, floats and NaN/Infinity, so two readers can
never disagree about what a signed document says.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, NoReturn

from espsec.errors import FormatError


def canonical(obj: object) -> bytes:
    """The canonical JSON bytes of ``obj`` (dicts, lists, str, int, bool, None)."""
    _check_types(obj)
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _check_types(obj: object) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"JSON object key {k!r} is not a string")
            _check_types(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _check_types(v)
    elif obj is not None and not isinstance(obj, str | int | bool):
        raise TypeError(f"{type(obj).__name__} has no canonical JSON form")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise FormatError("duplicate key in JSON object", field=k)
        out[k] = v
    return out


def _reject(value: str) -> NoReturn:
    raise FormatError("non-integer number in JSON", found=value)


def strict_loads(data: bytes, *, what: str) -> dict[str, Any]:
    """Parse a JSON object strictly; :class:`FormatError` naming ``what`` otherwise."""
    try:
        text = data.decode("utf-8")
        obj = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_reject,
            parse_constant=_reject,
        )
    except FormatError as exc:
        raise FormatError(f"{what}: {exc.message}", field=exc.field) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{what} must be a JSON object", found=type(obj).__name__)
    return obj


def get_str(obj: Mapping[str, Any], key: str, *, what: str, max_len: int = 256) -> str:
    """``obj[key]`` as a string of at most ``max_len`` characters."""
    value = obj.get(key)
    if not isinstance(value, str):
        raise FormatError(
            f"{what}: {key} must be a string", field=key, expected="string", found=_kind(value)
        )
    if len(value) > max_len:
        raise FormatError(
            f"{what}: {key} too long", field=key, expected=f"<= {max_len}", found=len(value)
        )
    return value


def get_opt_str(obj: Mapping[str, Any], key: str, *, what: str, max_len: int = 256) -> str | None:
    """``obj[key]`` as a string, or ``None`` when missing or null."""
    if obj.get(key) is None:
        return None
    return get_str(obj, key, what=what, max_len=max_len)


def get_int(
    obj: Mapping[str, Any], key: str, *, what: str, lo: int = 0, hi: int = 2**63 - 1
) -> int:
    """``obj[key]`` as an integer in ``[lo, hi]`` (booleans are not integers here)."""
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(
            f"{what}: {key} must be an integer", field=key, expected="integer", found=_kind(value)
        )
    if not lo <= value <= hi:
        raise FormatError(
            f"{what}: {key} out of range", field=key, expected=f"{lo}..{hi}", found=value
        )
    return value


def get_hex(obj: Mapping[str, Any], key: str, *, what: str, size: int | None = None) -> str:
    """``obj[key]`` as lower-case hex (of exactly ``size`` bytes if given)."""
    value = get_str(obj, key, what=what, max_len=2 * (size or 512))
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise FormatError(
            f"{what}: {key} must be hex", field=key, expected="hex digits", found=value[:80]
        ) from None
    if size is not None and len(raw) != size:
        raise FormatError(
            f"{what}: {key} has the wrong length", field=key, expected=size, found=len(raw)
        )
    if value != raw.hex():
        raise FormatError(
            f"{what}: {key} must be lower-case hex",
            field=key,
            expected="lower-case hex digits",
            found=value[:80],
        )
    return value


def get_opt_hex(
    obj: Mapping[str, Any], key: str, *, what: str, size: int | None = None
) -> str | None:
    """``obj[key]`` as lower-case hex, or ``None`` when missing or null."""
    if obj.get(key) is None:
        return None
    return get_hex(obj, key, what=what, size=size)


def check_keys(obj: Mapping[str, Any], known: Collection[str], *, what: str) -> None:
    """Refuse a member of ``obj`` whose name is not in ``known``."""
    for key in obj:
        if key not in known:
            shown = key if len(key) <= 64 else key[:64] + "…"
            raise FormatError(
                f"{what}: unknown field", field=shown, expected=", ".join(known), found=shown
            )


def _kind(value: object) -> str:
    return "missing" if value is None else type(value).__name__
