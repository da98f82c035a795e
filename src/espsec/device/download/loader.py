"""What the ROM loader and the flasher stub have in common: flash writes, RAM uploads, faults.

Both loaders write flash the same way: a ``*_BEGIN`` command (offset, size, block count
and size, and on these chips an "encrypted" word), numbered ``*_DATA`` blocks with the
XOR checksum, and an optional ``*_END``. A block is checked in full (checksum, sequence,
size, range, decompression) before any of it reaches flash, so a rejected or cut-off
block never changes the device. Each loader maps a :class:`Fault` to its own status
bytes.
"""

from __future__ import annotations

import hashlib
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum, auto

from espsec.device.download.chip import RAM_LIMIT, ChipError, DownloadChip
from espsec.device.download.protocol import DataBlock, Op, Request, checksum, words
from espsec.device.download.slip import SlipFault
from espsec.device.flash import ENCRYPTED_WRITE_ALIGN
from espsec.efuse import security_info
from espsec.errors import FormatError
from espsec.flash import WRITE_ALIGN


class Fault(Enum):
    """Why a command failed, independent of how each loader encodes it."""

    BAD_PACKET = auto()
    """Malformed: wrong size, bad framing, parameters of the wrong length."""
    CHECKSUM = auto()
    NOT_STARTED = auto()
    """A ``_DATA`` or ``_END`` command without its ``_BEGIN``."""
    SEQUENCE = auto()
    TOO_MUCH_DATA = auto()
    RANGE = auto()
    """Outside flash or RAM, or not aligned."""
    INFLATE = auto()
    REFUSED = auto()
    """The chip will not do it (e.g. encrypt with ``DIS_DOWNLOAD_MANUAL_ENCRYPT``)."""
    UNSUPPORTED = auto()


class LoaderFault(Exception):
    """A command that fails with ``fault``; ``message`` says why (for the server log)."""

    def __init__(self, fault: Fault, message: str) -> None:
        super().__init__(message)
        self.fault = fault
        self.message = message


class Transition(Enum):
    """What happens to the loader after a command's response is sent."""

    LEAVE = auto()
    """The ROM runs the app in flash: download mode is over on this connection."""
    RESET = auto()
    """The chip resets; GPIO0 is still held low, so the ROM loader starts again."""
    RUN_STUB = auto()
    """The uploaded RAM image is esptool's flasher stub: it starts and says ``OHAI``."""


def data_block(req: Request) -> DataBlock:
    try:
        block = DataBlock.parse(req.data)
    except FormatError as exc:
        raise LoaderFault(Fault.BAD_PACKET, exc.message) from None
    if checksum(block.data) != req.checksum & 0xFF:
        raise LoaderFault(Fault.CHECKSUM, f"block {block.seq}: checksum mismatch")
    return block


def params(req: Request, count: int, *, optional: int = 0) -> tuple[int, ...]:
    try:
        return words(req.data, count, optional=optional)
    except FormatError as exc:
        raise LoaderFault(Fault.BAD_PACKET, exc.message) from None


class FlashWrite:
    """One ``FLASH_BEGIN`` / ``FLASH_DEFL_BEGIN`` session.

    ``size`` bytes are written from ``offset``: the blocks as sent, or what they
    decompress to (zlib). ``erase`` sectors are erased when the session begins. Blocks
    must arrive in order (``seq``); writes are whole words (16-byte blocks when
    ``encrypted``), so a partial word of decompressed data waits for the next block.
    """

    def __init__(
        self,
        chip: DownloadChip,
        *,
        offset: int,
        size: int,
        blocks: int,
        block_size: int,
        encrypted: bool,
        compressed: bool,
        check_sequence: bool,
    ) -> None:
        self.chip = chip
        self.offset = offset
        self.size = size
        self.blocks = blocks
        self.block_size = block_size
        self.encrypted = encrypted
        self.compressed = compressed
        self.check_sequence = check_sequence
        self.produced = 0
        """Bytes accepted so far (programmed, or waiting in ``_pending`` for a whole word)."""
        self.position = offset
        self.next_seq = 0
        self._pending = b""
        self._inflate = zlib.decompressobj() if compressed else None
        if encrypted:
            refusal = chip.manual_encryption_refusal()
            if refusal is not None:
                raise LoaderFault(Fault.REFUSED, f"encrypted write refused: {refusal}")
            if offset % ENCRYPTED_WRITE_ALIGN:
                raise LoaderFault(Fault.RANGE, f"encrypted write at 0x{offset:x} not 16-aligned")
        try:
            chip.erase(offset, size)
        except ChipError as exc:
            raise LoaderFault(Fault.RANGE, exc.message) from None

    @property
    def remaining(self) -> int:
        return self.size - self.produced

    def block(self, block: DataBlock) -> None:
        """Write one ``_DATA`` block, or raise and write nothing."""
        if self.check_sequence and block.seq != self.next_seq:
            raise LoaderFault(
                Fault.SEQUENCE, f"block {block.seq} out of order (expected {self.next_seq})"
            )
        if self.check_sequence and block.seq >= self.blocks:
            raise LoaderFault(Fault.TOO_MUCH_DATA, f"block {block.seq} of {self.blocks}")
        if self._inflate is not None:
            inflate, data = self._inflated(block.data)
            final = inflate.eof or len(data) == self.remaining
        else:
            if len(block.data) > self.block_size:
                raise LoaderFault(Fault.TOO_MUCH_DATA, "block longer than the block size")
            inflate, data, final = None, block.data[: self.remaining], True
        align = ENCRYPTED_WRITE_ALIGN if self.encrypted else WRITE_ALIGN
        buf = self._pending + data
        keep = 0 if final else len(buf) % align
        out = buf[: len(buf) - keep]
        try:
            self.chip.program(self.position, out, encrypted=self.encrypted)
        except ChipError as exc:
            raise LoaderFault(Fault.RANGE, exc.message) from None
        if inflate is not None:
            self._inflate = inflate
        self.position += len(out)
        self._pending = buf[len(buf) - keep :]
        self.produced += len(data)
        self.next_seq = block.seq + 1

    def _inflated(self, compressed: bytes) -> tuple[zlib._Decompress, bytes]:
        assert self._inflate is not None
        trial = self._inflate.copy()
        try:
            data = trial.decompress(compressed, self.remaining + 1)
        except zlib.error as exc:
            raise LoaderFault(Fault.INFLATE, f"deflate stream: {exc}") from None
        if len(data) > self.remaining:
            raise LoaderFault(
                Fault.TOO_MUCH_DATA,
                f"compressed data inflates past the {self.size} bytes announced",
            )
        return trial, data


@dataclass
class RamUpload:
    """RAM written with ``MEM_BEGIN`` / ``MEM_DATA``: one segment per ``MEM_BEGIN``."""

    segments: dict[int, bytearray] = field(default_factory=dict)
    current: int | None = None
    expected: int = 0
    next_seq: int = 0

    @property
    def total(self) -> int:
        return sum(len(s) for s in self.segments.values())

    def begin(self, size: int, blocks: int, block_size: int, offset: int) -> None:
        if size > RAM_LIMIT or self.total + size > RAM_LIMIT:
            raise LoaderFault(Fault.RANGE, f"{size} bytes do not fit in RAM")
        if blocks * block_size < size:
            raise LoaderFault(Fault.BAD_PACKET, "blocks do not cover the segment")
        self.segments[offset] = bytearray()
        self.current = offset
        self.expected = size
        self.next_seq = 0

    def block(self, block: DataBlock) -> None:
        if self.current is None:
            raise LoaderFault(Fault.NOT_STARTED, "MEM_DATA without MEM_BEGIN")
        segment = self.segments[self.current]
        if block.seq != self.next_seq:
            raise LoaderFault(
                Fault.SEQUENCE, f"RAM block {block.seq} out of order (expected {self.next_seq})"
            )
        if len(segment) + len(block.data) > self.expected:
            raise LoaderFault(Fault.TOO_MUCH_DATA, "more RAM data than MEM_BEGIN announced")
        segment += block.data
        self.next_seq += 1

    def image(self) -> dict[int, bytes]:
        return {addr: bytes(data) for addr, data in self.segments.items()}


class LoaderBase(ABC):
    """The command loop both loaders share: parse, dispatch, answer, report faults."""

    name = "loader"

    def __init__(self, chip: DownloadChip) -> None:
        self.chip = chip
        self.write: FlashWrite | None = None
        self.ram = RamUpload()
        self.transition: Transition | None = None
        self.stub_entry: int | None = None

    @abstractmethod
    def status(self, fault: Fault | None) -> bytes:
        """The status bytes for success (``None``) or ``fault``."""

    @abstractmethod
    def dispatch(self, req: Request) -> list[bytes]:
        """Run one command; return the response packets (unframed)."""

    @abstractmethod
    def on_fault(self, fault: SlipFault) -> list[bytes]:
        """The answer to a frame that is not a packet."""

    def on_frame(self, frame: bytes) -> list[bytes]:
        try:
            req = Request.parse(frame)
        except FormatError as exc:
            op = frame[1] if len(frame) > 1 else 0
            self.chip.notify(f"{self.name}: malformed packet: {exc.message}")
            return [self.answer(op, fault=Fault.BAD_PACKET)]
        try:
            return self.dispatch(req)
        except LoaderFault as exc:
            self.chip.notify(f"{self.name}: command 0x{req.op:02x} failed: {exc.message}")
            return [self.answer(req.op, fault=exc.fault)]

    def answer(
        self, op: int, *, value: int = 0, data: bytes = b"", fault: Fault | None = None
    ) -> bytes:
        from espsec.device.download.protocol import response

        return response(op, self.status(fault), value=value, data=b"" if fault else data)

    # -- shared command bodies -------------------------------------------------------

    def _ok(self, op: int, *, value: int = 0, data: bytes = b"") -> list[bytes]:
        return [self.answer(op, value=value, data=data)]

    def _read_reg(self, req: Request) -> list[bytes]:
        return self._ok(Op.READ_REG, value=self.read_reg(req))

    def _write_reg(self, req: Request) -> list[bytes]:
        self.write_regs(req)
        return self._ok(Op.WRITE_REG)

    def _spi_attach(self, req: Request) -> list[bytes]:
        params(req, 1, optional=1)
        return self._ok(Op.SPI_ATTACH)

    def _spi_set_params(self, req: Request) -> list[bytes]:
        params(req, 6)
        return self._ok(Op.SPI_SET_PARAMS)

    def _change_baudrate(self, req: Request) -> list[bytes]:
        params(req, 2)
        return self._ok(Op.CHANGE_BAUDRATE)

    def security_info(self) -> bytes:
        return security_info(self.chip.efuses).to_bytes()

    def md5(self, req: Request) -> bytes:
        addr, size, _, _ = params(req, 4)
        try:
            data = self.chip.read_flash(addr, size)
        except ChipError as exc:
            raise LoaderFault(Fault.RANGE, exc.message) from None
        return hashlib.md5(data, usedforsecurity=False).digest()

    def write_regs(self, req: Request) -> None:
        if not req.data or len(req.data) % 16:
            raise LoaderFault(Fault.BAD_PACKET, "WRITE_REG takes 16-byte entries")
        for i in range(0, len(req.data), 16):
            addr, value, mask, _ = words(req.data[i : i + 16], 4)
            self.chip.write_reg(addr, value, mask)

    def read_reg(self, req: Request) -> int:
        (addr,) = params(req, 1)
        return self.chip.read_reg(addr)

    def mem_begin(self, req: Request) -> None:
        size, blocks, block_size, offset = params(req, 4)
        self.ram.begin(size, blocks, block_size, offset)

    def mem_data(self, req: Request) -> None:
        self.ram.block(data_block(req))

    def mem_end(self, req: Request) -> None:
        """``MEM_END``: run the upload if it is the flasher stub; refuse any other code."""
        from espsec.device.download.stub import identify

        flag, entry = params(req, 2)
        self.ram.current = None
        if flag:  # 1: do not execute (esptool's Secure Boot workflow starts it later)
            return
        stub = identify(self.chip.facts.chip, self.ram.image(), entry)
        if stub is None:
            raise LoaderFault(Fault.REFUSED, describe_refused_upload(self.ram, entry))
        self.chip.notify(f"{self.name}: running esptool's flasher stub ({stub.source})")
        self.transition = Transition.RUN_STUB

    def flash_end(self, req: Request) -> int:
        (value,) = params(req, 1)
        self.write = None
        return value


def describe_refused_upload(ram: RamUpload, entry: int) -> str:
    spans = ", ".join(f"0x{a:08x}+{len(d)}" for a, d in sorted(ram.segments.items()))
    return (
        f"RAM upload ({spans or 'nothing'}; entry 0x{entry:08x}) is not esptool's flasher "
        "stub for this chip: the virtual chip cannot run other code"
    )
