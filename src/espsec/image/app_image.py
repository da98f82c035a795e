"""The image container: header, segments, checksum, appended SHA-256, and what follows.

Layout (ESP-IDF ``components/bootloader_support/src/esp_image_format.c``,
``verify_segment_header`` and ``process_checksum``; esptool ``bin_image.py``)::

    header (24) | segment headers + data ... | zero padding | checksum (1) | SHA-256 (32)?
    | trailer: 0xFF padding to 4 KiB + Secure Boot v2 signature sector, if signed

The checksum byte is the last byte of a 16-byte-aligned block; the SHA-256 covers every
byte from offset 0 through the checksum byte.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Self

from espsec.errors import FormatError
from espsec.image._fields import check_size, check_uint
from espsec.image.header import HEADER_SIZE, IMAGE_MAGIC, MAX_SEGMENTS, ImageHeader

SEGMENT_HEADER_SIZE = 8
MAX_SEGMENT_LEN = 16 * 1024 * 1024
"""Segment data must be shorter than this (``verify_segment_header``)."""
CHECKSUM_SEED = 0xEF
"""``ESP_ROM_CHECKSUM_INITIAL``."""
DIGEST_SIZE = 32
SECTOR_SIZE = 4096
"""Flash sector: the signed content of a Secure Boot v2 image is padded to this."""
SIGNATURE_BLOCK_MAGIC = 0xE7
SIGNATURE_BLOCK_VERSIONS = (0x02, 0x03)
"""RSA-PSS and ECDSA Secure Boot v2 signature blocks."""

_SEGMENT_HEADER = struct.Struct("<II")


@dataclass(frozen=True)
class Segment:
    """One segment: ``load_addr`` and its data (length a multiple of 4, below 16 MiB)."""

    load_addr: int
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_uint(self.load_addr, 32, field="load_addr")
        if len(self.data) % 4 or len(self.data) >= MAX_SEGMENT_LEN:
            raise ValueError(
                f"segment data must be a multiple of 4 bytes below 16 MiB, got {len(self.data)}"
            )

    def __repr__(self) -> str:
        return f"Segment(load_addr=0x{self.load_addr:08x}, length={len(self.data)})"

    @classmethod
    def parse(cls, data: bytes, *, offset: int = 0, index: int = 0) -> Self:
        """Parse one segment (8-byte header + data) that fills ``data`` exactly."""
        if len(data) < SEGMENT_HEADER_SIZE:
            raise FormatError(
                "truncated segment header",
                offset=offset + len(data),
                field=f"segment {index} header",
                expected=f"{SEGMENT_HEADER_SIZE} bytes",
                found=f"{len(data)} bytes",
            )
        load_addr, data_len = _SEGMENT_HEADER.unpack_from(data)
        check_segment_length(data_len, offset=offset + 4, index=index)
        body = data[SEGMENT_HEADER_SIZE:]
        if len(body) != data_len:
            raise FormatError(
                "truncated segment data" if len(body) < data_len else "segment length mismatch",
                offset=offset + SEGMENT_HEADER_SIZE + min(len(body), data_len),
                field=f"segment {index} data",
                expected=f"{data_len} bytes",
                found=f"{len(body)} bytes",
            )
        return cls(load_addr, body)

    def to_bytes(self) -> bytes:
        """Segment header followed by the data."""
        return _SEGMENT_HEADER.pack(self.load_addr, len(self.data)) + self.data


def check_segment_length(data_len: int, *, offset: int = 0, index: int = 0) -> None:
    """Raise :class:`FormatError` unless ``data_len`` is a multiple of 4 below 16 MiB."""
    if data_len % 4:
        raise FormatError(
            "segment length is not word-aligned",
            offset=offset,
            field=f"segment {index} data_len",
            expected="a multiple of 4",
            found=data_len,
        )
    if data_len >= MAX_SEGMENT_LEN:
        raise FormatError(
            "segment too long",
            offset=offset,
            field=f"segment {index} data_len",
            expected="below 16 MiB",
            found=data_len,
        )


def check_segment_count(count: int, *, offset: int = 1) -> None:
    """Raise :class:`FormatError` if an image claims more than 16 segments."""
    if count > MAX_SEGMENTS:
        raise FormatError(
            "too many segments",
            offset=offset,
            field="segment_count",
            expected=f"at most {MAX_SEGMENTS}",
            found=count,
        )


def calculate_checksum(segments: Iterable[Segment]) -> int:
    """0xEF XOR every byte of every segment's data (headers are not included)."""
    acc = CHECKSUM_SEED
    for seg in segments:
        acc ^= _xor_bytes(seg.data)
    return acc


def _xor_bytes(data: bytes) -> int:
    """The XOR of every byte of ``data``.

    With NumPy already loaded, one vectorised reduction; otherwise ``data`` as one Python
    integer folded in halves (about 1 ms a MiB), so checking an image never pays NumPy's
    import time (a boot of an unencrypted device needs nothing else from NumPy).
    """
    numpy = sys.modules.get("numpy")
    if numpy is not None and len(data) > _FOLD_PIECE:
        return int(numpy.bitwise_xor.reduce(numpy.frombuffer(data, dtype=numpy.uint8)))
    # XOR the pieces as integers (byte i of each lands on byte i), then fold the result
    view = memoryview(data)
    value = 0
    for start in range(0, len(view), _FOLD_PIECE):
        value ^= int.from_bytes(view[start : start + _FOLD_PIECE], "little")
    bits = 8 << max(min(len(view), _FOLD_PIECE) - 1, 0).bit_length()  # a power of two
    while bits > 8:
        bits //= 2
        value = (value >> bits) ^ (value & ((1 << bits) - 1))
    return value


_FOLD_PIECE = 1 << 16


def checksum_offset(segments_end: int) -> int:
    """File offset of the checksum byte when the last segment ends at ``segments_end``."""
    return segments_end | 0x0F


@dataclass(frozen=True)
class ImageLayout:
    """Where the parts of an image are, from :func:`image_layout` (no data copied)."""

    header: ImageHeader
    segments: tuple[tuple[int, int, int], ...]
    """``(load_addr, data offset, data length)`` of each segment."""
    segments_end: int
    checksum_offset: int
    end: int
    """Offset just past the image proper (the checksum, and the SHA-256 if appended)."""


def image_layout(data: bytes | bytearray | memoryview) -> ImageLayout:
    """Check the structure of the image at the start of ``data`` and say where its parts
    are, without copying them: the rules :meth:`EspImage.parse` enforces (magic, at most
    16 segments, segment lengths, nothing truncated), for callers that need only the
    header or the offsets (signing a multi-megabyte image reads just its chip id)."""
    size = len(data)
    if size and data[0] != IMAGE_MAGIC:
        raise FormatError(
            "not an ESP image", offset=0, field="magic", expected=IMAGE_MAGIC, found=data[0]
        )
    if size < HEADER_SIZE:
        raise FormatError(
            "truncated image header",
            offset=size,
            field="image header",
            expected=f"{HEADER_SIZE} bytes",
            found=f"{size} bytes",
        )
    header = ImageHeader.parse(bytes(data[:HEADER_SIZE]))
    check_segment_count(header.segment_count)
    segments = []
    pos = HEADER_SIZE
    for index in range(header.segment_count):
        if size < pos + SEGMENT_HEADER_SIZE:
            raise FormatError(
                "truncated segment header",
                offset=size,
                field=f"segment {index} header",
                expected=f"{SEGMENT_HEADER_SIZE} bytes",
                found=f"{size - pos} bytes",
            )
        load_addr, data_len = _SEGMENT_HEADER.unpack_from(data, pos)
        check_segment_length(data_len, offset=pos + 4, index=index)
        start = pos + SEGMENT_HEADER_SIZE
        if size < start + data_len:
            raise FormatError(
                "truncated segment data",
                offset=size,
                field=f"segment {index} data",
                expected=f"{data_len} bytes",
                found=f"{size - start} bytes",
            )
        segments.append((load_addr, start, data_len))
        pos = start + data_len
    ck = checksum_offset(pos)
    if size <= ck:
        raise FormatError(
            "truncated before the checksum byte",
            offset=size,
            field="checksum",
            expected=f"image of at least {ck + 1} bytes",
            found=f"{size} bytes",
        )
    end = ck + 1
    if header.hash_appended:
        if size < end + DIGEST_SIZE:
            raise FormatError(
                "truncated appended SHA-256",
                offset=size,
                field="hash",
                expected=f"{DIGEST_SIZE} bytes",
                found=f"{size - end} bytes",
            )
        end += DIGEST_SIZE
    return ImageLayout(header, tuple(segments), pos, ck, end)


@dataclass(frozen=True)
class EspImage:
    """An app or bootloader image, parsed.

    ``padding`` holds the bytes between the last segment and the checksum byte (zeros in
    images Espressif's tools write); ``digest`` the stored SHA-256 (``None`` if
    ``header.hash_appended`` is false); ``trailer`` everything after the image proper,
    e.g. 0xFF padding and a Secure Boot v2 signature sector.

    Build new images with :meth:`create`, which fills in the count, checksum and digest.
    """

    header: ImageHeader
    segments: tuple[Segment, ...]
    padding: bytes = field(repr=False)
    checksum: int
    digest: bytes | None = field(repr=False)
    trailer: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if self.header.segment_count != len(self.segments):
            raise ValueError(
                f"header.segment_count is {self.header.segment_count} "
                f"but there are {len(self.segments)} segments"
            )
        if len(self.segments) > MAX_SEGMENTS:
            raise ValueError(f"at most {MAX_SEGMENTS} segments, got {len(self.segments)}")
        check_size(self.padding, self.checksum_offset - self.segments_end, field="padding")
        check_uint(self.checksum, 8, field="checksum")
        if self.header.hash_appended != (self.digest is not None):
            raise ValueError("digest must be given exactly when header.hash_appended is set")
        if self.digest is not None:
            check_size(self.digest, DIGEST_SIZE, field="digest")

    @classmethod
    def create(
        cls, header: ImageHeader, segments: Sequence[Segment], *, trailer: bytes = b""
    ) -> Self:
        """A well-formed image: segment count, zero padding, checksum and digest computed."""
        segments = tuple(segments)
        header = replace(header, segment_count=len(segments))
        end = HEADER_SIZE + sum(SEGMENT_HEADER_SIZE + len(s.data) for s in segments)
        padding = bytes(checksum_offset(end) - end)
        checksum = calculate_checksum(segments)
        digest = None
        if header.hash_appended:
            sha = hashlib.sha256(header.to_bytes())
            for seg in segments:
                sha.update(_SEGMENT_HEADER.pack(seg.load_addr, len(seg.data)))
                sha.update(seg.data)
            sha.update(padding + bytes([checksum]))
            digest = sha.digest()
        return cls(header, segments, padding, checksum, digest, trailer)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Self:
        """Parse an image from the start of ``data``; whatever follows it is the trailer.

        Structural rules are enforced here (magic, at most 16 segments, segment lengths,
        nothing truncated, ``hash_appended`` 0 or 1). Checksum, digest and chip checks are
        separate (:func:`verify_image`), so a damaged image can still be inspected.
        Each segment's data is copied once, out of a view of ``data``.
        """
        view = memoryview(data).cast("B")
        layout = image_layout(view)
        segments = tuple(
            Segment(load_addr, bytes(view[start : start + length]))
            for load_addr, start, length in layout.segments
        )
        ck, end = layout.checksum_offset, layout.end
        digest = None
        if layout.header.hash_appended:
            digest = bytes(view[ck + 1 : end])
        return cls(
            layout.header,
            segments,
            bytes(view[layout.segments_end : ck]),
            view[ck],
            digest,
            bytes(view[end:]),
        )

    def to_bytes(self) -> bytes:
        """The image proper followed by the trailer."""
        return b"".join([*self._hashed_parts(), self.digest or b"", self.trailer])

    @cached_property
    def hashed_bytes(self) -> bytes:
        """Offset 0 through the checksum byte: what the appended SHA-256 covers."""
        return b"".join(self._hashed_parts())

    def _hashed_parts(self) -> list[bytes]:
        """:attr:`hashed_bytes` in pieces, none of them copied."""
        parts = [self.header.to_bytes()]
        for seg in self.segments:
            parts += [_SEGMENT_HEADER.pack(seg.load_addr, len(seg.data)), seg.data]
        parts += [self.padding, bytes([self.checksum])]
        return parts

    @property
    def segment_offsets(self) -> tuple[int, ...]:
        """File offset of each segment's 8-byte header."""
        offsets = []
        pos = HEADER_SIZE
        for seg in self.segments:
            offsets.append(pos)
            pos += SEGMENT_HEADER_SIZE + len(seg.data)
        return tuple(offsets)

    @property
    def segments_end(self) -> int:
        """File offset just past the last segment."""
        return HEADER_SIZE + sum(SEGMENT_HEADER_SIZE + len(s.data) for s in self.segments)

    @property
    def checksum_offset(self) -> int:
        """File offset of the checksum byte."""
        return checksum_offset(self.segments_end)

    @property
    def image_length(self) -> int:
        """Length of the image proper: through the checksum and the SHA-256 if appended."""
        return self.checksum_offset + 1 + (DIGEST_SIZE if self.header.hash_appended else 0)

    @property
    def signature_sector_offset(self) -> int:
        """Where a Secure Boot v2 signature sector goes: the image end rounded up to 4 KiB."""
        return -(-self.image_length // SECTOR_SIZE) * SECTOR_SIZE

    def calculated_checksum(self) -> int:
        """The checksum the segments' data give (compare with :attr:`checksum`)."""
        return calculate_checksum(self.segments)

    def calculated_digest(self) -> bytes:
        """SHA-256 of :attr:`hashed_bytes` (compare with :attr:`digest`), hashed piece by
        piece rather than joined first."""
        sha = hashlib.sha256()
        for part in self._hashed_parts():
            sha.update(part)
        return sha.digest()

    @property
    def checksum_valid(self) -> bool:
        """Whether the stored checksum byte matches the segments."""
        return self.checksum == self.calculated_checksum()

    @property
    def digest_valid(self) -> bool | None:
        """Whether the appended SHA-256 matches (``None`` if there is none)."""
        if self.digest is None:
            return None
        return hmac.compare_digest(self.digest, self.calculated_digest())

    def signature_sector(self) -> bytes | None:
        """The Secure Boot v2 signature sector after the image, if one is there.

        Found at :attr:`signature_sector_offset` when the bytes there start like a
        signature block (0xE7, version 2 or 3). May be shorter than 4096 bytes if the
        file is truncated. The ``secure_boot`` package checks its contents.
        """
        start = self.signature_sector_offset - self.image_length
        sector = self.trailer[start : start + SECTOR_SIZE]
        if (
            len(sector) >= 2
            and sector[0] == SIGNATURE_BLOCK_MAGIC
            and sector[1] in SIGNATURE_BLOCK_VERSIONS
        ):
            return sector
        return None


def parse_image(data: bytes) -> EspImage:
    """Parse an app or bootloader image (see :meth:`EspImage.parse`)."""
    return EspImage.parse(data)
