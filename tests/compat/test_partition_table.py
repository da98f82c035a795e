"""Oracle: our partition tables are byte-identical to ESP-IDF's ``gen_esp32part.py``.

ESP-IDF itself is not on PyPI, but Espressif's ``esp-test-utils`` package (a test
dependency, pinned) ships an unmodified copy of ``components/partition_table/
gen_esp32part.py`` as ``esptest/utility/gen_esp32part.py`` (header: "from esp-idf
fc72712b…", Apache-2.0). It is loaded here straight from that file, without importing the
rest of the package, and driven in-process through its module API.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import struct
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espsec.errors import FormatError
from espsec.image.partition_table import PartitionTable


def _load_gen_esp32part() -> ModuleType:
    dist = importlib.metadata.distribution("esp-test-utils")  # a test dependency
    path = dist.locate_file("esptest/utility/gen_esp32part.py")
    spec = importlib.util.spec_from_file_location("gen_esp32part_upstream", str(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.quiet = True
    return module


gen = _load_gen_esp32part()


def upstream_binary(csv: str, *, offset: int = 0x8000, bootloader: int | None = None) -> bytes:
    """What ``gen_esp32part.py --offset OFFSET [--primary-bootloader-offset B] CSV`` writes."""
    gen.offset_part_table = offset
    gen.primary_bootloader_offset = bootloader
    gen.recovery_bootloader_offset = None
    gen.md5sum = True
    gen.secure = None
    table = gen.PartitionTable.from_csv(csv)
    table.verify()
    return bytes(table.to_binary())


def upstream_csv(binary: bytes) -> str:
    gen.md5sum = True
    return str(gen.PartitionTable.from_binary(binary).to_csv())


def ours(csv: str, *, offset: int = 0x8000, bootloader: int | None = None) -> bytes:
    table = PartitionTable.from_csv(csv, table_offset=offset, bootloader_offset=bootloader)
    return table.to_bytes()


# ESP-IDF's stock tables (components/partition_table/*.csv) and a few of our own
STOCK = {
    "singleapp": """# Name,   Type, SubType, Offset,  Size, Flags
nvs,      data, nvs,     ,        0x6000,
phy_init, data, phy,     ,        0x1000,
factory,  app,  factory, ,        1M,
""",
    "two_ota": """# Name,   Type, SubType, Offset,  Size, Flags
nvs,      data, nvs,     ,        0x4000,
otadata,  data, ota,     ,        0x2000,
phy_init, data, phy,     ,        0x1000,
factory,  app,  factory, ,        1M,
ota_0,    app,  ota_0,   ,        1M,
ota_1,    app,  ota_1,   ,        1M,
""",
    "singleapp_encrypted_nvs": """nvs,      data, nvs,      ,        0x6000,
nvs_key,  data, nvs_keys, ,        0x1000, encrypted
phy_init, data, phy,      ,        0x1000,
factory,  app,  factory,  ,        1M,
""",
    "flags_numbers_and_custom": """
# comment lines and blank lines are skipped

nvs,        data, nvs,      0x9000,  24K,
otadata,    data, ota,      0xf000,  8K
ota_0,      app,  ota_0,    0x20000, 0x1e0000
ota_1,      APP,  OTA_1,    ,        0x1e0000, encrypted
storage,    data, fat,      ,        0x80000, encrypted:readonly
custom,     0x40, 0x7,      ,        4K, readonly
spiffs,     data, spiffs,   ,        -0x500000,
coredump,   data, coredump, ,        64K
""",
}


@pytest.mark.parametrize("name", sorted(STOCK))
def test_csv_to_binary_matches_gen_esp32part(name: str) -> None:
    assert ours(STOCK[name]) == upstream_binary(STOCK[name])


@pytest.mark.parametrize("name", sorted(STOCK))
def test_binary_to_csv_matches_gen_esp32part(name: str) -> None:
    binary = upstream_binary(STOCK[name])
    table = PartitionTable.parse(binary)
    assert table.to_csv() == upstream_csv(binary)
    # and the CSV we print builds the same binary again
    assert ours(table.to_csv()) == binary


def test_bootloader_and_table_entries_match_gen_esp32part() -> None:
    csv = """primary_bootloader, bootloader, primary, N/A, N/A,
PrimaryPrtTable, partition_table, primary, N/A, N/A,
nvs, data, nvs, , 0x6000,
factory, app, factory, , 1M,
"""
    for bootloader, offset in ((0x0, 0x8000), (0x2000, 0x8000), (0x0, 0xA000)):
        expected = upstream_binary(csv, offset=offset, bootloader=bootloader)
        assert ours(csv, offset=offset, bootloader=bootloader) == expected


def test_table_offset_moves_auto_placed_partitions_as_upstream() -> None:
    csv = STOCK["two_ota"]
    assert ours(csv, offset=0xA000) == upstream_binary(csv, offset=0xA000)


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=16)


def _size_text(draw: st.DrawFn, size: int) -> str:
    style = draw(st.sampled_from(["hex", "dec", "k", "m"]))
    if style == "k" and size % 1024 == 0:
        return f"{size // 1024}K"
    if style == "m" and size % (1 << 20) == 0:
        return f"{size >> 20}M"
    return str(size) if style == "dec" else hex(size)


@st.composite
def csv_tables(draw: st.DrawFn) -> str:
    """Mostly valid tables (auto offsets, unique names), with some invalid ones mixed in."""
    rows = []
    for index in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["app", "app", "data", "data", "custom"]))
        if kind == "app":
            ptype = draw(st.sampled_from(["app", "app", "0"]))
            subtype = draw(st.sampled_from(["factory", "ota_0", "ota_3", "test", "0x11", ""]))
            size = draw(st.sampled_from([0x10000, 0x100000, 0x180000, 0x1000, 0x1800]))
        elif kind == "data":
            ptype = draw(st.sampled_from(["data", "data", "1"]))
            subtype, size = draw(
                st.sampled_from(
                    [
                        ("nvs", 0x6000),
                        ("nvs", 0x2000),
                        ("ota", 0x2000),
                        ("phy", 0x1000),
                        ("nvs_keys", 0x1000),
                        ("fat", 0x10000),
                        ("spiffs", 0x800),
                        ("0x99", 0x3000),
                        ("", 0x1000),
                    ]
                )
            )
        else:
            ptype = draw(st.sampled_from(["0x40", "0xfe"]))
            subtype = draw(st.sampled_from(["0x0", "7", ""]))
            size = draw(st.sampled_from([0x1000, 0x4000]))
        explicit = draw(st.integers(0, 9)) == 0
        offset = hex(draw(st.integers(0x9, 0x400)) * 0x1000) if explicit else ""
        flags = draw(st.sampled_from(["", "", "encrypted", "readonly", "encrypted:readonly"]))
        name = draw(_names)[:12] + str(index)
        rows.append(f"{name}, {ptype}, {subtype}, {offset}, {_size_text(draw, size)}, {flags}")
    return "\n".join(rows) + "\n"


def _outcome(fn: object, *args: object) -> bytes | None:
    """The binary, or None when the tool rejects the table."""
    try:
        return fn(*args)  # type: ignore[operator,no-any-return]
    except (FormatError, gen.InputError, struct.error):
        return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv=csv_tables())
def test_random_tables_accepted_and_built_exactly_as_gen_esp32part(csv: str) -> None:
    assert _outcome(ours, csv) == _outcome(upstream_binary, csv)
