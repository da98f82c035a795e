"""SLIP framing (RFC 1055) as the ROM serial loader and esptool use it.

Every packet is sent as ``0xC0 <payload> 0xC0``; inside the payload ``0xC0`` becomes
``0xDB 0xDC`` and ``0xDB`` becomes ``0xDB 0xDD`` (esptool ``loader.py``,
``ESPLoader.write`` and ``slip_reader``). The decoder is incremental: bytes arrive in
whatever chunks the transport delivers, and it yields whole frames, or a
:class:`SlipFault` for a frame that cannot be a packet (a bad escape, or more bytes than
the receiver's buffer holds).
"""

from __future__ import annotations

from dataclasses import dataclass

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD

_END = bytes([END])
_ESC = bytes([ESC])


def encode(payload: bytes) -> bytes:
    """One SLIP frame: ``0xC0``, the escaped payload, ``0xC0``."""
    return _END + payload.replace(_ESC, b"\xdb\xdd").replace(_END, b"\xdb\xdc") + _END


@dataclass(frozen=True)
class SlipFault:
    """A frame the decoder had to drop, and why."""

    reason: str


def _unescape(raw: bytes) -> bytes | SlipFault:
    if ESC not in raw:
        return raw
    parts = raw.split(_ESC)
    out = bytearray(parts[0])
    for part in parts[1:]:
        if not part:
            return SlipFault("SLIP escape 0xDB at the end of a frame")
        code = part[0]
        if code == ESC_END:
            out.append(END)
        elif code == ESC_ESC:
            out.append(ESC)
        else:
            return SlipFault(f"invalid SLIP escape 0xDB 0x{code:02X}")
        out += part[1:]
    return bytes(out)


class SlipDecoder:
    """Turns a byte stream into frames; ``max_frame`` bounds one escaped frame.

    Bytes before the first ``0xC0`` are line noise and are dropped (the ROM ignores them
    too); empty frames (``0xC0 0xC0``, two packets back to back) are skipped.
    """

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._synced = False
        self._oversized = False

    def feed(self, data: bytes) -> list[bytes | SlipFault]:
        """Add received bytes; return the frames (and faults) they complete."""
        out: list[bytes | SlipFault] = []
        start = 0
        while start < len(data):
            end = data.find(_END, start)
            if end < 0:
                self._take(data[start:])
                break
            self._take(data[start:end])
            self._finish(out)
            start = end + 1
        return out

    def _take(self, chunk: bytes) -> None:
        if not self._synced or self._oversized or not chunk:
            return
        if len(self._buf) + len(chunk) > self.max_frame:
            self._oversized = True
            self._buf.clear()
            return
        self._buf += chunk

    def _finish(self, out: list[bytes | SlipFault]) -> None:
        if not self._synced:
            self._synced = True
            return
        if self._oversized:
            out.append(SlipFault(f"frame longer than the {self.max_frame}-byte receive buffer"))
        elif self._buf:
            out.append(_unescape(bytes(self._buf)))
        self._buf.clear()
        self._oversized = False
