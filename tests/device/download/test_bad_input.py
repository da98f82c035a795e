"""Bad input on the download port: each gets the ROM's error answer or a clean disconnect,
the server keeps serving, and the device folder never records half a block."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from espsec.device import VirtualDevice
from espsec.device.download import DownloadServer
from espsec.device.download.protocol import (
    MAX_FRAME,
    SYNC_PAYLOAD,
    Op,
    RomError,
    checksum,
)
from espsec.device.download.slip import SlipDecoder, SlipFault, encode

FLASH = 1 << 20


def command(op: int, data: bytes = b"", chk: int = 0) -> bytes:
    return encode(struct.pack("<BBHI", 0, op, len(data), chk) + data)


def data_command(op: int, seq: int, payload: bytes, *, chk: int | None = None) -> bytes:
    body = struct.pack("<IIII", len(payload), seq, 0, 0) + payload
    return command(op, body, checksum(payload) if chk is None else chk)


class Host:
    """A raw client: sends frames, reads SLIP responses."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("socket://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.slip = SlipDecoder(MAX_FRAME)
        self.frames: list[bytes] = []

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def response(self) -> tuple[int, int, bytes]:
        """The next response: (op, value, status bytes)."""
        while not self.frames:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            for frame in self.slip.feed(data):
                assert not isinstance(frame, SlipFault)
                self.frames.append(frame)
        frame = self.frames.pop(0)
        direction, op, size, value = struct.unpack_from("<BBHI", frame)
        assert direction == 1 and size == len(frame) - 8
        return op, value, frame[8:]

    def sync(self) -> None:
        self.send(command(Op.SYNC, SYNC_PAYLOAD))
        for _ in range(8):
            assert self.response()[0] == Op.SYNC

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[DownloadServer, Path]]:
    VirtualDevice.create(tmp_path / "dev", "esp32s3", FLASH)
    server = DownloadServer(VirtualDevice.open(tmp_path / "dev")).start()
    yield server, tmp_path / "dev"
    server.close()


def rom_error(status: bytes) -> RomError | None:
    return None if status[0] == 0 else RomError(status[1])


def test_malformed_slip_gets_the_invalid_message_answer(served):
    server, _ = served
    host = Host(server.url)
    host.send(b"\xc0\x00\x08\xdb\x01\xc0")  # 0xDB must be followed by 0xDC or 0xDD
    op, _, status = host.response()
    assert rom_error(status) is RomError.INVALID_MESSAGE and op != Op.SYNC
    host.sync()  # still answering
    host.close()


def test_oversized_packet_is_dropped_with_an_error(served):
    server, _ = served
    host = Host(server.url)
    host.send(b"\xc0" + b"\x55" * (MAX_FRAME + 10) + b"\xc0")
    assert rom_error(host.response()[2]) is RomError.INVALID_MESSAGE
    host.sync()
    host.close()


def test_size_field_that_lies_is_refused(served):
    server, _ = served
    host = Host(server.url)
    host.send(encode(struct.pack("<BBHI", 0, Op.READ_REG, 40, 0) + b"\0" * 4))
    op, _, status = host.response()
    assert op == Op.READ_REG and rom_error(status) is RomError.INVALID_MESSAGE
    host.close()


def test_flash_data_before_flash_begin_is_refused(served):
    server, folder = served
    host = Host(server.url)
    host.sync()
    host.send(data_command(Op.FLASH_DATA, 0, b"\x00" * 0x400))
    op, _, status = host.response()
    assert op == Op.FLASH_DATA and rom_error(status) is RomError.FAILED
    assert VirtualDevice.open(folder).flash.read_raw(0, 0x400) == b"\xff" * 0x400
    host.close()


def test_bad_checksum_and_out_of_order_blocks_write_nothing(served):
    server, folder = served
    host = Host(server.url)
    host.sync()
    host.send(command(Op.FLASH_BEGIN, struct.pack("<IIIII", 0x1000, 4, 0x400, 0x2000, 0)))
    assert rom_error(host.response()[2]) is None
    block = bytes(range(256)) * 4
    host.send(data_command(Op.FLASH_DATA, 0, block, chk=checksum(block) ^ 1))
    assert rom_error(host.response()[2]) is RomError.CHECKSUM
    host.send(data_command(Op.FLASH_DATA, 1, block))
    assert rom_error(host.response()[2]) is RomError.INVALID_PARAMETER
    host.send(data_command(Op.FLASH_DATA, 0, block))
    assert rom_error(host.response()[2]) is None
    flash = VirtualDevice.open(folder).flash
    assert flash.read_raw(0x2000, 0x800) == block + b"\xff" * 0x400
    host.close()


def test_write_past_the_end_of_flash_is_refused_before_erasing(served):
    server, folder = served
    host = Host(server.url)
    host.sync()
    before = VirtualDevice.open(folder).flash.read_raw(0, FLASH)
    begin = struct.pack("<IIIII", 0x2000, 2, 0x1000, FLASH - 0x1000, 0)
    host.send(command(Op.FLASH_BEGIN, begin))
    assert rom_error(host.response()[2]) is RomError.FLASH_WRITE
    assert VirtualDevice.open(folder).flash.read_raw(0, FLASH) == before
    host.close()


def test_corrupt_deflate_stream_writes_nothing(served):
    server, folder = served
    host = Host(server.url)
    host.sync()
    host.send(command(Op.FLASH_DEFL_BEGIN, struct.pack("<IIIII", 0x1000, 1, 0x400, 0x3000, 0)))
    assert rom_error(host.response()[2]) is None
    host.send(data_command(Op.FLASH_DEFL_DATA, 0, b"not zlib at all"))
    assert rom_error(host.response()[2]) is RomError.DEFLATE
    assert VirtualDevice.open(folder).flash.read_raw(0x3000, 0x1000) == b"\xff" * 0x1000
    host.close()


def test_dropped_connection_mid_write_keeps_whole_blocks_and_the_server(served):
    server, folder = served
    host = Host(server.url)
    host.sync()
    host.send(command(Op.FLASH_BEGIN, struct.pack("<IIIII", 0x1000, 4, 0x400, 0x4000, 0)))
    assert rom_error(host.response()[2]) is None
    block = b"\xa5" * 0x400
    host.send(data_command(Op.FLASH_DATA, 0, block))
    assert rom_error(host.response()[2]) is None
    host.send(data_command(Op.FLASH_DATA, 1, block)[:300])  # cut in the middle of block 1
    host.close()
    again = Host(server.url)  # the server is still there, the ROM starts afresh
    again.sync()
    again.send(data_command(Op.FLASH_DATA, 1, block))
    assert rom_error(again.response()[2]) is RomError.FAILED  # no write in progress now
    again.close()
    flash = VirtualDevice.open(folder).flash
    assert flash.read_raw(0x4000, 0x800) == block + b"\xff" * 0x400


def test_a_new_connection_takes_the_port_from_one_left_open(served):
    server, _ = served
    stale = Host(server.url)
    stale.sync()
    fresh = Host(server.url)
    fresh.sync()
    fresh.close()
    stale.close()


def test_unknown_command_gets_the_rom_rejection(served):
    server, _ = served
    host = Host(server.url)
    host.sync()
    host.send(command(Op.ERASE_FLASH))  # a stub command: the ROM does not know it
    op, _, status = host.response()
    assert op != Op.ERASE_FLASH and rom_error(status) is RomError.INVALID_MESSAGE
    host.close()
