"""Field-by-field summaries in the shape of ``espefuse summary --format json``.

Each record has espefuse's keys (``value``, ``raw_value``, ``readable``, ``writeable``,
``block``, ``word``, ``pos``, ``efuse_type``, ``bit_len``, ``description``) and values
formatted the way espefuse formats them, so the two tools' reports compare field by
field. A read-protected field reads as zeros; like espefuse, its value shows ``?``.
"""

from __future__ import annotations

from typing import Any, Literal

from espsec.efuse.layout import FieldDef
from espsec.efuse.model import Efuses

#: How espefuse orders the bytes of a MAC field (the factory MAC is stored reversed).
_MAC_FIELDS: dict[str, Literal["big", "little"]] = {"MAC": "big", "CUSTOM_MAC": "little"}


def field_value(efuses: Efuses, f: FieldDef) -> bool | int | str:
    """The field's meaningful value, as espefuse shows it."""
    raw = efuses.get_int(f)
    if f.name in _MAC_FIELDS:
        mac = raw.to_bytes(f.length // 8, _MAC_FIELDS[f.name])
        errors = efuses.block_errors(f.block)
        check = f"Block{f.block} has ERRORS:{errors.errors} FAIL:{errors.failed}"
        if errors.ok:
            check = "OK"
        value: bool | int | str = ":".join(f"{b:02x}" for b in mac) + f" ({check})"
    elif f.kind == "bytes":
        value = " ".join(f"{b:02x}" for b in raw.to_bytes(f.length // 8, "little"))
    elif block := efuses.layout.block_of_purpose_field(f.name):
        # espefuse shows the whole purpose here (with KEY_PURPOSE_n_H where it is split).
        value = efuses.layout.purpose_name(efuses.key_purpose(block))
    elif raw in f.meanings:
        value = f.meanings[raw]
    else:
        value = bool(raw) if f.kind == "bool" else raw
    if not efuses.is_readable(f) and raw == 0:
        value = str(value).replace("0", "?")
    return value


def raw_value(efuses: Efuses, f: FieldDef) -> str:
    """espefuse's ``raw_value``: bytes in block order, other fields nibble-padded hex."""
    raw = efuses.get_int(f)
    if f.kind == "bytes":
        return "0x" + raw.to_bytes(f.length // 8, "little").hex()
    return f"0x{raw:0{(f.length + 3) // 4}x}"


def field_record(efuses: Efuses, f: FieldDef) -> dict[str, Any]:
    """One field as ``espefuse summary --format json`` reports it."""
    return {
        "name": f.name,
        "value": field_value(efuses, f),
        "raw_value": raw_value(efuses, f),
        "readable": efuses.is_readable(f),
        "writeable": efuses.is_writeable(f),
        "description": f.description,
        "block": f.block,
        "word": f.word,
        "pos": f.pos,
        "efuse_type": f.efuse_type,
        "bit_len": f.length,
        "errors": efuses.field_has_errors(f),
    }


def summary(efuses: Efuses, *, all_fields: bool = False) -> dict[str, dict[str, Any]]:
    """Every field espefuse shows (or, with ``all_fields``, every field in the table)."""
    return {
        f.name: field_record(efuses, f) for f in efuses.layout.fields if all_fields or f.visible
    }


def blocks_report(efuses: Efuses) -> list[dict[str, Any]]:
    """Per block: protection and what the error registers report."""
    out = []
    for b in efuses.layout.blocks:
        errors = efuses.block_errors(b)
        out.append(
            {
                "block": b.index,
                "name": b.name,
                "read_protected": efuses.is_read_protected(b),
                "write_protected": efuses.is_write_protected(b),
                "empty": efuses.is_empty(b),
                "errors": errors.errors,
                "failed": errors.failed,
            }
        )
    return out
