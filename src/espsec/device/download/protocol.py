"""The serial download protocol: packets, opcodes, status bytes, and per-chip loader facts.

Source: esptool 5.6.0 ``docs/en/advanced-topics/serial-protocol.rst`` and
``esptool/loader.py`` (``ESP_CMDS``, ``command``, ``check_command``), the flasher stub's
``src/command_handler.c`` (esp-flasher-stub v1.4.1, shipped as esptool's
``targets/stub_flasher/2``), and the chip classes ``esptool/targets/esp32s3.py`` and
``esp32p4.py`` for addresses.

A request is ``<B direction=0><B op><H size><I checksum>`` followed by ``size`` bytes; a
response is ``<B 1><B op><H size><I value>`` followed by data and the status bytes. The
ROM of the ESP32-S3 and ESP32-P4 ends every response with four status bytes (status,
error, two reserved); the stub with two (a big-endian error code, 0 for success).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from espsec.errors import FormatError, UnsupportedError

HEADER = struct.Struct("<BBHI")
DATA_HEADER = struct.Struct("<IIII")
"""``_DATA`` commands: data length, sequence number, two zero words, then the data."""

CHECKSUM_SEED = 0xEF
SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32
SYNC_VALUE = 0x20120707
"""What the ROM puts in ``value`` when it answers SYNC (the stub answers 0)."""
SYNC_REPLIES = 8
"""The ROM and the stub both answer one SYNC with eight responses."""
OHAI = b"OHAI"
"""The stub's greeting, the only unsolicited packet the chip sends."""

MAX_DATA_BLOCK = 0x4000
"""Largest ``_DATA`` payload accepted: the stub's 16 KiB write block (esptool ``StubMixin``)."""
MAX_PACKET = HEADER.size + DATA_HEADER.size + MAX_DATA_BLOCK
MAX_FRAME = 2 * MAX_PACKET
"""Largest escaped SLIP frame the receive buffer holds (every byte could be escaped)."""


class Op(IntEnum):
    """Command opcodes (esptool ``ESPLoader.ESP_CMDS``)."""

    FLASH_BEGIN = 0x02
    FLASH_DATA = 0x03
    FLASH_END = 0x04
    MEM_BEGIN = 0x05
    MEM_END = 0x06
    MEM_DATA = 0x07
    SYNC = 0x08
    WRITE_REG = 0x09
    READ_REG = 0x0A
    SPI_SET_PARAMS = 0x0B
    SPI_ATTACH = 0x0D
    READ_FLASH_SLOW = 0x0E
    CHANGE_BAUDRATE = 0x0F
    FLASH_DEFL_BEGIN = 0x10
    FLASH_DEFL_DATA = 0x11
    FLASH_DEFL_END = 0x12
    SPI_FLASH_MD5 = 0x13
    GET_SECURITY_INFO = 0x14
    ERASE_FLASH = 0xD0
    ERASE_REGION = 0xD1
    READ_FLASH = 0xD2
    RUN_USER_CODE = 0xD3


class RomError(IntEnum):
    """The ROM loader's error byte (serial-protocol.rst, "ROM Loader Errors")."""

    INVALID_PARAMETER = 0x01
    INVALID_MESSAGE = 0x05
    FAILED = 0x06
    CHECKSUM = 0x07
    FLASH_WRITE = 0x08
    FLASH_READ = 0x09
    FLASH_READ_LENGTH = 0x0A
    DEFLATE = 0x0B
    RAM_SIZE = 0x0E
    RAM_ADDRESS = 0x0F


class StubError(IntEnum):
    """The flasher stub's response codes (``RESPONSE_*``, sent big-endian as ``0xCC00``)."""

    BAD_DATA_LEN = 0xC000
    BAD_DATA_CHECKSUM = 0xC100
    BAD_BLOCKSIZE = 0xC200
    INVALID_COMMAND = 0xC300
    FAILED_SPI_OP = 0xC400
    NOT_IN_FLASH_MODE = 0xC600
    INFLATE_ERROR = 0xC700
    NOT_ENOUGH_DATA = 0xC800
    TOO_MUCH_DATA = 0xC900
    CMD_NOT_IMPLEMENTED = 0xFF00


SECURE_DOWNLOAD_COMMANDS = frozenset(
    {
        Op.SYNC,
        Op.SPI_ATTACH,
        Op.SPI_SET_PARAMS,
        Op.CHANGE_BAUDRATE,
        Op.FLASH_BEGIN,
        Op.FLASH_DATA,
        Op.FLASH_END,
        Op.GET_SECURITY_INFO,
    }
)
"""What the ROM accepts in Secure Download Mode (serial-protocol.rst, "Supported in Secure
Download Mode"); every other command gets the invalid-message answer."""


def checksum(data: bytes, state: int = CHECKSUM_SEED) -> int:
    """The ROM's 8-bit checksum: ``0xEF`` XOR every byte (esptool ``ESPLoader.checksum``)."""
    if not data:
        return state
    return int(np.bitwise_xor.reduce(np.frombuffer(data, dtype=np.uint8))) ^ state


@dataclass(frozen=True)
class Request:
    """One command packet from the host."""

    op: int
    checksum: int
    data: bytes

    @classmethod
    def parse(cls, frame: bytes) -> Request:
        if len(frame) < HEADER.size:
            raise FormatError(
                "command packet shorter than its header",
                field="header",
                expected=f"{HEADER.size} bytes",
                found=f"{len(frame)} bytes",
            )
        direction, op, size, chk = HEADER.unpack_from(frame)
        if direction != 0:
            raise FormatError(
                "not a command packet", field="direction", expected=0, found=direction
            )
        if size != len(frame) - HEADER.size:
            raise FormatError(
                "size field does not match the packet",
                field="size",
                expected=len(frame) - HEADER.size,
                found=size,
            )
        return cls(op, chk, frame[HEADER.size :])


@dataclass(frozen=True)
class DataBlock:
    """The payload of a ``FLASH_DATA`` / ``FLASH_DEFL_DATA`` / ``MEM_DATA`` command."""

    length: int
    seq: int
    data: bytes

    @classmethod
    def parse(cls, payload: bytes) -> DataBlock:
        if len(payload) < DATA_HEADER.size:
            raise FormatError(
                "data command shorter than its header",
                field="data header",
                expected=f"{DATA_HEADER.size} bytes",
                found=f"{len(payload)} bytes",
            )
        length, seq, _, _ = DATA_HEADER.unpack_from(payload)
        data = payload[DATA_HEADER.size :]
        if length != len(data):
            raise FormatError(
                "data length field does not match the data",
                field="length",
                expected=len(data),
                found=length,
            )
        return cls(length, seq, data)


def words(payload: bytes, count: int, *, optional: int = 0) -> tuple[int, ...]:
    """``count`` little-endian words, plus up to ``optional`` more if present (else 0)."""
    allowed = {4 * (count + i) for i in range(optional + 1)}
    if len(payload) not in allowed:
        raise FormatError(
            "wrong parameter size",
            expected=" or ".join(f"{n} bytes" for n in sorted(allowed)),
            found=f"{len(payload)} bytes",
        )
    n = len(payload) // 4
    values = struct.unpack(f"<{n}I", payload)
    return values + (0,) * (count + optional - n)


def response(op: int, status: bytes, *, value: int = 0, data: bytes = b"") -> bytes:
    """A response packet (unframed): header, ``data``, then ``status``."""
    body = data + status
    return HEADER.pack(1, op & 0xFF, len(body), value & 0xFFFFFFFF) + body


def rom_status(error: RomError | None = None) -> bytes:
    """The ROM's four status bytes: 0 (ok) or 1 and the error, then two reserved."""
    return bytes([0, 0, 0, 0]) if error is None else bytes([1, int(error), 0, 0])


def stub_status(error: StubError | None = None) -> bytes:
    """The stub's two status bytes: its response code, big-endian."""
    return struct.pack(">H", 0 if error is None else int(error))


INVALID_OP = 0x00
"""The command byte of the ROM's answer to a command it will not run. It differs from the
request's, which is how esptool tells this answer (status 1, error 0x05) from a failed
command and raises ``UnsupportedCommandError`` (``loader.py``, ``command``)."""


def rom_rejection() -> bytes:
    """The ROM's answer to a command it does not accept (unknown, or not allowed)."""
    return response(INVALID_OP, rom_status(RomError.INVALID_MESSAGE))


@dataclass(frozen=True)
class LoaderFacts:
    """Addresses the download-mode loaders of one chip answer for (esptool target classes)."""

    chip: str
    efuse_base: int
    """``DR_REG_EFUSE_BASE``: the eFuse controller's register window."""
    spi_base: int
    """``SPI_REG_BASE``: the SPI flash controller (``SPIMEM1``)."""
    uart_date_reg: int
    """``UART_DATE_REG_ADDR``: esptool's target for dummy writes that carry a delay."""
    rom_read_hook: int | None = None
    """ESP32-S3 only: ``rom_spiflash_legacy_funcs.read``, the pointer esptool overwrites with
    the stub's entry to start it when Secure Boot blocks ``MEM_END`` (``run_stub``)."""


SPI_CMD = 0x00
SPI_ADDR = 0x04
SPI_USR = 0x18
SPI_USR1 = 0x1C
SPI_USR2 = 0x20
SPI_MOSI_DLEN = 0x24
SPI_MISO_DLEN = 0x28
SPI_W0 = 0x58
SPI_W_COUNT = 16

LOADER_FACTS = {
    "esp32s3": LoaderFacts(
        chip="esp32s3",
        efuse_base=0x60007000,
        spi_base=0x60002000,
        uart_date_reg=0x60000080,
        rom_read_hook=0x3FCEF688,
    ),
    "esp32p4": LoaderFacts(
        chip="esp32p4",
        efuse_base=0x5012D000,
        spi_base=0x5008D000,
        uart_date_reg=0x500CA000 + 0x8C,
    ),
}


def loader_facts(chip: str) -> LoaderFacts:
    """The download-mode facts of ``chip`` (``esp32s3`` or ``esp32p4``)."""
    try:
        return LOADER_FACTS[chip]
    except KeyError:
        raise UnsupportedError(f"no download-mode model for {chip}") from None
