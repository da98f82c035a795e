"""Partition table: binary and CSV forms, checks, and the flash-encryption rule."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espsec.errors import FormatError
from espsec.image.partition_table import (
    APP,
    DATA,
    MAX_TABLE_LENGTH,
    Partition,
    PartitionTable,
    load_partition_table,
)

TWO_OTA = """# Name, Type, SubType, Offset, Size, Flags
nvs,      data, nvs,      ,  0x4000,
otadata,  data, ota,      ,  0x2000,
phy_init, data, phy,      ,  0x1000,
nvs_key,  data, nvs_keys, ,  0x1000,
factory,  app,  factory,  ,  1M,
ota_0,    app,  ota_0,    ,  1M,
storage,  data, fat,      ,  64K, encrypted
"""


def test_csv_places_partitions_after_the_table_with_type_alignment() -> None:
    table = PartitionTable.from_csv(TWO_OTA)
    layout = {p.name: (p.offset, p.size) for p in table}
    assert layout["nvs"] == (0x9000, 0x4000)
    assert layout["otadata"] == (0xD000, 0x2000)
    assert layout["phy_init"] == (0xF000, 0x1000)
    assert layout["nvs_key"] == (0x10000, 0x1000)
    assert layout["factory"] == (0x20000, 0x100000)  # apps align to 64 KiB
    assert layout["ota_0"] == (0x120000, 0x100000)
    assert layout["storage"] == (0x220000, 0x10000)


def test_binary_layout_entry_md5_and_padding() -> None:
    table = PartitionTable.from_csv(TWO_OTA)
    data = table.to_bytes()
    assert len(data) == MAX_TABLE_LENGTH
    entries = data[: 32 * len(table)]
    assert data[:2] == b"\xaa\x50"
    first = Partition.parse(data[:32])
    assert (first.type, first.subtype, first.offset, first.size) == (DATA, 0x02, 0x9000, 0x4000)
    assert data[12:32] == b"nvs" + bytes(13) + (0).to_bytes(4, "little")
    md5_entry = data[32 * len(table) : 32 * len(table) + 32]
    assert md5_entry == b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(entries).digest()
    assert set(data[32 * len(table) + 32 :]) == {0xFF}


def test_parse_round_trips() -> None:
    table = PartitionTable.from_csv(TWO_OTA)
    assert PartitionTable.parse(table.to_bytes()) == table
    plain = PartitionTable(table.partitions, md5=False)
    assert PartitionTable.parse(plain.to_bytes()) == plain


def test_md5_mismatch_names_the_offset() -> None:
    data = bytearray(PartitionTable.from_csv(TWO_OTA).to_bytes())
    data[9] ^= 1  # inside the first entry's size
    with pytest.raises(FormatError) as info:
        PartitionTable.parse(bytes(data))
    assert info.value.offset == 7 * 32 + 16
    assert "MD5" in str(info.value)


def test_missing_end_marker_is_rejected() -> None:
    body = PartitionTable.from_csv(TWO_OTA).to_bytes()[: 32 * 8]
    with pytest.raises(FormatError, match="end-of-table"):
        PartitionTable.parse(body)


def test_always_encrypted_partitions_follow_esp_idf() -> None:
    table = PartitionTable.from_csv(TWO_OTA)
    encrypted = {p.name for p in table if p.encrypted_on_flash}
    # app, otadata and nvs_keys always; storage by its flag; nvs and phy stay plain
    assert encrypted == {"otadata", "nvs_key", "factory", "ota_0", "storage"}
    assert Partition("b", 0x02, 0, 0, 0x1000).always_encrypted  # bootloader type
    assert Partition("t", 0x03, 0, 0, 0x1000).always_encrypted  # partition_table type
    assert Partition("tee", DATA, 0x90, 0, 0x2000).always_encrypted  # tee_ota


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("nvs, data, nvs, , 0x4000, secret\n", "unknown flag"),
        ("nvs, , nvs, , 0x4000\n", "type can't be empty"),
        ("app0, app, , , 1M\n", "empty subtype"),
        ("nvs, data, nvs, , lots\n", "invalid size"),
        ("nvs, data, nvs, ,\n", "size can't be empty"),
        ("nvs, data, nvs, 0x7000, 0x4000\n", "overlap"),
        ("nvs, data, nvs, , 0x2000\n", "readonly"),
        ("a, app, factory, 0x18000, 1M\n", "aligned"),
        ("a, data, ota, , 0x3000\n", "wrong size"),
        ("a, data, nvs, , 0x4000\na, data, phy, , 0x1000\n", "unique"),
        ("bl, bootloader, primary, , \n", "bootloader offset"),
        ("garbage\n", "type can't be empty"),
        ("nvs, data\n", "size can't be empty"),
    ],
)
def test_csv_errors_are_one_clear_line(csv: str, message: str) -> None:
    with pytest.raises(FormatError, match=message) as info:
        PartitionTable.from_csv(csv)
    assert "\n" not in str(info.value)


def test_flash_size_check() -> None:
    table = PartitionTable.from_csv(TWO_OTA)
    table.verify(flash_size=4 << 20)
    with pytest.raises(FormatError, match="do not fit"):
        table.verify(flash_size=2 << 20)


def test_load_detects_binary_and_csv() -> None:
    table = PartitionTable.from_csv(TWO_OTA)
    assert load_partition_table(table.to_bytes()) == table
    assert load_partition_table(TWO_OTA.encode()) == table
    assert load_partition_table(b"\xef\xbb\xbf" + TWO_OTA.encode()) == table  # UTF-8 BOM
    assert load_partition_table(b"\xff" * 64) == PartitionTable((), md5=False)


def test_to_bytes_rejects_out_of_range_fields() -> None:
    with pytest.raises(FormatError, match="offset"):
        Partition("x", APP, 0, 1 << 32, 0x1000).to_bytes()
    with pytest.raises(FormatError, match="name"):
        Partition("x" * 17, APP, 0, 0x10000, 0x1000).to_bytes()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_give_a_table_or_format_error(data: bytes) -> None:
    try:
        table = PartitionTable.parse(data)
    except FormatError:
        return
    assert PartitionTable.parse(table.to_bytes()) == table


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 32 * 9 - 1), st.integers(0, 255)), max_size=4))
def test_mutated_tables_give_a_table_or_format_error(edits: list[tuple[int, int]]) -> None:
    data = bytearray(PartitionTable.from_csv(TWO_OTA).to_bytes())
    for pos, value in edits:
        data[pos] = value
    try:
        table = PartitionTable.parse(bytes(data))
    except FormatError:
        return
    assert PartitionTable.parse(table.to_bytes()) == table
