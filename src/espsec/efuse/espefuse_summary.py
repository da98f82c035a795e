"""Reading ``espefuse summary --format json`` back into an eFuse model.

A summary from a real chip (``espefuse -p PORT summary --format json --file F``) names
every visible field with its ``block``, ``word``, ``pos``, ``bit_len`` and ``raw_value``
(espefuse ``base_fields.py``, ``EfuseFieldBase.get_raw`` / ``summary``), and ``WR_DIS`` and
``RD_DIS`` among them, so the software view of the blocks it covers can be rebuilt bit by
bit. A read-protected block reads as zeros, as it does on the chip; its key stays unknown.

The summary does not name the chip: it is the one eFuse table whose fields match every
record (name, block, position and width), unless the caller names it.
"""

from __future__ import annotations

from collections.abc import Mapping

from espsec.chips import EFUSE_MODEL_CHIPS
from espsec.efuse.layout import EfuseLayout, layouts_of
from espsec.efuse.model import Efuses
from espsec.errors import FormatError

_KEYS = ("block", "word", "pos", "bit_len", "raw_value")


def is_summary(document: object) -> bool:
    """``document`` looks like an espefuse JSON summary (a map of field records)."""
    if not isinstance(document, Mapping) or not document:
        return False
    records = list(document.values())
    return all(isinstance(r, Mapping) and all(k in r for k in _KEYS) for r in records) and (
        "WR_DIS" in document
    )


def from_summary(document: object, *, chip: str | None = None, source: str | None = None) -> Efuses:
    """The eFuses an espefuse JSON summary shows.

    Each record's bits go where the record says they live (``block``, ``word``, ``pos``,
    ``bit_len``); espefuse's computed fields (no ``word``, e.g. ``WAFER_VERSION_MINOR``) are
    skipped. Raises :class:`~espsec.errors.FormatError` for a document that is not a
    summary, a value that does not fit its field, two records that disagree about a bit,
    or a summary no eFuse table (or not ``chip``'s) matches.
    """
    if not isinstance(document, Mapping) or not is_summary(document):
        raise FormatError(
            "not an espefuse summary",
            expected='{"FIELD": {"block", "word", "pos", "bit_len", "raw_value", ...}, ...}',
            found=type(document).__name__,
            source=source,
        )
    layout = _layout(document, chip, source)
    values: dict[int, int] = {}
    known: dict[int, int] = {}
    for name, record in document.items():
        where = _where(record)
        if where is None:
            continue
        block, start, length = where
        if block >= len(layout.blocks) or start + length > layout.blocks[block].bits:
            raise FormatError("lies outside its block", field=str(name), found=where, source=source)
        raw = _raw(str(name), length, record, source)
        mask = ((1 << length) - 1) << start
        overlap = known.get(block, 0) & mask
        if (values.get(block, 0) ^ (raw << start)) & overlap:
            raise FormatError(
                "disagrees with another field of the same block",
                field=str(name),
                found=record["raw_value"],
                source=source,
            )
        values[block] = values.get(block, 0) | raw << start
        known[block] = known.get(block, 0) | mask
    regs = bytearray(layout.mem_size)
    for b in layout.blocks:
        size = b.words * 4
        regs[b.offset : b.offset + size] = values.get(b.index, 0).to_bytes(size, "little")
    return Efuses(layout, bytes(regs))


def _where(record: Mapping[str, object]) -> tuple[int, int, int] | None:
    block, word, pos, length = (record.get(k) for k in ("block", "word", "pos", "bit_len"))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (block, word, pos, length)):
        return None
    assert isinstance(block, int) and isinstance(word, int) and isinstance(pos, int)
    assert isinstance(length, int)
    return block, word * 32 + pos, length


def _matches(layout: EfuseLayout, document: Mapping[str, object]) -> int:
    """How many of the summary's located fields ``layout`` has at the same place
    (-1: a field the layout has elsewhere)."""
    count = 0
    for name, record in document.items():
        if not isinstance(record, Mapping) or _where(record) is None:
            continue
        if not layout.has_field(str(name)):
            continue
        f = layout.field(str(name))
        if (record.get("block"), record.get("word"), record.get("pos")) != (f.block, f.word, f.pos):
            return -1
        count += 1
    return count


def _layout(document: Mapping[str, object], chip: str | None, source: str | None) -> EfuseLayout:
    candidates = [chip] if chip is not None else list(EFUSE_MODEL_CHIPS)
    located = sum(1 for r in document.values() if isinstance(r, Mapping) and _where(r))
    layouts = [layout for name in candidates for layout in layouts_of(name)]
    scores = [(_matches(layout, document), layout) for layout in layouts]
    best = max((score for score, _ in scores), default=-1)
    found = [layout for score, layout in scores if score == best]
    if best < max(1, located * 9 // 10) or len({f.chip.name for f in found}) != 1:
        expected = f"an {chip} summary" if chip else "a summary of " + " or ".join(candidates)
        raise FormatError(
            "no eFuse table matches the summary's fields"
            if best < max(1, located * 9 // 10)
            else "the summary matches several chips: name one",
            expected=expected,
            found=f"{located} fields" if len(found) < 2 else ", ".join(f.name for f in found),
            source=source,
        )
    # Layouts of one chip that match equally well (a later revision adds fields a blank
    # chip's summary does not show): the first, as espefuse reads a blank chip.
    return found[0]


def _raw(name: str, length: int, record: Mapping[str, object], source: str | None) -> int:
    text = record.get("raw_value")
    kind = str(record.get("efuse_type", ""))
    bad = FormatError(
        "raw_value does not fit the field",
        field=name,
        expected=f"{length} bits as 0x hex",
        found=str(text)[:80],
        source=source,
    )
    if not isinstance(text, str) or not text.startswith("0x"):
        raise bad
    try:
        if kind.startswith("bytes"):
            data = bytes.fromhex(text[2:])
            if len(data) * 8 != length:
                raise bad
            value = int.from_bytes(data, "little")
        else:
            value = int(text, 16)
    except ValueError:
        raise bad from None
    if value >> length:
        raise bad
    return value
