"""The NVS format: entries, page headers, entry-state tables; strict parsers."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espsec.errors import EspsecError, FormatError
from espsec.nvs import (
    EntryState,
    Item,
    ItemType,
    NvsKeys,
    PageHeader,
    PageImage,
    PageState,
    generate_partition,
    parse_csv,
    read_partition,
)
from espsec.nvs.item import make_item
from espsec.nvs.layout import (
    ENTRY_COUNT,
    crc_a,
    decode_entry_states,
    encode_entry_states,
    encode_key,
    pack_primitive,
    written_entry_table,
)


def test_page_header_of_first_v2_page_matches_generator_bytes():
    # The first 32 bytes esp-idf-nvs-partition-gen 0.3.0 writes for page 0 (version 2).
    expected = bytes.fromhex("feffffff00000000fe" + "ff" * 19 + "842dbab9")
    assert PageHeader.make(PageState.ACTIVE, 0, 0xFE).to_bytes() == expected
    parsed = PageHeader.parse(expected)
    assert parsed.crc_ok and parsed.seq == 0 and parsed.version == 0xFE


def test_item_crc_covers_everything_but_itself():
    item = make_item(1, ItemType.U8, encode_key("k8"), pack_primitive(ItemType.U8, 5))
    raw = item.to_bytes()
    assert raw.hex() == "010101ff8f4344106b38000000000000000000000000000005ffffffffffffff"
    assert struct.unpack_from("<I", raw, 4)[0] == crc_a(raw[:4] + raw[8:])
    assert Item.parse(raw) == item
    flipped = raw[:30] + bytes([raw[30] ^ 1]) + raw[31:]
    assert not Item.parse(flipped).crc_ok


def test_entry_state_table_is_two_bits_per_entry_lsb_first():
    states = [EntryState.EMPTY] * 126
    states[0] = EntryState.WRITTEN
    states[5] = EntryState.ERASED
    table = encode_entry_states(states)
    assert table[0] == 0b11111110
    assert table[1] == 0b11110011
    assert table[31] == 0xFF
    assert decode_entry_states(table) == states


def test_written_entry_table_is_the_table_of_that_many_written_entries():
    for count in range(ENTRY_COUNT + 1):
        states = [EntryState.WRITTEN] * count + [EntryState.EMPTY] * (ENTRY_COUNT - count)
        assert written_entry_table(count) == encode_entry_states(states)


def test_keys_longer_than_15_bytes_are_refused():
    encode_key("x" * 15)
    with pytest.raises(ValueError, match="at most 15"):
        encode_key("x" * 16)
    with pytest.raises(ValueError, match="empty"):
        encode_key("")


def test_page_image_round_trips_a_generated_page():
    rows = parse_csv("key,type,encoding,value\nns,namespace,,\na,data,u8,1\nb,data,string,hi\n")
    image = generate_partition(rows, 0x3000)
    page = PageImage.parse(image[:4096])
    assert page.to_bytes() == image[:4096]
    assert page.header.state == PageState.ACTIVE
    assert [item.key for _, item in page.items()] == ["ns", "a", "b"]


def test_page_image_rejects_a_bad_header_crc_with_its_offset():
    rows = parse_csv("key,type,encoding,value\nns,namespace,,\n")
    page = bytearray(generate_partition(rows, 0x3000)[:4096])
    page[4] ^= 1
    with pytest.raises(FormatError, match="offset 0x201c"):
        PageImage.parse(bytes(page), offset=0x2000)


_SAMPLE = generate_partition(
    parse_csv(
        "key,type,encoding,value\nns,namespace,,\na,data,u32,7\ns,data,string,hello\n"
        f"b,data,hex2bin,{'ab' * 5000}\nc,data,i8,-1\n"
    ),
    0x5000,
)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=96), st.sampled_from([0x1000, 4096, 4095, 0]))
def test_page_parser_gives_a_page_or_a_format_error(prefix, size):
    page = (prefix + _SAMPLE[len(prefix) : 4096])[:size] if size else prefix
    with contextlib.suppress(FormatError):
        PageImage.parse(page)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=80))
def test_nvs_keys_parser_gives_keys_or_a_format_error(data):
    with contextlib.suppress(FormatError):
        NvsKeys.parse(data)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_SAMPLE) - 1), st.integers(0, 255)), max_size=8))
def test_reader_survives_corrupted_partitions(changes):
    data = bytearray(_SAMPLE)
    for offset, value in changes:
        data[offset] = value
    try:
        contents = read_partition(bytes(data))
    except EspsecError:
        return
    for entry in contents.entries:
        assert entry.namespace and entry.key
