"""The eFuse controller state of one chip, and the virtual eFuse file.

:class:`Efuses` holds the controller's register window exactly as espefuse's virtual
mode stores it (``espefuse --virt --path-efuse-file F``): the file is the little-endian
register image, byte-reversed. Blocks are read at ``offset`` from the controller base,
RS error counters at ``EFUSE_RD_RS_ERRn_REG`` and BLOCK0 repeat errors at
``EFUSE_RD_REPEAT_ERRn_REG``. Registers the model does not own are kept as they were.

Two views of a block:

* the **software** view (what the read registers show, what the file holds): a
  read-protected block reads as zeros;
* the **hardware** view (what the XTS-AES, HMAC, DS and ECDSA peripherals use): the key
  burned into the block. espefuse discards it; espsec keeps it in a 0600 sidecar file
  next to the eFuse file (``docs/adr/0002-efuse-hardware-key-sidecar.md``).

:meth:`Efuses.program` is the controller's own PGM command (hardware semantics: protected
bits are silently masked, a second write to an RS block damages its check value). Tools
never call it directly: :class:`espsec.efuse.Transaction` validates first.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from espsec._io import PathLike, read_bytes, write_atomic
from espsec.chips import EFUSE_MODEL_CHIPS
from espsec.efuse import rs
from espsec.efuse.layout import BlockDef, EfuseLayout, FieldDef, layout_for
from espsec.errors import EspsecError, FormatError, OutputExistsError, UsageError

SIDECAR_SUFFIX = ".espsec"
_SIDECAR_FORMAT = "espsec-efuse-sidecar"


class KeyUnavailableError(EspsecError):
    """A read-protected block whose hardware contents this model does not know."""


@dataclass(frozen=True)
class BlockErrors:
    """What the controller's error registers say about one block."""

    errors: int
    """RS: bytes corrected (0..7). BLOCK0: number of bits whose two copies differ."""
    failed: bool
    """RS: more than 6 bad bytes, the data is unreliable. BLOCK0: any bit differs."""

    @property
    def ok(self) -> bool:
        return self.errors == 0 and not self.failed


class Efuses:
    """One chip's eFuses: every block's bits, as software and as hardware see them.

    Create with :func:`new` or :func:`load`; change only through
    :class:`~espsec.efuse.Transaction` (or :meth:`program` for hardware-level models).
    """

    def __init__(
        self,
        layout: EfuseLayout,
        regs: bytes | None = None,
        *,
        hardware_keys: Mapping[int, bytes] | None = None,
    ) -> None:
        if regs is not None and len(regs) != layout.mem_size:
            raise FormatError(
                "wrong eFuse register image size",
                expected=layout.mem_size,
                found=len(regs),
            )
        self.layout = layout
        self._regs = bytearray(regs if regs is not None else bytes(layout.mem_size))
        self._hw: dict[int, bytes] = {}
        for idx, data in (hardware_keys or {}).items():
            block = layout.block(idx)
            if len(data) == block.words * 4 and self.is_read_protected(block):
                self._hw[block.index] = bytes(data)

    # -- construction and persistence -------------------------------------------------

    @classmethod
    def from_file_bytes(
        cls, chip: str, data: bytes, *, hardware_keys: Mapping[int, bytes] | None = None
    ) -> Efuses:
        """Parse a virtual eFuse file (espefuse's format) for ``chip``.

        The layout follows the wafer revision the file holds, as espefuse picks its table
        from the chip's revision (ESP32-P4: ``esp32p4_v3.0`` from v3.0 on); every layout
        of a chip has the ``WAFER_VERSION_*`` fields in the same place.
        """
        layout = layout_for(chip)
        if len(data) != layout.mem_size:
            raise FormatError(
                f"not an {layout.chip.display_name} virtual eFuse file (wrong size)",
                expected=f"{layout.mem_size} bytes",
                found=f"{len(data)} bytes",
            )
        return cls.from_registers(chip, bytes(reversed(data)), hardware_keys=hardware_keys)

    @classmethod
    def from_registers(
        cls, chip: str, regs: bytes, *, hardware_keys: Mapping[int, bytes] | None = None
    ) -> Efuses:
        """The controller's register window of ``chip`` (as a chip's read registers show
        it), read with the layout of the wafer revision it holds."""
        revision = chip_revision(cls(layout_for(chip), regs))
        return cls(layout_for(chip, revision), regs, hardware_keys=hardware_keys)

    def to_file_bytes(self) -> bytes:
        """The virtual eFuse file espefuse reads: the register image, byte-reversed."""
        return bytes(reversed(self._regs))

    def copy(self) -> Efuses:
        other = Efuses(self.layout, bytes(self._regs))
        other._hw = dict(self._hw)
        return other

    def _replace_with(self, other: Efuses) -> None:
        self._regs = bytearray(other._regs)
        self._hw = dict(other._hw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Efuses):
            return NotImplemented
        return (
            self.layout.name == other.layout.name
            and self.layout.table == other.layout.table
            and self._regs == other._regs
            and self._hw == other._hw
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Efuses {self.layout.chip.display_name}>"

    @property
    def chip(self) -> str:
        return self.layout.name

    @property
    def revision(self) -> int:
        """The wafer revision, major * 100 + minor (see :func:`chip_revision`)."""
        return chip_revision(self)

    # -- registers ---------------------------------------------------------------------

    def read_reg(self, offset: int) -> int:
        """A 32-bit register at ``offset`` from the controller base."""
        return int(struct.unpack_from("<I", self._regs, offset)[0])

    def _write_reg(self, offset: int, value: int) -> None:
        struct.pack_into("<I", self._regs, offset, value & 0xFFFFFFFF)

    # -- blocks --------------------------------------------------------------------------

    def block(self, ref: str | int | BlockDef) -> BlockDef:
        return ref if isinstance(ref, BlockDef) else self.layout.block(ref)

    def _block_int(self, block: BlockDef) -> int:
        raw = self._regs[block.offset : block.offset + block.words * 4]
        return int.from_bytes(raw, "little")

    def _set_block_int(self, block: BlockDef, value: int) -> None:
        self._regs[block.offset : block.offset + block.words * 4] = value.to_bytes(
            block.words * 4, "little"
        )

    def read_block(self, ref: str | int | BlockDef) -> bytes:
        """The block as software reads it (zeros if read-protected)."""
        block = self.block(ref)
        return bytes(self._regs[block.offset : block.offset + block.words * 4])

    def block_value(self, ref: str | int | BlockDef) -> int:
        """The software view of a block as one little-endian integer."""
        return self._block_int(self.block(ref))

    def hardware_block(self, ref: str | int | BlockDef) -> bytes:
        """The block as the chip's peripherals use it, read-protected or not.

        Raises :class:`KeyUnavailableError` for a read-protected block burned by another
        tool (its contents never reached espsec).
        """
        block = self.block(ref)
        if not self.is_read_protected(block):
            return self.read_block(block)
        try:
            return self._hw[block.index]
        except KeyError:
            raise KeyUnavailableError(
                f"{block.name} is read-protected and its contents are unknown "
                "(burned by another tool, or the sidecar file is missing)"
            ) from None

    def _hardware_int(self, block: BlockDef) -> int:
        if block.index in self._hw:
            return int.from_bytes(self._hw[block.index], "little")
        return self._block_int(block)

    def codeword(self, ref: str | int | BlockDef) -> bytes:
        """The 44-byte RS codeword (data, then check value) stored for BLOCK1..BLOCK10.

        Built from the hardware view: treat it as secret for key blocks (the check value
        is a function of the key).
        """
        block = self.block(ref)
        if not block.rs_coded:
            raise UsageError(f"{block.name} is not RS-coded (BLOCK0 uses a backup copy)")
        return rs.encode(self.hardware_block(block).ljust(rs.DATA_BYTES, b"\0"))

    def hardware_keys(self) -> dict[int, bytes]:
        """Hardware-only contents of read-protected blocks, by block index."""
        return dict(self._hw)

    def is_read_protected(self, ref: str | int | BlockDef) -> bool:
        block = self.block(ref)
        return block.rd_dis is not None and bool(self.get_int("RD_DIS") >> block.rd_dis & 1)

    def is_write_protected(self, ref: str | int | BlockDef) -> bool:
        block = self.block(ref)
        return block.wr_dis is not None and bool(self.get_int("WR_DIS") >> block.wr_dis & 1)

    def is_empty(self, ref: str | int | BlockDef) -> bool:
        """No bit set in the block (in the hardware view, when known)."""
        block = self.block(ref)
        return self._hardware_int(block) == 0 and not (
            self.is_read_protected(block) and block.index not in self._hw
        )

    # -- fields ----------------------------------------------------------------------

    def field(self, name: str) -> FieldDef:
        return self.layout.field(name)

    def get_int(self, name: str | FieldDef) -> int:
        """A field's raw bits as an integer (software view; bytes fields little-endian)."""
        f = name if isinstance(name, FieldDef) else self.layout.field(name)
        return (self._block_int(self.layout.blocks[f.block]) & f.mask) >> f.start

    def get(self, name: str | FieldDef) -> int | bytes:
        """A field's value: ``int`` for uint/bool fields, ``bytes`` (block order) else."""
        f = name if isinstance(name, FieldDef) else self.layout.field(name)
        value = self.get_int(f)
        return value.to_bytes(f.length // 8, "little") if f.kind == "bytes" else value

    def is_readable(self, name: str | FieldDef) -> bool:
        """Software can read the field (its ``RD_DIS`` bit, if any, is clear)."""
        f = name if isinstance(name, FieldDef) else self.layout.field(name)
        return f.rd_dis is None or not self.get_int("RD_DIS") >> f.rd_dis & 1

    def is_writeable(self, name: str | FieldDef) -> bool:
        """The field can still be burned (its ``WR_DIS`` bit, if any, is clear)."""
        f = name if isinstance(name, FieldDef) else self.layout.field(name)
        return f.wr_dis is None or not self.get_int("WR_DIS") >> f.wr_dis & 1

    def key_purpose(self, ref: str | int | BlockDef) -> int:
        """The raw key purpose of a key block: ``KEY_PURPOSE_n``, with
        ``KEY_PURPOSE_n_H`` as its top bit where the layout splits it."""
        block = self.block(ref)
        parts = self.layout.purpose_parts(block)
        if not parts:
            raise UsageError(f"{block.name} is not a key block")
        return sum(self.get_int(f) << shift for f, shift in parts)

    def key_purpose_writeable(self, ref: str | int | BlockDef) -> bool:
        """Every field of the block's key purpose can still be burned."""
        block = self.block(ref)
        return all(self.is_writeable(f) for f, _ in self.layout.purpose_parts(block))

    # -- error registers ----------------------------------------------------------------

    def block_errors(self, ref: str | int | BlockDef) -> BlockErrors:
        """What the error registers report for a block."""
        block = self.block(ref)
        if block.rs_error is None:
            count = sum(bin(self.read_reg(r)).count("1") for r in self.layout.repeat_error_regs)
            return BlockErrors(count, count > 0)
        e = block.rs_error
        reg = self.read_reg(e.reg)
        return BlockErrors(reg >> e.shift & e.mask, bool(reg >> e.fail_bit & 1))

    def field_has_errors(self, f: FieldDef) -> bool:
        """A BLOCK0 field with a repeat error, or any field of a block with RS errors."""
        if f.block != 0:
            return not self.block_errors(f.block).ok
        errs = 0
        for i, reg in enumerate(self.layout.repeat_error_regs):
            errs |= self.read_reg(reg) << (32 * (i + 1))
        return bool(errs & f.mask)

    def _set_rs_errors(self, block: BlockDef, decoded: rs.Decoded) -> None:
        e = block.rs_error
        assert e is not None
        reg = self.read_reg(e.reg)
        reg &= ~((e.mask << e.shift) | (1 << e.fail_bit))
        reg |= min(decoded.errors, e.mask) << e.shift
        reg |= int(decoded.failed) << e.fail_bit
        self._write_reg(e.reg, reg)

    def inject_fault(self, ref: str | int | BlockDef, bits: Iterable[int]) -> BlockErrors:
        """Flip stored bits of a block, as a damaged eFuse array would, and read it back.

        RS blocks: ``bits`` index the 352-bit codeword (0..255 data, 256..351 check
        value); the controller corrects up to 6 bad bytes and reports the count, or sets
        the fail bit. BLOCK0: ``bits`` index the block (32..191, words 1..5 have a backup
        copy); the flipped backup bits show in ``EFUSE_RD_REPEAT_ERRn_REG``.
        """
        block = self.block(ref)
        flips = sorted(set(bits))
        if block.rs_error is None:
            for bit in flips:
                word = bit // 32
                if not 1 <= word <= len(self.layout.repeat_error_regs):
                    raise UsageError(f"{block.name} bit {bit} has no backup copy")
                reg = self.layout.repeat_error_regs[word - 1]
                self._write_reg(reg, self.read_reg(reg) ^ (1 << (bit % 32)))
            return self.block_errors(block)
        codeword = bytearray(self.codeword(block))
        for bit in flips:
            if not 0 <= bit < rs.CODEWORD_BYTES * 8:
                raise UsageError(f"{block.name} codeword has no bit {bit}")
            codeword[bit // 8] ^= 1 << (bit % 8)
        self._store_decoded(block, rs.decode(bytes(codeword)))
        return self.block_errors(block)

    def _store_decoded(self, block: BlockDef, decoded: rs.Decoded) -> None:
        value = int.from_bytes(decoded.data[: block.words * 4], "little")
        if self.is_read_protected(block):
            self._hw[block.index] = decoded.data[: block.words * 4]
        else:
            self._set_block_int(block, value)
        self._set_rs_errors(block, decoded)

    # -- the controller's program command --------------------------------------------

    def writable_mask(self, ref: str | int | BlockDef) -> int:
        """Bits of a block that the controller would still program (not write-protected)."""
        block = self.block(ref)
        full = (1 << block.bits) - 1
        if self.is_write_protected(block):
            return 0
        mask = full
        for f in self.layout.fields_in(block.index):
            if not self.is_writeable(f):
                mask &= ~f.mask
        return mask

    def factory_program(self, ref: str | int | BlockDef, bits: int) -> None:
        """What Espressif's factory burns before a chip ships (wafer version, MAC): the
        bits ORed into the block with a check value that matches, as one program would
        leave them. Not a tool's path: tools go through :class:`~espsec.efuse.Transaction`."""
        block = self.block(ref)
        self._set_block_int(block, self._block_int(block) | (bits & ((1 << block.bits) - 1)))

    def program(self, ref: str | int | BlockDef, bits: int) -> None:
        """One PGM command: set ``bits`` (a mask over the block) the way the chip does.

        Write-protected bits are silently not programmed. On an RS block the check value
        of the new data is ORed over the stored one, so programming a block twice leaves
        a damaged codeword, which the controller corrects or flags. Read protection takes
        effect at once: the block then reads as zeros and only the hardware view keeps it.
        """
        block = self.block(ref)
        protected = {b.index for b in self.layout.blocks if self.is_read_protected(b)}
        bits &= self.writable_mask(block) & ((1 << block.bits) - 1)
        if bits:
            old = self._hardware_int(block)
            if block.rs_coded and old and (bits & ~old):
                self._program_rs_again(block, old, bits)
            elif block.index in self._hw:
                self._hw[block.index] = (old | bits).to_bytes(block.words * 4, "little")
            else:
                self._set_block_int(block, old | bits)
        self._apply_read_protection(protected)

    def _program_rs_again(self, block: BlockDef, old: int, bits: int) -> None:
        size = block.words * 4
        old_cw = rs.encode(old.to_bytes(rs.DATA_BYTES, "little")[:size].ljust(32, b"\0"))
        new_cw = rs.encode(bits.to_bytes(rs.DATA_BYTES, "little")[:size].ljust(32, b"\0"))
        merged = bytes(a | b for a, b in zip(old_cw, new_cw, strict=True))
        self._store_decoded(block, rs.decode(merged))

    def _apply_read_protection(self, protected_before: set[int]) -> None:
        """Hide newly read-protected blocks from software, keeping what hardware sees.

        Only a block that becomes read-protected now has known contents; one that was
        already protected (and unknown, e.g. from espefuse) stays unknown.
        """
        for block in self.layout.blocks:
            if self.is_read_protected(block):
                if block.index not in protected_before:
                    self._hw[block.index] = self.read_block(block)
                self._set_block_int(block, 0)


# -- files ----------------------------------------------------------------------------


def chip_revision(efuses: Efuses) -> int:
    """The wafer revision as ``major * 100 + minor`` (``efuse_hal_chip_revision``).

    ESP32-S3: ``WAFER_VERSION_MAJOR``, minor = ``MINOR_HI << 3 | MINOR_LO``; ESP32-P4:
    major = ``MAJOR_HI << 2 | MAJOR_LO``, ``WAFER_VERSION_MINOR``. A blank virtual chip
    is v0.0.
    """
    return _version(efuses, "MAJOR") * 100 + _version(efuses, "MINOR")


def _version_fields(layout: EfuseLayout, part: str) -> tuple[tuple[FieldDef, int], ...]:
    """``WAFER_VERSION_<part>`` as (field, shift) pairs: one field, or ``_LO`` and ``_HI``."""
    name = f"WAFER_VERSION_{part}"
    if layout.has_field(f"{name}_LO"):
        low = layout.field(f"{name}_LO")
        return ((low, 0), (layout.field(f"{name}_HI"), low.length))
    return ((layout.field(name), 0),) if layout.has_field(name) else ()


def _version(efuses: Efuses, part: str) -> int:
    return sum(efuses.get_int(f) << shift for f, shift in _version_fields(efuses.layout, part))


def new(chip: str, revision: int | None = None) -> Efuses:
    """A fresh chip: every eFuse 0, as ``espefuse --virt`` starts (revision v0.0).

    ``revision`` (major * 100 + minor, one the chip record knows) gives a chip of that
    wafer revision instead: its ``WAFER_VERSION_*`` fields burned as Espressif's factory
    does, and the eFuse layout of that revision (espefuse reads the file the same way).
    """
    if revision is None:
        return Efuses(layout_for(chip))
    layout = layout_for(chip, revision)
    layout.chip.require_revision(revision)
    efuses = Efuses(layout)
    major, minor = divmod(revision, 100)
    for part, value in (("MAJOR", major), ("MINOR", minor)):
        for f, shift in _version_fields(layout, part):
            bits = value >> shift & ((1 << f.length) - 1)
            efuses.factory_program(f.block, bits << f.start)
    if chip_revision(efuses) != revision:  # pragma: no cover - the tables guarantee it
        raise UsageError(f"revision {revision} does not fit the WAFER_VERSION fields")
    return efuses


def sidecar_path(path: PathLike) -> Path:
    """The sidecar next to an eFuse file: chip name and hardware-only key material."""
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def load(path: PathLike, chip: str | None = None) -> Efuses:
    """Read a virtual eFuse file and its sidecar (if any).

    ``chip`` is required when the file has no sidecar (e.g. made by espefuse); when both
    are present they must agree.
    """
    data = read_bytes(path, what="eFuse file")
    side = sidecar_path(path)
    meta: dict[str, object] = {}
    if side.exists():
        meta = _read_sidecar(side)
    known = meta.get("chip")
    if known is not None:
        try:
            known = layout_for(str(known)).name
        except EspsecError as exc:
            exc.source = str(side)
            raise
    if chip is None and known is None:
        _check_some_chip(data, str(path))
        raise UsageError(
            "chip unknown: pass --chip (the file has no espsec sidecar)", source=str(path)
        )
    if chip is not None and known is not None and layout_for(chip).name != known:
        raise UsageError(
            f"--chip {chip} does not match the sidecar's chip {known}", source=str(path)
        )
    name = str(chip or known)
    layout = layout_for(name)
    keys: dict[int, bytes] = {}
    raw_keys = meta.get("hardware_keys", {})
    if isinstance(raw_keys, dict):
        for block_name, hexdata in raw_keys.items():
            try:
                keys[layout.block(str(block_name)).index] = bytes.fromhex(str(hexdata))
            except (ValueError, UsageError):
                raise FormatError(
                    f"bad hardware key entry {block_name!r}", source=str(side)
                ) from None
    try:
        return Efuses.from_file_bytes(name, data, hardware_keys=keys)
    except FormatError as exc:
        exc.source = str(path)
        raise


def _check_some_chip(data: bytes, source: str) -> None:
    """Refuse ``data`` unless its size is that of some modelled chip's eFuse file."""
    sizes = sorted({layout_for(name).mem_size for name in EFUSE_MODEL_CHIPS})
    if len(data) not in sizes:
        raise FormatError(
            "not an eFuse file for any supported chip",
            expected=" or ".join(f"{n} bytes" for n in sizes),
            found=f"{len(data)} bytes",
            source=source,
        )


def _read_sidecar(path: Path) -> dict[str, object]:
    try:
        meta = json.loads(read_bytes(path, what="eFuse sidecar"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FormatError("not an espsec eFuse sidecar (bad JSON)", source=str(path)) from None
    if not isinstance(meta, dict) or meta.get("format") != _SIDECAR_FORMAT:
        raise FormatError("not an espsec eFuse sidecar", field="format", source=str(path))
    return meta


def save(efuses: Efuses, path: PathLike) -> None:
    """Write the eFuse file (espefuse's format) and its 0600 sidecar, each atomically.

    The sidecar is written first, so a crash between the two writes never loses a key
    that the eFuse file already hides.
    """
    hw = {
        efuses.layout.blocks[i].name: data.hex()
        for i, data in sorted(efuses.hardware_keys().items())
    }
    meta = {"format": _SIDECAR_FORMAT, "version": 1, "chip": efuses.chip, "hardware_keys": hw}
    write_atomic(sidecar_path(path), (json.dumps(meta, indent=1) + "\n").encode(), mode=0o600)
    write_atomic(path, efuses.to_file_bytes())


def create(path: PathLike, chip: str, revision: int | None = None) -> Efuses:
    """Create a fresh eFuse file for ``chip`` (at ``revision``, see :func:`new`); refuse
    to overwrite one (or its sidecar)."""
    for p in (Path(path), sidecar_path(path)):
        if p.exists() or os.path.islink(p):
            raise OutputExistsError(
                "refusing to overwrite an existing eFuse file (remove it first)", source=str(p)
            )
    efuses = new(chip, revision)
    save(efuses, path)
    return efuses
