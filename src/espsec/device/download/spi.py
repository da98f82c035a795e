"""The SPI flash controller's user-command registers, as esptool drives them.

esptool runs raw SPI flash commands (JEDEC ID, SFDP, status registers, reset) through the
``SPIMEM1`` "user command" registers over ``READ_REG``/``WRITE_REG``
(``ESPLoader.run_spiflash_command``): it sets ``SPI_USR_REG`` flags, the data lengths,
the command byte in ``SPI_USR2_REG``, the address and the ``SPI_W0..15`` data words, then
writes ``SPI_USR`` (bit 18) to ``SPI_CMD_REG`` and reads the answer from ``SPI_W0``.

The flash answering here is a generic JEDEC part whose ID encodes its size
(``0xEF 0x40 log2(size)``, a Winbond W25Q-style ID as esptool ``DETECTED_FLASH_SIZES``
decodes it) with a minimal SFDP header.
"""

from __future__ import annotations

from collections.abc import Callable

from espsec.device.download.protocol import (
    SPI_ADDR,
    SPI_CMD,
    SPI_MISO_DLEN,
    SPI_MOSI_DLEN,
    SPI_USR,
    SPI_USR2,
    SPI_W0,
    SPI_W_COUNT,
)

CMD_USR = 1 << 18
USR_COMMAND = 1 << 31
USR_ADDR = 1 << 30
USR_MISO = 1 << 28
USR_MOSI = 1 << 27
ADDR_LEN_SHIFT = 26

JEDEC_MANUFACTURER = 0xEF
JEDEC_MEMORY_TYPE = 0x40
REGION_SIZE = 0x100

RDID = 0x9F
RDSFDP = 0x5A
READ = 0x03
RDSR = (0x05, 0x35, 0x15)
WRSR = (0x01, 0x31, 0x11)
WREN = 0x06
WEVSR = 0x50
WRDI = 0x04

# JEDEC JESD216 header: "SFDP", revision 1.6, one parameter header (basic table at 0x30).
SFDP = b"SFDP\x06\x01\x00\xff" + b"\x00\x06\x01\x10\x30\x00\x00\xff"


class SpiFlashController:
    """``SPIMEM1`` user commands against a flash of ``size`` bytes read by ``read``."""

    def __init__(self, size: int, read: Callable[[int, int], bytes]) -> None:
        self.size = size
        self._read = read
        self._regs: dict[int, int] = {}
        self._status = [0, 0, 0]
        self._write_enabled = False

    def read(self, offset: int) -> int:
        return self._regs.get(offset & ~3, 0)

    def write(self, offset: int, value: int) -> None:
        offset &= ~3
        self._regs[offset] = value & 0xFFFFFFFF
        if offset == SPI_CMD and value & CMD_USR:
            self._run()
            self._regs[SPI_CMD] = value & ~CMD_USR

    def _run(self) -> None:
        usr = self._regs.get(SPI_USR, 0)
        if not usr & USR_COMMAND:
            return
        command = self._regs.get(SPI_USR2, 0) & 0xFF
        miso = (self._regs.get(SPI_MISO_DLEN, 0) + 1) // 8 if usr & USR_MISO else 0
        mosi = (self._regs.get(SPI_MOSI_DLEN, 0) + 1) // 8 if usr & USR_MOSI else 0
        address = self._regs.get(SPI_ADDR, 0) if usr & USR_ADDR else 0
        out = b"".join(
            self._regs.get(SPI_W0 + 4 * i, 0).to_bytes(4, "little") for i in range(SPI_W_COUNT)
        )[:mosi]
        answer = self._answer(command, address, out, miso)
        if miso:
            # The MISO bytes land in W0.. from the lowest byte up; the rest keeps its value.
            buffer = bytearray(
                b"".join(
                    self._regs.get(SPI_W0 + 4 * i, 0).to_bytes(4, "little")
                    for i in range(SPI_W_COUNT)
                )
            )
            data = answer.ljust(miso, b"\xff")[: len(buffer)]
            buffer[: len(data)] = data
            for i in range(0, -(-len(data) // 4) * 4, 4):
                self._regs[SPI_W0 + i] = int.from_bytes(buffer[i : i + 4], "little")

    def _answer(self, command: int, address: int, out: bytes, length: int) -> bytes:
        if command == RDID:
            return bytes([JEDEC_MANUFACTURER, JEDEC_MEMORY_TYPE, self.size.bit_length() - 1])
        if command == RDSFDP:
            return SFDP[address : address + length].ljust(length, b"\xff")
        if command == READ:
            end = min(address + length, self.size)
            return self._read(address, max(0, end - address)) if address < self.size else b""
        if command in RDSR:
            return bytes([self._status[RDSR.index(command)]])
        if command in (WREN, WEVSR):
            self._write_enabled = True
        elif command == WRDI:
            self._write_enabled = False
        elif command in WRSR and self._write_enabled:
            first = WRSR.index(command)
            for i, byte in enumerate(out[: 3 - first]):
                self._status[first + i] = byte
        return b""
