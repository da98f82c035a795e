"""Property tests: any input gives a value or a FormatError; values round-trip."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espsec.chips import get_chip
from espsec.errors import FormatError
from espsec.image import (
    AppDesc,
    BootloaderDesc,
    EspImage,
    ImageHeader,
    Segment,
    build_app_image,
    build_bootloader_image,
    find_descriptor,
    image_info,
    parse_image,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_S3 = get_chip("esp32s3")
VALID = [
    build_app_image(_S3, code_size=64),
    build_app_image(get_chip("esp32p4"), code_size=64, hash_appended=False),
    build_bootloader_image(_S3),
]


def _inspect(data: bytes) -> None:
    """Everything image info does; only FormatError may escape."""
    try:
        image = parse_image(data)
    except FormatError:
        return
    assert image.to_bytes() == data
    try:
        find_descriptor(image)
        image_info(data).to_dict()
    except FormatError:
        pass


@FAST
@given(st.binary(max_size=512))
def test_random_bytes_give_image_or_format_error(data: bytes) -> None:
    _inspect(data)


@FAST
@given(st.binary(min_size=23, max_size=400))
def test_random_bytes_behind_a_valid_magic(data: bytes) -> None:
    _inspect(b"\xe9" + data)


@FAST
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutated_images_give_image_or_format_error(
    base: bytes, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(base)
    for pos, value in flips:
        data[pos % 0x200 if pos & 1 else pos % len(data)] = value  # favour headers
    _inspect(bytes(data))


@FAST
@given(st.sampled_from(VALID), st.integers(0, 1 << 20), st.binary(max_size=64))
def test_truncated_or_extended_images(base: bytes, cut: int, tail: bytes) -> None:
    _inspect(base[: cut % (len(base) + 1)] + tail)


u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)

headers = st.builds(
    ImageHeader,
    segment_count=u8,
    spi_mode=u8,
    spi_speed=st.integers(0, 15),
    spi_size=st.integers(0, 15),
    entry_addr=u32,
    wp_pin=u8,
    spi_pin_drv=st.binary(min_size=3, max_size=3),
    chip_id=u16,
    min_chip_rev=u8,
    min_chip_rev_full=u16,
    max_chip_rev_full=u16,
    reserved=st.binary(min_size=4, max_size=4),
    hash_appended=st.booleans(),
)


def _cstr(size: int) -> st.SearchStrategy[str]:
    return st.text(
        st.characters(exclude_characters="\0", exclude_categories=["Cs"]), max_size=size // 4
    )


@FAST
@given(headers)
def test_header_round_trip(header: ImageHeader) -> None:
    assert ImageHeader.parse(header.to_bytes()) == header


@FAST
@given(
    st.builds(
        AppDesc,
        secure_version=u32,
        version=_cstr(32),
        project_name=_cstr(32),
        time=_cstr(16),
        date=_cstr(16),
        idf_ver=_cstr(32),
        app_elf_sha256=st.binary(min_size=32, max_size=32),
        min_efuse_blk_rev_full=u16,
        max_efuse_blk_rev_full=u16,
        mmu_page_size=u8,
        spi_flash_mode=u8,
        reserv1=st.binary(min_size=8, max_size=8),
        reserv3=st.binary(min_size=2, max_size=2),
        reserv2=st.binary(min_size=72, max_size=72),
    )
)
def test_app_desc_round_trip(desc: AppDesc) -> None:
    assert AppDesc.parse(desc.to_bytes()) == desc


@FAST
@given(
    st.builds(
        BootloaderDesc,
        version=u32,
        idf_ver=_cstr(32),
        date_time=_cstr(24),
        secure_version=u8,
        reserved=st.binary(min_size=2, max_size=2),
        reserved2=st.binary(min_size=16, max_size=16),
    )
)
def test_bootloader_desc_round_trip(desc: BootloaderDesc) -> None:
    assert BootloaderDesc.parse(desc.to_bytes()) == desc


segments = st.builds(
    Segment,
    load_addr=u32,
    data=st.integers(0, 64).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
)


@FAST
@given(headers, st.lists(segments, max_size=16), st.binary(max_size=64))
def test_image_round_trip(header: ImageHeader, segs: list[Segment], trailer: bytes) -> None:
    image = EspImage.create(header, segs, trailer=trailer)
    parsed = parse_image(image.to_bytes())
    assert parsed == image
    assert parsed.checksum_valid
    assert parsed.digest_valid in (True, None)
