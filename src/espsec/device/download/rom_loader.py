"""The ROM's serial loader on ESP32-S3 and ESP32-P4, in normal and Secure Download Mode.

Commands and answers follow esptool's serial-protocol documentation: four status bytes
per response, the ROM erases the whole region at ``FLASH_BEGIN`` / ``FLASH_DEFL_BEGIN``,
``SPI_FLASH_MD5`` answers 32 hex digits, ``READ_FLASH_SLOW`` reads 64 bytes per command,
and ``FLASH_END`` leaves the loader (0: reboot, 1: run the app).

In Secure Download Mode only :data:`~espsec.device.download.protocol.SECURE_DOWNLOAD_COMMANDS`
run: no register access (so no eFuse reads or burns), no RAM uploads, no flash reads,
no MD5, no compressed writes. Every other command gets the ROM's rejection, which
esptool reports as "This command (0x..) is not supported in Secure Download Mode".
"""

from __future__ import annotations

from collections.abc import Callable

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
    MAX_DATA_BLOCK,
    SECURE_DOWNLOAD_COMMANDS,
    SYNC_PAYLOAD,
    SYNC_REPLIES,
    SYNC_VALUE,
    Op,
    Request,
    RomError,
    rom_rejection,
    rom_status,
)
from espsec.device.download.slip import SlipFault

READ_SLOW_BLOCK = 64
"""``READ_FLASH_SLOW`` always answers 64 bytes (esptool ``ESP32ROM.read_flash_slow``)."""

_ROM_ERRORS = {
    Fault.BAD_PACKET: RomError.INVALID_MESSAGE,
    Fault.CHECKSUM: RomError.CHECKSUM,
    Fault.NOT_STARTED: RomError.FAILED,
    Fault.SEQUENCE: RomError.INVALID_PARAMETER,
    Fault.TOO_MUCH_DATA: RomError.INVALID_PARAMETER,
    Fault.RANGE: RomError.FLASH_WRITE,
    Fault.INFLATE: RomError.DEFLATE,
    Fault.REFUSED: RomError.FAILED,
    Fault.UNSUPPORTED: RomError.INVALID_MESSAGE,
}


class RomLoader(LoaderBase):
    """The ROM download loop (``secure``: Secure Download Mode)."""

    def __init__(self, chip: DownloadChip, *, secure: bool = False) -> None:
        super().__init__(chip)
        self.secure = secure

    @property
    def name(self) -> str:  # type: ignore[override]
        return "ROM (Secure Download Mode)" if self.secure else "ROM"

    def status(self, fault: Fault | None) -> bytes:
        return rom_status(None if fault is None else _ROM_ERRORS[fault])

    def on_fault(self, fault: SlipFault) -> list[bytes]:
        self.chip.notify(f"{self.name}: dropped a frame: {fault.reason}")
        return [rom_rejection()]

    def dispatch(self, req: Request) -> list[bytes]:
        op = req.op
        if self.secure and op not in SECURE_DOWNLOAD_COMMANDS:
            name = Op(op).name if op in Op._value2member_map_ else f"0x{op:02x}"
            self.chip.notify(f"{self.name}: {name} refused")
            return [rom_rejection()]
        handler = _HANDLERS.get(op)
        if handler is None:
            self.chip.notify(f"{self.name}: unknown command 0x{op:02x}")
            return [rom_rejection()]
        return handler(self, req)

    # -- commands --------------------------------------------------------------------

    def _sync(self, req: Request) -> list[bytes]:
        if req.data != SYNC_PAYLOAD:
            raise LoaderFault(Fault.BAD_PACKET, "SYNC payload is not 07 07 12 20 55..55")
        return [self.answer(Op.SYNC, value=SYNC_VALUE)] * SYNC_REPLIES

    def _flash_begin(self, req: Request) -> list[bytes]:
        return self._begin(req, compressed=False)

    def _flash_defl_begin(self, req: Request) -> list[bytes]:
        return self._begin(req, compressed=True)

    def _begin(self, req: Request, *, compressed: bool) -> list[bytes]:
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
            compressed=compressed,
            check_sequence=True,
        )
        return self._ok(req.op)

    def _flash_data(self, req: Request) -> list[bytes]:
        if self.write is None or self.write.compressed != (req.op == Op.FLASH_DEFL_DATA):
            raise LoaderFault(Fault.NOT_STARTED, "data block without a matching *_BEGIN")
        self.write.block(data_block(req))
        return self._ok(req.op)

    def _flash_end(self, req: Request) -> list[bytes]:
        value = self.flash_end(req)
        self.transition = Transition.LEAVE if value else Transition.RESET
        return self._ok(req.op)

    def _mem_begin(self, req: Request) -> list[bytes]:
        self.mem_begin(req)
        return self._ok(Op.MEM_BEGIN)

    def _mem_data(self, req: Request) -> list[bytes]:
        self.mem_data(req)
        return self._ok(Op.MEM_DATA)

    def _mem_end(self, req: Request) -> list[bytes]:
        self.mem_end(req)
        return self._ok(Op.MEM_END)

    def _read_flash_slow(self, req: Request) -> list[bytes]:
        offset, length = params(req, 2)
        hook = self.chip.facts.rom_read_hook
        if hook is not None and self.chip.read_reg(hook):
            # esptool's ESP32-S3 Secure Boot workflow: the ROM's flash read now jumps to
            # the address written into rom_spiflash_legacy_funcs.read.
            return self._hijacked_read(self.chip.read_reg(hook))
        if length > READ_SLOW_BLOCK:
            raise LoaderFault(Fault.BAD_PACKET, f"READ_FLASH_SLOW of {length} bytes (max 64)")
        try:
            data = self.chip.read_flash(offset, length)
        except ChipError as exc:
            raise LoaderFault(Fault.RANGE, exc.message) from None
        return self._ok(Op.READ_FLASH_SLOW, data=data.ljust(READ_SLOW_BLOCK, b"\xff"))

    def _hijacked_read(self, entry: int) -> list[bytes]:
        from espsec.device.download.loader import describe_refused_upload
        from espsec.device.download.stub import identify

        stub = identify(self.chip.facts.chip, self.ram.image(), entry)
        if stub is None:
            self.chip.notify(f"{self.name}: {describe_refused_upload(self.ram, entry)}")
            self.transition = Transition.LEAVE
            return []
        self.chip.notify(f"{self.name}: running esptool's flasher stub ({stub.source})")
        self.transition = Transition.RUN_STUB
        return []

    def _md5(self, req: Request) -> list[bytes]:
        digest = self.md5(req)
        return self._ok(Op.SPI_FLASH_MD5, data=digest.hex().encode())

    def _security_info(self, req: Request) -> list[bytes]:
        if req.data:
            raise LoaderFault(Fault.BAD_PACKET, "GET_SECURITY_INFO takes no parameters")
        return self._ok(Op.GET_SECURITY_INFO, data=self.security_info())


_HANDLERS: dict[int, Callable[[RomLoader, Request], list[bytes]]] = {
    Op.SYNC: RomLoader._sync,
    Op.READ_REG: RomLoader._read_reg,
    Op.WRITE_REG: RomLoader._write_reg,
    Op.SPI_ATTACH: RomLoader._spi_attach,
    Op.SPI_SET_PARAMS: RomLoader._spi_set_params,
    Op.CHANGE_BAUDRATE: RomLoader._change_baudrate,
    Op.FLASH_BEGIN: RomLoader._flash_begin,
    Op.FLASH_DATA: RomLoader._flash_data,
    Op.FLASH_END: RomLoader._flash_end,
    Op.FLASH_DEFL_BEGIN: RomLoader._flash_defl_begin,
    Op.FLASH_DEFL_DATA: RomLoader._flash_data,
    Op.FLASH_DEFL_END: RomLoader._flash_end,
    Op.MEM_BEGIN: RomLoader._mem_begin,
    Op.MEM_DATA: RomLoader._mem_data,
    Op.MEM_END: RomLoader._mem_end,
    Op.READ_FLASH_SLOW: RomLoader._read_flash_slow,
    Op.SPI_FLASH_MD5: RomLoader._md5,
    Op.GET_SECURITY_INFO: RomLoader._security_info,
}
