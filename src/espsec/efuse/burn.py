"""Burn operations and the all-or-nothing transaction that applies them.

The rules are espefuse's (``burn-efuse``, ``burn-key``, ``burn-key-digest``,
``write-protect-efuse``, ``read-protect-efuse`` in one batch), checked in full before a
single bit changes:

* every request is accepted only if its target then reads back exactly as asked
  (:meth:`_Stage.write_field` for fields, :meth:`_Stage._burn_one` for key blocks):
  the value already there is a no-op (said in a note); a value that would need a bit to
  go 1 -> 0 (fewer bits than are burned, or other bits) is refused whole, naming the
  field, its value and the value asked for. espefuse finds some of these only by
  reading back after burning; espsec refuses before a bit changes;
* write-protected and read-protected fields and blocks refuse burns;
* a key block takes one key: a block holding other data (even data that contains every
  bit of the new key), or a read-protected one, refuses ``burn-key``;
* an RS-coded block (BLOCK1..10) is burned once: new bits in a non-empty block would
  corrupt its check value;
* ``burn-key`` byte-reverses XTS-AES and ECDSA keys, splits a 512-bit key over two
  blocks, sets and write-protects ``KEY_PURPOSE_n``, read-protects hardware-only keys and
  write-protects the block;
* the burn runs BLOCK10..BLOCK1, then BLOCK0, then the postponed BLOCK0 fields
  (``WR_DIS``, ``RD_DIS``, ``SPI_BOOT_CRYPT_CNT``, ``SECURE_BOOT_EN``, download mode).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from espsec.chips import revision_name
from espsec.efuse.layout import BlockDef, EfuseLayout, FieldDef, KeyPurpose, layouts_of
from espsec.efuse.model import Efuses
from espsec.errors import EspsecError, UsageError, with_source

KEY_BYTES = 32

FACTORY_FIELDS = ("MAC", "MAC_EXT")
"""Burned by Espressif at the factory; espefuse refuses to burn them (``CUSTOM_MAC`` is
the field for a MAC address of one's own)."""

COUNTER_FIELDS = ("SPI_BOOT_CRYPT_CNT", "SECURE_VERSION")
"""Bit-count fields (espefuse's ``bitcount`` class): a lone name burns the next bit,
and 0 is a valid request (met only while no bit is burned)."""


class BurnRefused(EspsecError):
    """The chip's state forbids the burn (protected, already burned, bits to clear)."""


# -- operations -----------------------------------------------------------------------


@dataclass(frozen=True)
class BurnField:
    """``burn-efuse NAME VALUE``: the field's new value (all bits it will have).

    ``value`` is an ``int`` for uint/bool fields and ``bytes`` (block order) for bytes
    fields. ``None`` burns a bool to 1 and sets the next bit of a bit-count field
    (``SPI_BOOT_CRYPT_CNT``, ``SECURE_VERSION``), as espefuse does.
    """

    name: str
    value: int | bytes | None = None

    def describe(self) -> str:
        v = self.value
        shown = "" if v is None else f" 0x{v.hex()}" if isinstance(v, bytes) else f" {v}"
        return f"burn-efuse {self.name.upper()}{shown}"


@dataclass(frozen=True)
class BurnKey:
    """``burn-key BLOCK KEYFILE PURPOSE``: a key as the key file holds it."""

    block: str
    key: bytes = field(repr=False)
    purpose: str
    write_protect: bool = True
    read_protect: bool = True
    source: str | None = field(default=None, compare=False)
    """The key file the key was read from: a refusal of the key's size names it."""

    def describe(self) -> str:
        flags = ("" if self.write_protect else " --no-write-protect") + (
            "" if self.read_protect else " --no-read-protect"
        )
        return (
            f"burn-key {self.block.upper()} <{len(self.key)}-byte key> "
            f"{self.purpose.upper()}{flags}"
        )


@dataclass(frozen=True)
class BurnKeyDigest:
    """``burn-key-digest BLOCK PUBKEY PURPOSE``: a Secure Boot public-key digest."""

    block: str
    digest: bytes
    purpose: str
    write_protect: bool = True
    scheme: str | None = None
    """The Secure Boot scheme of the key the digest is of (``rsa3072``, ``ecdsa256``…),
    when known: the plan warns when the chip's ROM cannot verify it."""

    def describe(self) -> str:
        flag = "" if self.write_protect else " --no-write-protect"
        return (
            f"burn-key-digest {self.block.upper()} <digest {self.digest.hex()[:16]}…> "
            f"{self.purpose.upper()}{flag}"
        )


@dataclass(frozen=True)
class WriteProtect:
    """``write-protect-efuse NAME``: set the ``WR_DIS`` bit of a field or block."""

    name: str

    def describe(self) -> str:
        return f"write-protect-efuse {self.name.upper()}"


@dataclass(frozen=True)
class ReadProtect:
    """``read-protect-efuse NAME``: set the ``RD_DIS`` bit of a field or block."""

    name: str

    def describe(self) -> str:
        return f"read-protect-efuse {self.name.upper()}"


Operation = BurnField | BurnKey | BurnKeyDigest | WriteProtect | ReadProtect


# -- staging --------------------------------------------------------------------------


@dataclass(frozen=True)
class BurnStep:
    """One PGM command: ``bits`` (a mask over the block) programmed into ``block``."""

    block: int
    bits: int = field(repr=False)
    postponed: bool = False


@dataclass(frozen=True)
class StagedBurn:
    """A validated transaction: which bits will be set, in which order.

    ``writes`` may hold key material; it is kept out of ``repr``.
    """

    chip: str
    writes: Mapping[int, int] = field(repr=False)
    steps: tuple[BurnStep, ...]
    notes: tuple[str, ...] = ()
    base: Efuses | None = field(default=None, repr=False, compare=False)
    """The state this burn was validated against."""
    keys: Mapping[int, int] = field(default_factory=dict, repr=False, compare=False)
    """Block -> the data each ``burn-key`` / ``burn-key-digest`` asked for."""

    @property
    def empty(self) -> bool:
        return not self.steps

    def result(self, efuses: Efuses) -> Efuses:
        """The state ``efuses`` would be in after this burn (``efuses`` is untouched)."""
        after = efuses.copy()
        for step in self.steps:
            after.program(step.block, step.bits)
        return after

    def commit(self, efuses: Efuses) -> None:
        """Burn into ``efuses``: every bit lands or nothing changes.

        ``efuses`` must still be in the state the burn was staged on.
        """
        if self.base is not None and efuses != self.base:
            raise UsageError("the eFuses changed since this burn was staged; stage it again")
        after = self.result(efuses)
        for index, bits in self.writes.items():
            block = efuses.layout.blocks[index]
            got = int.from_bytes(after.hardware_block(block), "little")
            if got & bits != bits:  # pragma: no cover - staging refuses these cases
                raise BurnRefused(f"{block.name}: the controller did not program every bit")
        efuses._replace_with(after)


class _Stage:
    """Pending writes of one transaction, checked against the state before it."""

    def __init__(self, efuses: Efuses, named_blocks: Iterable[int] = ()) -> None:
        self.efuses = efuses
        self.layout = efuses.layout
        self.pending: dict[int, int] = {}
        self.notes: list[str] = []
        self.named_blocks = frozenset(named_blocks)
        """Key blocks the transaction names: never chosen for the second half of a key."""
        self.second_halves: dict[int, BlockDef | None] = {}
        """Operation index -> the block for the second half of its 512-bit key."""
        self.key_blocks: set[int] = set()
        self.split_purposes: set[str] = set()
        self.keys: dict[int, int] = {}
        """Block -> the data each key burn asked for (after any byte reversal)."""

    # field values -----------------------------------------------------------------

    def pending_int(self, f: FieldDef) -> int:
        return (self.pending.get(f.block, 0) & f.mask) >> f.start

    def value(self, f: FieldDef) -> int:
        """The field as it will be after the writes staged so far."""
        return self.efuses.get_int(f) | self.pending_int(f)

    def _add(self, f: FieldDef, value: int) -> None:
        self.pending[f.block] = self.pending.get(f.block, 0) | (value << f.start)

    def write_field(self, f: FieldDef, new: int) -> None:
        """Ask for ``f`` to read ``new`` (its whole new value) once the burn is done.

        The one rule of every burn path: accepted only if the field then reads back
        exactly as asked. The value already there is a no-op; a value lacking a bit
        that is burned (or staged) is refused whole, as is any change to a protected
        field.
        """
        if new >> f.length:
            raise UsageError(
                f"{f.name}: value 0x{new:x} does not fit in {f.length} bit"
                f"{'s' if f.length > 1 else ''}"
            )
        current = self.efuses.get_int(f)
        old = current | self.pending_int(f)
        if new == old:
            if old == current:
                shown = self._shown(f, old)
                self.notes.append(
                    f"{f.name} already has this value{f' ({shown})' if shown else ''}; "
                    "nothing to burn"
                )
            return
        if new | old != new:
            shown = self._shown(f, new)
            if not shown:  # key material: say neither the values nor the bits
                raise BurnRefused(
                    f"{f.name} already holds other data: cannot burn the value asked for "
                    "(eFuse bits only go 0 -> 1)"
                )
            cleared = old & ~new
            bits = f"bit{'s' if cleared & (cleared - 1) else ''} {_bit_list(cleared)}"
            result = "stay" if new | old == old else "read"
            raise BurnRefused(
                f"{f.name} is {self._shown(f, old)}: cannot burn {shown} ({bits} would "
                f"need 1 -> 0 and eFuse bits only go 0 -> 1; it would {result} "
                f"{self._shown(f, old | new)})"
            )
        shown = self._shown(f, new)
        self.require_writable(f, f"{shown} (it is {self._shown(f, old)})" if shown else "")
        self._add(f, new)

    def _shown(self, f: FieldDef, value: int) -> str:
        """``value`` as a message shows it; "" for data a key block may hide."""
        if f.kind != "bytes":
            return f"0x{value:x}"
        if self.layout.blocks[f.block].rd_dis is not None:
            return ""
        return value.to_bytes(f.length // 8, "little").hex()

    def require_writable(self, f: FieldDef, asked: str = "") -> None:
        """Refuse a change to a read- or write-protected field (``asked``: the change)."""
        if not self.efuses.is_readable(f):
            raise BurnRefused(
                f"{f.name} is read-protected (RD_DIS bit {f.rd_dis}): software sees zeros, "
                "a burn could damage the value already there"
            )
        block = self.layout.blocks[f.block]
        if self.efuses.is_write_protected(block):
            raise BurnRefused(
                f"{block.name} is write-protected (WR_DIS bit {block.wr_dis}): "
                f"cannot burn {f.name}{' ' + asked if asked else ''}"
            )
        if not self.efuses.is_writeable(f):
            raise BurnRefused(
                f"{f.name} is write-protected (WR_DIS bit {f.wr_dis}): cannot burn {asked or 'it'}"
            )

    def set_bit(self, register: str, bit: int) -> None:
        """Add one ``WR_DIS`` / ``RD_DIS`` bit (an operation's side effect, not a value)."""
        f = self.layout.field(register)
        if self.value(f) >> bit & 1:
            return
        self.require_writable(f)
        self._add(f, 1 << bit)

    # operations ---------------------------------------------------------------------

    def burn_field(self, op: BurnField) -> None:
        f = self.layout.field(op.name)
        if f.reserved:
            raise UsageError(f"{f.name} is reserved and cannot be burned")
        if f.name in FACTORY_FIELDS:
            raise UsageError(
                f"{f.name} is burned by Espressif at the factory; burn CUSTOM_MAC instead"
            )
        if isinstance(op.value, bytes):
            if f.kind != "bytes":
                raise UsageError(f"{f.name} is a {f.efuse_type} field, not bytes")
            if len(op.value) * 8 != f.length:
                raise UsageError(f"{f.name} takes {f.length // 8} bytes, found {len(op.value)}")
            new = int.from_bytes(op.value, "little")
        elif op.value is None:
            new = self._default_value(f)
        else:
            if op.value < 0:
                raise UsageError(f"{f.name}: negative value {op.value}")
            if f.kind == "bool" and op.value != 1:
                raise UsageError(f"{f.name} is a bool: the only value to burn is 1")
            new = op.value
            if new == 0 and f.name not in COUNTER_FIELDS:
                raise UsageError(f"{f.name}: value 0 burns nothing")
        self._check_purpose_value(f, new)
        block = self.layout.block_of_purpose_field(f.name)
        if block is not None and block.purpose_field_high is not None:
            self.write_purpose(block, new)  # a 5-bit purpose: KEY_PURPOSE_n and its _H bit
        else:
            self.write_field(f, new)

    def purpose_value(self, block: BlockDef) -> int:
        """A key block's purpose as the burn leaves it (``KEY_PURPOSE_n``, with
        ``KEY_PURPOSE_n_H`` as its top bit where the layout splits it)."""
        return sum(self.value(f) << shift for f, shift in self.layout.purpose_parts(block))

    def write_purpose(self, block: BlockDef, value: int) -> None:
        """Ask for ``block``'s purpose to read ``value``: each part of a split purpose
        gets its bits (espefuse's ``EfuseKeyPurposeField.save``)."""
        bits = self.layout.purpose_bits(block)
        if value >> bits:
            name = block.purpose_field
            raise UsageError(
                f"{name}: value {value} does not fit in {bits} bits (the key purpose of "
                f"{block.name} on {self.layout.chip.display_name} {_revision(self.efuses)})"
            )
        parts = [
            (f, value >> shift & ((1 << f.length) - 1))
            for f, shift in self.layout.purpose_parts(block)
        ]
        for f, part in [p for p in parts if p[1] != self.value(p[0])] or parts[:1]:
            self.write_field(f, part)

    def _lock_purpose(self, block: BlockDef) -> None:
        """Write-protect every part of ``block``'s key purpose."""
        parts = self.layout.purpose_parts(block)
        for bit in sorted({f.wr_dis for f, _ in parts if f.wr_dis is not None}):
            self.set_bit("WR_DIS", bit)

    def _check_purpose_value(self, f: FieldDef, value: int) -> None:
        """``KEY_PURPOSE_n`` takes only a purpose the chip defines (as espefuse checks)."""
        block = self.layout.block_of_purpose_field(f.name)
        if block is None or value >> self.layout.purpose_bits(block):
            return
        purpose = self.layout.purpose_by_id(value)
        if purpose is None and not self.layout.custom_purpose_names:
            raise UsageError(
                f"{f.name}: {value} is not a key purpose of {self.layout.chip.display_name}"
            )
        forbidden = block.index in self.layout.facts.xts_forbidden_blocks
        if purpose is not None and purpose.is_xts and forbidden:
            raise UsageError(
                f"{f.name} cannot be {purpose.name} on {self.layout.chip.display_name} "
                "(hardware quirk SOC_EFUSE_BLOCK9_KEY_PURPOSE_QUIRK)"
            )

    def _default_value(self, f: FieldDef) -> int:
        purpose = any(
            f.name in (b.purpose_field, b.purpose_field_high) for b in self.layout.key_blocks
        )
        if purpose:  # even the 1-bit KEY_PURPOSE_n_H: espefuse takes no lone name
            raise UsageError(f"{f.name}: a value is required (a key purpose)")
        if f.kind == "bool":
            return 1
        if f.name in COUNTER_FIELDS:
            old = self.value(f)
            free = ~old & ((1 << f.length) - 1)
            if not free:
                raise BurnRefused(f"{f.name} has no unburned bit left")
            return old | (free & -free)
        raise UsageError(f"{f.name}: a value is required")

    def plan_second_halves(self, operations: Sequence[Operation]) -> None:
        """Choose the block for the second half of every 512-bit key, as espefuse does:
        XTS-AES keys first, then the others in order; each gets the next free key block
        after its own, skipping the blocks the burn names or has already chosen."""
        split = []
        for i, op in enumerate(operations):
            if not isinstance(op, BurnKey):
                continue
            try:
                purpose, block = self.layout.purpose(op.purpose), self.layout.block(op.block)
            except UsageError:
                continue  # reported when the operation is staged
            if purpose.virtual and block.is_key_block:
                rank = (0, self.layout.purposes.index(purpose)) if purpose.is_xts else (1, 0)
                split.append((rank, i, block))
        taken = set(self.named_blocks)
        for _, i, block in sorted(split, key=lambda s: (s[0], s[1])):
            other = self._free_key_block(block, taken)
            self.second_halves[i] = other
            if other is not None:
                taken.add(other.index)

    def burn_key(self, op: BurnKey | BurnKeyDigest, index: int = -1) -> None:
        block = self.layout.block(op.block)
        if not block.is_key_block:
            names = ", ".join(b.name for b in self.layout.key_blocks)
            raise UsageError(f"{block.name} is not a key block (key blocks: {names})")
        purpose = self.layout.purpose(op.purpose)
        if isinstance(op, BurnKeyDigest):
            if not purpose.digest:
                raise UsageError(
                    f"{purpose.name} is not a Secure Boot digest purpose "
                    "(use SECURE_BOOT_DIGEST0..2)"
                )
            if len(op.digest) != KEY_BYTES:
                raise UsageError(
                    f"a Secure Boot key digest is {KEY_BYTES} bytes, found {len(op.digest)}"
                )
            self._burn_one(block, purpose, op.digest, op.write_protect, False)
            return
        if purpose.virtual:
            if purpose.is_xts and purpose.name in self.split_purposes:
                raise UsageError(f"{purpose.name} is given twice in one burn (a chip has one)")
            self.split_purposes.add(purpose.name)
            first, second = self._halves(purpose)
            with _naming(op.source):
                key = self._virtual_key(purpose, op.key)
            other = self.second_halves.get(index)
            if other is None:
                raise BurnRefused(f"{purpose.name} needs two free key blocks")
            if second.is_xts and other.index in self.layout.facts.xts_forbidden_blocks:
                raise UsageError(
                    f"{purpose.name}: the second half would go to {other.name}, the next free "
                    f"key block, which cannot hold an XTS-AES key on "
                    f"{self.layout.chip.display_name}; burn the halves to blocks you name "
                    f"as {first.name} and {second.name}"
                )
            self.notes.append(f"{purpose.name}: second half goes to {other.name}")
            self._burn_one(block, first, key[:KEY_BYTES], op.write_protect, op.read_protect)
            self._burn_one(other, second, key[KEY_BYTES:], op.write_protect, op.read_protect)
            return
        with _naming(op.source):
            key = self._sized_key(block, purpose, op.key)
        self._burn_one(block, purpose, key, op.write_protect, op.read_protect)

    def _sized_key(self, block: BlockDef, purpose: KeyPurpose, key: bytes) -> bytes:
        """``key`` as ``block`` holds it: a P-192 key zero-padded like espefuse; any
        other size than the block's is refused."""
        if len(key) == 24 and purpose.name.startswith("ECDSA_KEY") and "P384" not in purpose.name:
            key = bytes(KEY_BYTES - len(key)) + key
        if len(key) != block.words * 4:
            raise UsageError(
                f"key for {block.name} must be {block.words * 4} bytes "
                f"({block.bits} bits), found {len(key)}"
            )
        return key

    def _halves(self, purpose: KeyPurpose) -> tuple[KeyPurpose, KeyPurpose]:
        suffixes = ("_1", "_2") if purpose.is_xts else ("_H", "_L")
        return (
            self.layout.purpose(purpose.name + suffixes[0]),
            self.layout.purpose(purpose.name + suffixes[1]),
        )

    def _virtual_key(self, purpose: KeyPurpose, key: bytes) -> bytes:
        if purpose.is_xts:
            if len(key) != 2 * KEY_BYTES:
                raise UsageError(
                    f"{purpose.name} needs a 64-byte (512-bit) key, found {len(key)} bytes"
                )
            return key
        if len(key) != 48:
            raise UsageError(f"{purpose.name} needs a 48-byte P-384 key, found {len(key)}")
        return bytes(16) + key

    def _free_key_block(self, start: BlockDef, taken: set[int]) -> BlockDef | None:
        """espefuse's next free key block after ``start`` (wrapping around), skipping the
        blocks ``taken``."""
        blocks = list(self.layout.key_blocks)
        i = blocks.index(start)
        for block in blocks[i + 1 :] + blocks[:i]:
            if block.index in taken or self.pending.get(block.index):
                continue
            if (
                self.efuses.is_read_protected(block)
                or self.efuses.is_write_protected(block)
                or not self.efuses.key_purpose_writeable(block)
                or self.purpose_value(block) != 0
                or self.efuses.block_value(block)
            ):
                continue
            return block
        return None

    def _burn_one(
        self,
        block: BlockDef,
        purpose: KeyPurpose,
        key: bytes,
        write_protect: bool,
        read_protect: bool,
    ) -> None:
        bits = self.layout.purpose_bits(block)
        if purpose.id >> bits:
            raise UsageError(
                f"key purpose {purpose.name} ({purpose.id}) does not fit {block.purpose_field} "
                f"({bits} bits) on {self.layout.chip.display_name} {_revision(self.efuses)}"
                + _wider_purposes(self.layout, purpose.id)
            )
        if purpose.is_xts and block.index in self.layout.facts.xts_forbidden_blocks:
            raise UsageError(
                f"{block.name} cannot hold an XTS-AES key on {self.layout.chip.display_name} "
                "(hardware quirk SOC_EFUSE_BLOCK9_KEY_PURPOSE_QUIRK)"
            )
        if block.index in self.key_blocks:
            raise UsageError(f"{block.name} is used twice in one burn")
        self.key_blocks.add(block.index)
        data = key[::-1] if purpose.reverse else key
        new = int.from_bytes(data, "little")
        current = self.efuses.block_value(block) | self.pending.get(block.index, 0)
        self.keys[block.index] = new
        # The block must then hold exactly this key. espefuse skips key bits it finds
        # set, so it "burns" a key over other data containing it and leaves the old one.
        if self.efuses.is_read_protected(block):
            raise BurnRefused(
                f"{block.name} is read-protected: software reads zeros, so a key burned "
                "into it could damage one already there (a key block takes one key)"
            )
        if new != current:
            if current:
                raise BurnRefused(
                    f"{block.name} already holds data (purpose "
                    f"{self.layout.purpose_name(self.efuses.key_purpose(block))}) other than "
                    "this key: a key block can be burned only once"
                )
            if self.efuses.is_write_protected(block):
                raise BurnRefused(f"{block.name} is write-protected (WR_DIS bit {block.wr_dis})")
            self.pending[block.index] = new
        # KEY_PURPOSE_n: set it if needed, then lock it (espefuse always does).
        lock_purpose = self.efuses.key_purpose_writeable(block)
        was = self.purpose_value(block)
        if was != purpose.id:
            if not lock_purpose:
                raise BurnRefused(
                    f"{block.purpose_field} is write-protected as "
                    f"{self.layout.purpose_name(was)}; cannot set {purpose.name}"
                )
            if was and was | purpose.id != purpose.id:
                raise BurnRefused(
                    f"{block.purpose_field} is already {self.layout.purpose_name(was)}; "
                    f"cannot change it to {purpose.name}"
                )
            self.write_purpose(block, purpose.id)
        if lock_purpose:
            self._lock_purpose(block)
        if purpose.read_protect and read_protect and block.rd_dis is not None:
            self.set_bit("RD_DIS", block.rd_dis)
        if write_protect and block.wr_dis is not None:
            self.set_bit("WR_DIS", block.wr_dis)

    def write_protect(self, op: WriteProtect) -> None:
        name, bit = self._target(op.name, "wr_dis")
        if bit is None:
            raise UsageError(f"{name} cannot be write-protected (it has no WR_DIS bit)")
        if self.efuses.get_int("WR_DIS") >> bit & 1:
            self.notes.append(f"{name} is already write-protected")
            return
        self.set_bit("WR_DIS", bit)

    def read_protect(self, op: ReadProtect) -> None:
        name, bit = self._target(op.name, "rd_dis")
        if bit is None:
            raise UsageError(f"{name} cannot be read-protected (it has no RD_DIS bit)")
        if self.efuses.get_int("RD_DIS") >> bit & 1:
            self.notes.append(f"{name} is already read-protected")
            return
        for block in self.layout.key_blocks:
            if block.rd_dis == bit and block.purpose_field:
                value = self.purpose_value(block)
                purpose = self.layout.purpose_by_id(value)
                if purpose is None or not purpose.read_protect:
                    raise BurnRefused(
                        f"{block.name} holds a {self.layout.purpose_name(value)} key and must "
                        "stay readable"
                    )
        self.set_bit("RD_DIS", bit)

    def _target(self, name: str, attr: str) -> tuple[str, int | None]:
        if self.layout.has_field(name):
            f = self.layout.field(name)
            bit: int | None = getattr(f, attr)
            return f.name, bit
        try:
            block = self.layout.block(name)
        except UsageError:
            raise UsageError(
                f"unknown eFuse field or block {name!r} for {self.layout.chip.display_name}"
            ) from None
        return block.name, getattr(block, attr)

    # whole transaction ----------------------------------------------------------------

    def check_rs_blocks(self) -> None:
        for index, bits in sorted(self.pending.items()):
            block = self.layout.blocks[index]
            if not block.rs_coded:
                continue
            current = self.efuses.block_value(block)
            if current and bits & ~current:
                raise BurnRefused(
                    f"{block.name} is already programmed: an RS-coded block can be burned "
                    "only once (new bits would corrupt its check value)"
                )
            if not bits & ~current:
                del self.pending[index]

    def steps(self) -> tuple[BurnStep, ...]:
        steps = [BurnStep(i, self.pending[i]) for i in sorted(self.pending, reverse=True) if i != 0]
        block0 = self.pending.get(0, 0)
        postponed = 0
        for name in self.layout.facts.postponed_fields:
            if self.layout.has_field(name):
                postponed |= self.layout.field(name).mask
        if block0 & ~postponed:
            steps.append(BurnStep(0, block0 & ~postponed))
        if block0 & postponed:
            steps.append(BurnStep(0, block0 & postponed, postponed=True))
        return tuple(steps)


def _naming(source: str | None) -> contextlib.AbstractContextManager[None]:
    """Name ``source`` (a key file) in a refusal raised inside the block, when known."""
    return with_source(source) if source else contextlib.nullcontext()


def _revision(efuses: Efuses) -> str:
    return revision_name(efuses.revision)


def _wider_purposes(layout: EfuseLayout, purpose: int) -> str:
    """Which revision of the chip has key purposes wide enough for ``purpose``, if any."""
    for table, other in zip(layout.chip.efuse_tables, layouts_of(layout.name), strict=True):
        if not purpose >> other.purpose_bits(other.key_blocks[0]):
            bits = other.purpose_bits(other.key_blocks[0])
            return f" ({bits}-bit key purposes: {revision_name(table.since)} and later)"
    return ""


def _bit_list(mask: int) -> str:
    return ",".join(str(i) for i in range(mask.bit_length()) if mask >> i & 1)


# -- transaction ----------------------------------------------------------------------


class Transaction:
    """Burn operations validated together and applied all-or-nothing::

    Transaction().burn_key("BLOCK_KEY0", key, "XTS_AES_128_KEY").burn(
        "SPI_BOOT_CRYPT_CNT", 1
    ).apply(efuses)
    """

    def __init__(self, operations: Iterable[Operation] = ()) -> None:
        self.operations: list[Operation] = list(operations)

    def add(self, op: Operation) -> Transaction:
        self.operations.append(op)
        return self

    def burn(self, name: str, value: int | bytes | None = None) -> Transaction:
        return self.add(BurnField(name, value))

    def burn_key(
        self,
        block: str,
        key: bytes,
        purpose: str,
        *,
        write_protect: bool = True,
        read_protect: bool = True,
    ) -> Transaction:
        return self.add(BurnKey(block, key, purpose, write_protect, read_protect))

    def burn_key_digest(
        self, block: str, digest: bytes, purpose: str, *, write_protect: bool = True
    ) -> Transaction:
        return self.add(BurnKeyDigest(block, digest, purpose, write_protect))

    def write_protect(self, name: str) -> Transaction:
        return self.add(WriteProtect(name))

    def read_protect(self, name: str) -> Transaction:
        return self.add(ReadProtect(name))

    def stage(self, efuses: Efuses) -> StagedBurn:
        """Validate every operation against ``efuses``; raise on the first problem.

        Raises :class:`~espsec.errors.UsageError` for a request that can never work
        (unknown field, value too wide, wrong key length) and :class:`BurnRefused` for
        one the chip's current state forbids. ``efuses`` is never changed.
        """
        named = []
        for op in self.operations:
            if isinstance(op, BurnKey | BurnKeyDigest):
                with contextlib.suppress(UsageError):  # reported when the op is staged
                    named.append(efuses.layout.block(op.block).index)
        stage = _Stage(efuses, named)
        stage.plan_second_halves(self.operations)
        for i, op in enumerate(self.operations):
            if isinstance(op, BurnField):
                stage.burn_field(op)
            elif isinstance(op, BurnKey | BurnKeyDigest):
                stage.burn_key(op, i)
            elif isinstance(op, WriteProtect):
                stage.write_protect(op)
            else:
                stage.read_protect(op)
        stage.check_rs_blocks()
        return StagedBurn(
            efuses.chip,
            dict(stage.pending),
            stage.steps(),
            tuple(stage.notes),
            efuses.copy(),
            dict(stage.keys),
        )

    def apply(self, efuses: Efuses) -> StagedBurn:
        """Stage, then burn: either every bit lands or ``efuses`` is unchanged."""
        staged = self.stage(efuses)
        staged.commit(efuses)
        return staged


# -- one-operation helpers ------------------------------------------------------------


def burn(efuses: Efuses, values: Mapping[str, int | bytes | None]) -> StagedBurn:
    """Burn fields by name (``{"SPI_BOOT_CRYPT_CNT": 1}``) in one transaction."""
    return Transaction(BurnField(k, v) for k, v in values.items()).apply(efuses)


def burn_key(
    efuses: Efuses,
    block: str,
    key: bytes,
    purpose: str,
    *,
    write_protect: bool = True,
    read_protect: bool = True,
) -> StagedBurn:
    """Burn a key (as its key file holds it) into a key block for ``purpose``."""
    return (
        Transaction()
        .burn_key(block, key, purpose, write_protect=write_protect, read_protect=read_protect)
        .apply(efuses)
    )


def burn_key_digest(
    efuses: Efuses, block: str, digest: bytes, purpose: str, *, write_protect: bool = True
) -> StagedBurn:
    """Burn a 32-byte Secure Boot v2 public-key digest for ``SECURE_BOOT_DIGESTn``."""
    return (
        Transaction()
        .burn_key_digest(block, digest, purpose, write_protect=write_protect)
        .apply(efuses)
    )


def write_protect(efuses: Efuses, names: Iterable[str]) -> StagedBurn:
    """Write-protect fields or blocks (every field sharing the bit is locked too)."""
    return Transaction(WriteProtect(n) for n in names).apply(efuses)


def read_protect(efuses: Efuses, names: Iterable[str]) -> StagedBurn:
    """Read-protect blocks or fields (key blocks only for hardware-only purposes)."""
    return Transaction(ReadProtect(n) for n in names).apply(efuses)
