"""esptool's flasher stub, run by the virtual chip when the host uploads it.

The twin cannot execute Xtensa or RISC-V code. It recognises esptool's own flasher
stubs by the SHA-256 of their text and data segments (the table below, computed from
esptool 5.6.0 ``esptool/targets/stub_flasher/{1,2}/<chip>.json``; esp-flasher-stub v1.4.1
and the legacy stub) and then speaks the stub's protocol as esp-flasher-stub's
``src/command_handler.c`` does: two status bytes (a big-endian response code), SYNC
answered with value 0, flash writes that erase as they go, ``READ_FLASH`` streaming
4 KiB packets each acknowledged by the host with the running byte count, then the MD5.
Any other RAM image is refused.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from espsec.device.download.chip import ChipError, DownloadChip
from espsec.device.download.loader import (
    Fault,
    FlashWrite,
    LoaderBase,
    LoaderFault,
    Transition,
    data_block,
    params,
)
from espsec.device.download.protocol import (
    HEADER,
    MAX_DATA_BLOCK,
    SYNC_PAYLOAD,
    SYNC_REPLIES,
    Op,
    Request,
    StubError,
    stub_status,
)
from espsec.device.download.slip import SlipFault
from espsec.flash import SECTOR_SIZE


@dataclass(frozen=True)
class KnownStub:
    """One published flasher stub: where esptool loads it and what it looks like."""

    source: str
    """Its file in esptool 5.6.0's ``targets/stub_flasher/``."""
    entry: int
    text_start: int
    text_sha256: str
    data_start: int
    data_sha256: str

    @property
    def chip(self) -> str:
        return self.source.split("/")[1].split(".")[0].split("-")[0]


KNOWN_STUBS = (
    KnownStub(
        "1/esp32s3.json",
        0x40378C94,
        0x40378000,
        "4f2db4cfaa9938d03537519d95081372f8b833dfcf2ae8fb47fc90425cb853d3",
        0x3FCB2C00,
        "9c9afe914bfbc69aa663ed70c2abd574e6a16699ef7150a9bb625dd9b8453d8a",
    ),
    KnownStub(
        "2/esp32s3.json",
        0x403795A8,
        0x40378000,
        "944c51f44b81b95252b6f6f86e070c11bc0bc48f81dc1727b6bf66a0eee20007",
        0x3FCB2DC4,
        "745e5ab89051df903c20edfe1728e746dad480c51ab5472c4597959cf4d3e4d2",
    ),
    KnownStub(
        "1/esp32p4-rev1.json",
        0x4FF10BA0,
        0x4FF10000,
        "c2b6fb9a070b286e851afe5219f55db45372f237bd53d49d5563b60ace62c43e",
        0x4FF62C00,
        "5d68ea624915ee4b3e7cc1549fbbe97f4599b922e88482b0788c52941f28c43a",
    ),
    KnownStub(
        "2/esp32p4-rev1.json",
        0x4FF11476,
        0x4FF10000,
        "240bc4588401b3ccf2ff94cf05f2f9177fa25111cb7ef8ed449b2b71977e8ba4",
        0x4FF62DBC,
        "39ba8e5406b6bb9fdfae3d2cb60b8509bc37d01d40bfdbfc37059757e23fbce5",
    ),
    KnownStub(
        "2/esp32p4.json",
        0x4FF51476,
        0x4FF50000,
        "2a626a39d4f0feefbb813dc79810ee8921745ae99aa5378fce8f3d92b1381035",
        0x4FF72DBC,
        "b07f42f7dc6c2708ef22a5080e1f95fa7e5be297bc4231201c624d9f4de50aa9",
    ),
)


def identify(chip: str, image: Mapping[int, bytes], entry: int) -> KnownStub | None:
    """The known stub for ``chip`` that ``image`` (address -> bytes) is, entered at ``entry``."""
    for stub in KNOWN_STUBS:
        if stub.chip != chip or stub.entry != entry:
            continue
        if set(image) != {stub.text_start, stub.data_start}:
            continue
        text = hashlib.sha256(image[stub.text_start]).hexdigest()
        data = hashlib.sha256(image[stub.data_start]).hexdigest()
        if text == stub.text_sha256 and data == stub.data_sha256:
            return stub
    return None


_STUB_ERRORS = {
    Fault.BAD_PACKET: StubError.BAD_DATA_LEN,
    Fault.CHECKSUM: StubError.BAD_DATA_CHECKSUM,
    Fault.NOT_STARTED: StubError.NOT_IN_FLASH_MODE,
    Fault.SEQUENCE: StubError.BAD_DATA_LEN,
    Fault.TOO_MUCH_DATA: StubError.TOO_MUCH_DATA,
    Fault.RANGE: StubError.FAILED_SPI_OP,
    Fault.INFLATE: StubError.INFLATE_ERROR,
    Fault.REFUSED: StubError.FAILED_SPI_OP,
    Fault.UNSUPPORTED: StubError.INVALID_COMMAND,
}

READ_PACKET_MAX = 4096
"""Largest ``READ_FLASH`` packet the stub's buffer holds."""


@dataclass
class _Read:
    offset: int
    length: int
    packet: int
    sent: int = 0
    digest: hashlib._Hash | None = None


class StubLoader(LoaderBase):
    """esptool's flasher stub, running in RAM."""

    name = "stub"

    def __init__(self, chip: DownloadChip) -> None:
        super().__init__(chip)
        self._read: _Read | None = None

    def status(self, fault: Fault | None) -> bytes:
        return stub_status(None if fault is None else _STUB_ERRORS[fault])

    def on_fault(self, fault: SlipFault) -> list[bytes]:
        self.chip.notify(f"{self.name}: dropped a frame: {fault.reason}")
        return [self.answer(0, fault=Fault.BAD_PACKET)]

    def on_frame(self, frame: bytes) -> list[bytes]:
        if self._read is not None:
            return self._acknowledged(frame)
        if len(frame) >= HEADER.size and frame[0] != 0:
            return [self.answer(frame[1], fault=Fault.UNSUPPORTED)]
        return super().on_frame(frame)

    def dispatch(self, req: Request) -> list[bytes]:
        handler = _HANDLERS.get(req.op)
        if handler is None:
            raise LoaderFault(Fault.UNSUPPORTED, f"unknown command 0x{req.op:02x}")
        return handler(self, req)

    # -- commands --------------------------------------------------------------------

    def _sync(self, req: Request) -> list[bytes]:
        if req.data != SYNC_PAYLOAD:
            raise LoaderFault(Fault.BAD_PACKET, "SYNC payload is not 07 07 12 20 55..55")
        return [self.answer(Op.SYNC)] * SYNC_REPLIES

    def _begin(self, req: Request) -> list[bytes]:
        size, blocks, block_size, offset, encrypted = params(req, 4, optional=1)
        self.write = None
        if blocks and not 0 < block_size <= MAX_DATA_BLOCK:
            raise LoaderFault(Fault.BAD_PACKET, f"block size {block_size} not accepted")
        self.write = FlashWrite(
            self.chip,
            offset=offset,
            size=size,
            blocks=blocks,
            block_size=block_size,
            encrypted=bool(encrypted),
            compressed=req.op == Op.FLASH_DEFL_BEGIN,
            check_sequence=False,
        )
        return self._ok(req.op)

    def _data(self, req: Request) -> list[bytes]:
        if self.write is None or self.write.compressed != (req.op == Op.FLASH_DEFL_DATA):
            raise LoaderFault(Fault.NOT_STARTED, "data block without a matching *_BEGIN")
        block = data_block(req)
        if self.write.compressed and self.write.remaining == 0 and len(block.data) > 4:
            raise LoaderFault(Fault.TOO_MUCH_DATA, "data after the whole image was written")
        self.write.block(block)
        return self._ok(req.op)

    def _end(self, req: Request) -> list[bytes]:
        if self.write is None:
            raise LoaderFault(Fault.NOT_STARTED, "*_END without a flash write in progress")
        if self.write.remaining:
            raise LoaderFault(Fault.BAD_PACKET, f"{self.write.remaining} bytes still expected")
        self.flash_end(req)  # esp-flasher-stub stays in the loader either way
        return self._ok(req.op)

    def _mem_begin(self, req: Request) -> list[bytes]:
        self.mem_begin(req)
        return self._ok(Op.MEM_BEGIN)

    def _mem_data(self, req: Request) -> list[bytes]:
        self.mem_data(req)
        return self._ok(Op.MEM_DATA)

    def _mem_end(self, req: Request) -> list[bytes]:
        self.mem_end(req)
        if self.transition is Transition.RUN_STUB:  # the stub is already running
            self.transition = None
        return self._ok(Op.MEM_END)

    def _md5(self, req: Request) -> list[bytes]:
        return self._ok(Op.SPI_FLASH_MD5, data=self.md5(req))

    def _security_info(self, req: Request) -> list[bytes]:
        if req.data:
            raise LoaderFault(Fault.BAD_PACKET, "GET_SECURITY_INFO takes no parameters")
        return self._ok(Op.GET_SECURITY_INFO, data=self.security_info())

    def _erase_flash(self, req: Request) -> list[bytes]:
        self._erase(0, self.chip.flash_size)
        return self._ok(Op.ERASE_FLASH)

    def _erase_region(self, req: Request) -> list[bytes]:
        offset, size = params(req, 2)
        if offset % SECTOR_SIZE or size % SECTOR_SIZE:
            raise LoaderFault(Fault.BAD_PACKET, "erase region not in whole 4 KiB sectors")
        self._erase(offset, size)
        return self._ok(Op.ERASE_REGION)

    def _erase(self, offset: int, size: int) -> None:
        try:
            self.chip.erase(offset, size)
        except ChipError as exc:
            raise LoaderFault(Fault.RANGE, exc.message) from None

    def _run_user_code(self, req: Request) -> list[bytes]:
        self.transition = Transition.LEAVE
        return []

    # -- READ_FLASH: packets, each acknowledged by the host ---------------------------

    def _read_flash(self, req: Request) -> list[bytes]:
        offset, length, packet, _ = params(req, 4)
        if not 0 < packet <= READ_PACKET_MAX:
            raise LoaderFault(Fault.BAD_PACKET, f"read packet size {packet} not accepted")
        try:
            self.chip.check_range(offset, length)
        except ChipError as exc:
            raise LoaderFault(Fault.RANGE, exc.message) from None
        self._read = _Read(offset, length, packet, digest=hashlib.md5(usedforsecurity=False))
        return [self.answer(Op.READ_FLASH), *self._next_packet()]

    def _next_packet(self) -> list[bytes]:
        read = self._read
        assert read is not None and read.digest is not None
        if read.sent >= read.length:
            self._read = None
            return [read.digest.digest()]
        size = min(read.packet, read.length - read.sent)
        data = self.chip.read_flash(read.offset + read.sent, size)
        read.digest.update(data)
        read.sent += size
        return [data]

    def _acknowledged(self, frame: bytes) -> list[bytes]:
        read = self._read
        assert read is not None and read.digest is not None
        if len(frame) != 4:  # not an acknowledgement: the stub stops and sends the MD5
            self._read = None
            return [read.digest.digest()]
        (acked,) = struct.unpack("<I", frame)
        if acked < read.sent:
            return []
        return self._next_packet()


_HANDLERS: dict[int, Callable[[StubLoader, Request], list[bytes]]] = {
    Op.SYNC: StubLoader._sync,
    Op.READ_REG: StubLoader._read_reg,
    Op.WRITE_REG: StubLoader._write_reg,
    Op.SPI_ATTACH: StubLoader._spi_attach,
    Op.SPI_SET_PARAMS: StubLoader._spi_set_params,
    Op.CHANGE_BAUDRATE: StubLoader._change_baudrate,
    Op.FLASH_BEGIN: StubLoader._begin,
    Op.FLASH_DATA: StubLoader._data,
    Op.FLASH_END: StubLoader._end,
    Op.FLASH_DEFL_BEGIN: StubLoader._begin,
    Op.FLASH_DEFL_DATA: StubLoader._data,
    Op.FLASH_DEFL_END: StubLoader._end,
    Op.MEM_BEGIN: StubLoader._mem_begin,
    Op.MEM_DATA: StubLoader._mem_data,
    Op.MEM_END: StubLoader._mem_end,
    Op.SPI_FLASH_MD5: StubLoader._md5,
    Op.GET_SECURITY_INFO: StubLoader._security_info,
    Op.ERASE_FLASH: StubLoader._erase_flash,
    Op.ERASE_REGION: StubLoader._erase_region,
    Op.READ_FLASH: StubLoader._read_flash,
    Op.RUN_USER_CODE: StubLoader._run_user_code,
}
