"""The image container: segments, checksum, appended SHA-256, trailer."""

from __future__ import annotations

import functools
import hashlib
import operator
import os
import struct
import sys

import pytest

from espsec.chips import CHIPS, Chip
from espsec.errors import FormatError, VerificationError
from espsec.image import (
    EspImage,
    ImageHeader,
    Segment,
    build_app_image,
    calculate_checksum,
    check_checksum,
    check_digest,
    parse_image,
)

HEADER = ImageHeader(segment_count=0, spi_mode=2, spi_speed=0xF, spi_size=1, entry_addr=0x40000000)


def _naive_checksum(segments: list[Segment]) -> int:
    return functools.reduce(operator.xor, (b for s in segments for b in s.data), 0xEF)


@pytest.mark.parametrize("name", sorted(CHIPS))
def test_parses_built_app_for_every_chip(name: str) -> None:
    chip = CHIPS[name]
    data = build_app_image(chip)
    image = parse_image(data)
    assert image.header.chip_id == chip.image_chip_id
    assert image.image_length == len(data)
    assert image.trailer == b""
    assert image.checksum_valid
    assert image.digest_valid is True


def test_round_trip_is_byte_exact(demo_app: bytes) -> None:
    assert parse_image(demo_app).to_bytes() == demo_app


def test_checksum_is_last_byte_of_16_byte_block(demo_app: bytes) -> None:
    image = parse_image(demo_app)
    assert image.checksum_offset % 16 == 15
    assert demo_app[image.checksum_offset] == image.checksum
    assert image.padding == bytes(len(image.padding))
    assert demo_app[-32:] == hashlib.sha256(demo_app[: image.checksum_offset + 1]).digest()


@pytest.mark.parametrize("length", [0, 4, 8, 1000, 4096, 65540])
def test_checksum_matches_bytewise_xor(length: int) -> None:
    segments = [Segment(0x3FC88000, os.urandom(length)), Segment(0x40374000, os.urandom(12))]
    assert calculate_checksum(segments) == _naive_checksum(segments)


def test_checksum_mismatch_reported(demo_app: bytes) -> None:
    image = parse_image(demo_app)
    corrupt = bytearray(demo_app)
    corrupt[image.segment_offsets[1] + 8] ^= 0x01  # first byte of segment 1 data
    bad = parse_image(bytes(corrupt))
    assert not bad.checksum_valid
    assert bad.calculated_checksum() == image.checksum ^ 0x01
    with pytest.raises(VerificationError, match="checksum") as exc:
        check_checksum(bad)
    assert f"offset 0x{image.checksum_offset:x}" in str(exc.value)


def test_digest_mismatch_reported(demo_app: bytes) -> None:
    corrupt = bytearray(demo_app)
    corrupt[-1] ^= 0x80
    bad = parse_image(bytes(corrupt))
    assert bad.checksum_valid
    assert bad.digest_valid is False
    with pytest.raises(VerificationError, match="SHA-256"):
        check_digest(bad)


def test_hash_not_appended_has_no_digest(s3: Chip) -> None:
    data = build_app_image(s3, hash_appended=False)
    image = parse_image(data)
    assert image.digest is None
    assert image.digest_valid is None
    assert image.image_length == image.checksum_offset + 1 == len(data)
    check_digest(image)  # nothing to check


def test_create_fills_count_checksum_and_digest() -> None:
    segments = [Segment(0x3FC88000, b"\x01\x02\x03\x04"), Segment(0x40374000, bytes(8))]
    image = EspImage.create(HEADER, segments)
    assert image.header.segment_count == 2
    assert image.checksum == 0xEF ^ 0x01 ^ 0x02 ^ 0x03 ^ 0x04
    assert image.digest == hashlib.sha256(image.hashed_bytes).digest()
    assert len(image.to_bytes()) % 16 == 0  # 24 + 12 + 16 -> checksum ends at 64, + 32
    assert parse_image(image.to_bytes()) == image


def test_constructor_rejects_inconsistent_segment_count() -> None:
    image = EspImage.create(HEADER, [Segment(0, bytes(4))])
    with pytest.raises(ValueError, match="segment_count"):
        EspImage(image.header, (), image.padding, image.checksum, image.digest)


def test_segment_data_must_be_word_aligned() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        Segment(0x3FC88000, b"\x00\x01\x02")


def _raw_image(segments: list[tuple[int, int, bytes]], count: int | None = None) -> bytes:
    header = bytearray(HEADER.to_bytes())
    header[1] = len(segments) if count is None else count
    header[23] = 0
    body = b"".join(struct.pack("<II", a, n) + d for a, n, d in segments)
    end = 24 + len(body)
    return bytes(header) + body + bytes(15 - end % 16) + b"\xef"


def test_rejects_more_than_16_segments() -> None:
    data = _raw_image([(0, 0, b"")] * 17)
    with pytest.raises(FormatError) as exc:
        parse_image(data)
    assert exc.value.offset == 1
    assert exc.value.field == "segment_count"
    assert exc.value.found == 17


def test_accepts_exactly_16_segments() -> None:
    image = parse_image(_raw_image([(0, 4, bytes(4))] * 16))
    assert len(image.segments) == 16


def test_rejects_segment_length_not_multiple_of_4() -> None:
    data = _raw_image([(0x3FC88000, 4, bytes(4)), (0x40374000, 6, bytes(8))])
    with pytest.raises(FormatError) as exc:
        parse_image(data)
    assert exc.value.field == "segment 1 data_len"
    assert exc.value.offset == 24 + 12 + 4
    assert exc.value.found == 6


def test_rejects_segment_of_16_mib_before_reading_it() -> None:
    data = _raw_image([(0x3C000020, 16 * 1024 * 1024, b"")])
    with pytest.raises(FormatError, match="too long") as exc:
        parse_image(data)
    assert exc.value.field == "segment 0 data_len"


@pytest.mark.parametrize(
    "cut, field",
    [
        (10, "image header"),
        (24 + 4, "segment 0 header"),
        (24 + 8 + 100, "segment 0 data"),
    ],
)
def test_rejects_truncated_image(demo_app: bytes, cut: int, field: str) -> None:
    with pytest.raises(FormatError, match="truncated") as exc:
        parse_image(demo_app[:cut])
    assert exc.value.field == field


def test_rejects_image_cut_before_checksum(demo_app: bytes) -> None:
    image = parse_image(demo_app)
    with pytest.raises(FormatError) as exc:
        parse_image(demo_app[: image.checksum_offset])
    assert exc.value.field == "checksum"


def test_rejects_image_cut_inside_appended_hash(demo_app: bytes) -> None:
    with pytest.raises(FormatError) as exc:
        parse_image(demo_app[:-5])
    assert exc.value.field == "hash"


def test_rejects_empty_input() -> None:
    with pytest.raises(FormatError, match="truncated"):
        parse_image(b"")


def test_rejects_short_input_with_wrong_magic_as_wrong_magic() -> None:
    with pytest.raises(FormatError) as exc:
        parse_image(b"PK\x03\x04")
    assert exc.value.field == "magic"


def test_nonzero_padding_is_kept_and_hashed(demo_app: bytes) -> None:
    image = parse_image(demo_app)
    assert image.padding, "needs some padding before the checksum"
    corrupt = bytearray(demo_app)
    corrupt[image.segments_end] = 0x55
    bad = parse_image(bytes(corrupt))
    assert bad.padding[0] == 0x55
    assert bad.checksum_valid  # padding is not in the checksum ...
    assert bad.digest_valid is False  # ... but it is in the SHA-256
    assert bad.to_bytes() == bytes(corrupt)


def _signed_like(app: bytes, version: int = 0x02) -> bytes:
    padded = app + b"\xff" * (-len(app) % 4096)
    sector = bytes([0xE7, version]) + os.urandom(1214) + b"\xff" * (4096 - 1216)
    return padded + sector


def test_image_parses_with_signature_sector_after_it(demo_app: bytes) -> None:
    signed = _signed_like(demo_app)
    image = parse_image(signed)
    assert image.image_length == len(demo_app)
    assert image.trailer == signed[len(demo_app) :]
    assert image.to_bytes() == signed
    assert image.signature_sector_offset == len(signed) - 4096
    assert image.signature_sector() == signed[-4096:]
    assert image.checksum_valid and image.digest_valid


@pytest.mark.parametrize("version", [0x02, 0x03])
def test_signature_sector_found_for_rsa_and_ecdsa_blocks(demo_app: bytes, version: int) -> None:
    assert parse_image(_signed_like(demo_app, version)).signature_sector() is not None


def test_ff_padding_alone_is_no_signature_sector(demo_app: bytes) -> None:
    padded = demo_app + b"\xff" * (-len(demo_app) % 4096 + 4096)
    image = parse_image(padded)
    assert image.signature_sector() is None
    assert len(image.trailer) == len(padded) - len(demo_app)


def test_signature_sector_must_start_on_the_4k_boundary(demo_app: bytes) -> None:
    # A block magic right after the image, not on the boundary, is not a sector.
    image = parse_image(demo_app + b"\xe7\x02" + bytes(5000))
    assert image.signature_sector_offset != image.image_length
    assert image.signature_sector() is None


def test_segment_repr_shows_length_not_data() -> None:
    assert repr(Segment(0x3FC88000, b"\xaa" * 8)) == "Segment(load_addr=0x3fc88000, length=8)"


@pytest.mark.parametrize("cut", [0, 10, 24 + 4, 24 + 8 + 100, -5])
def test_layout_refuses_what_parse_refuses(demo_app: bytes, cut: int) -> None:
    from espsec.image.app_image import image_layout

    data = demo_app[:cut]
    with pytest.raises(FormatError) as parsed:
        parse_image(data)
    with pytest.raises(FormatError) as laid_out:
        image_layout(data)
    assert str(laid_out.value) == str(parsed.value)


def test_layout_points_at_the_segments_parse_copies(demo_app: bytes) -> None:
    from espsec.image.app_image import image_layout

    image = parse_image(memoryview(demo_app))
    layout = image_layout(demo_app)
    assert layout.header == image.header
    assert [demo_app[s : s + n] for _, s, n in layout.segments] == [g.data for g in image.segments]
    assert [a for a, _, _ in layout.segments] == [g.load_addr for g in image.segments]
    assert layout.end == image.image_length
    assert image.to_bytes() == demo_app
    assert image.calculated_digest() == hashlib.sha256(image.hashed_bytes).digest()


@pytest.mark.parametrize("numpy_loaded", [True, False])
def test_checksum_is_the_seed_xor_every_data_byte(numpy_loaded: bool, monkeypatch) -> None:
    if not numpy_loaded:  # the Python-integer fold a process without NumPy uses
        monkeypatch.setitem(sys.modules, "numpy", None)
    for size in (0, 4, 8, 4096, 65536, 65540, 300_000):
        data = hashlib.shake_256(str(size).encode()).digest(size)
        segments = [Segment(0x3C000020, data), Segment(0x40370000, b"\x01\x02\x03\x04")]
        expected = functools.reduce(operator.xor, data + b"\x01\x02\x03\x04", 0xEF)
        assert calculate_checksum(segments) == expected, size
