"""The otadata partition format: entries, CRC, validity, which copy is active.

No PyPI package ships ESP-IDF's ``otatool.py`` (and esptool has no otadata code), so the
byte vectors here are derived by hand from the upstream C: ``esp_ota_select_entry_t`` in
``esp_flash_partitions.h`` and ``bootloader_common_ota_select_crc`` (``esp_rom_crc32_le``,
re-implemented below from ``components/esp_rom/linux/esp_rom_crc.c``). What ESP-IDF
writes there is tested with :mod:`espsec.device.boot_select`.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from espsec.errors import FormatError, UsageError
from espsec.image.otadata import (
    ENTRY_SIZE,
    ERASED_ENTRY,
    OTADATA_SIZE,
    SECTOR_SIZE,
    OtaData,
    OtadataWrite,
    OtaImgState,
    OtaSelectEntry,
    ota_select_crc,
    select_otadata,
)

FF20 = b"\xff" * 20


def _rom_crc32_le(crc: int, data: bytes) -> int:
    """``esp_rom_crc32_le`` as ESP-IDF's host build implements it (reflected 0x04C11DB7)."""
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    crc = ~crc & 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return ~crc & 0xFFFFFFFF


def _entry(seq: int, state: int = OtaImgState.VALID) -> OtaSelectEntry:
    return OtaSelectEntry.make(seq, state)


# --- bytes -------------------------------------------------------------------------


def test_entry_bytes_follow_esp_ota_select_entry_t():
    raw = _entry(1, OtaImgState.NEW).to_bytes()
    assert raw == bytes.fromhex("01000000") + FF20 + bytes.fromhex("000000009a984347")
    assert len(raw) == ENTRY_SIZE


def test_crc_is_rom_crc32_le_of_the_sequence_number_only():
    for seq in (0, 1, 2, 3, 0x1234, 0xFFFFFFFE, 0xFFFFFFFF):
        assert ota_select_crc(seq) == _rom_crc32_le(0xFFFFFFFF, struct.pack("<I", seq))
    assert ota_select_crc(1) == 0x4743989A
    assert ota_select_crc(2) == 0x55F63774
    assert ota_select_crc(0) == 0xFFFFFFFF


def test_crc_ignores_state_and_label():
    a = OtaSelectEntry.make(7, OtaImgState.NEW, seq_label=b"x" * 20)
    b = OtaSelectEntry.make(7, OtaImgState.INVALID)
    assert a.crc == b.crc


def test_partition_bytes_put_copies_at_0_and_0x1000_with_ff_padding():
    data = OtaData((_entry(1), _entry(2, OtaImgState.NEW))).to_bytes()
    assert len(data) == OTADATA_SIZE
    assert data[:ENTRY_SIZE] == _entry(1).to_bytes()
    assert data[SECTOR_SIZE : SECTOR_SIZE + ENTRY_SIZE] == _entry(2, OtaImgState.NEW).to_bytes()
    assert data[ENTRY_SIZE:SECTOR_SIZE] == b"\xff" * (SECTOR_SIZE - ENTRY_SIZE)


def test_initial_otadata_is_all_ff():
    assert OtaData.initial().to_bytes() == b"\xff" * OTADATA_SIZE
    assert OtaData.parse(b"\xff" * OTADATA_SIZE) == OtaData.initial()


def test_parse_ignores_bytes_after_each_entry():
    data = bytearray(OtaData((_entry(3), ERASED_ENTRY)).to_bytes())
    data[100:200] = bytes(100)
    data[SECTOR_SIZE + 40] = 0
    assert OtaData.parse(bytes(data)) == OtaData((_entry(3), ERASED_ENTRY))


@pytest.mark.parametrize("size", [0, 32, 0x1000, 0x1FFF, 0x2001, 0x3000])
def test_wrong_partition_size_is_a_format_error(size):
    with pytest.raises(FormatError) as err:
        OtaData.parse(b"\xff" * size, offset=0xD000)
    assert err.value.field == "otadata"
    assert err.value.offset == 0xD000
    assert err.value.expected == "8192 bytes"
    assert err.value.found == f"{size} bytes"


def test_truncated_entry_is_a_format_error():
    with pytest.raises(FormatError) as err:
        OtaSelectEntry.parse(b"\x01" * 31)
    assert err.value.field == "esp_ota_select_entry_t"


def test_bad_crc_entry_parses_and_is_neither_valid_nor_invalid():
    raw = bytearray(_entry(5).to_bytes())
    raw[28] ^= 1
    entry = OtaSelectEntry.parse(bytes(raw))
    assert not entry.crc_ok
    assert not entry.is_valid
    assert not entry.is_invalid  # ota_select_invalid does not look at the CRC
    assert entry.is_initial


def test_unknown_state_value_is_kept_raw():
    raw = _entry(5).to_bytes()[:24] + struct.pack("<I", 0x1234) + _entry(5).to_bytes()[28:]
    entry = OtaSelectEntry.parse(raw)
    assert entry.ota_state == 0x1234
    assert entry.state is None
    assert entry.is_valid  # any state but INVALID / ABORTED can be valid
    assert entry.to_bytes() == raw


def test_known_state_parses_to_the_enum():
    assert OtaSelectEntry.parse(_entry(1, OtaImgState.ABORTED).to_bytes()).state is (
        OtaImgState.ABORTED
    )


def test_constructor_rejects_out_of_range_fields():
    with pytest.raises(ValueError):
        OtaSelectEntry(1 << 32, FF20, 0, 0)
    with pytest.raises(ValueError):
        OtaSelectEntry(1, b"short", 0, 0)
    with pytest.raises(ValueError):
        OtadataWrite(2, None)


# --- validity (bootloader_common_loader.c) --------------------------------------------


def test_erased_entry_is_invalid_and_initial():
    assert ERASED_ENTRY.is_erased
    assert ERASED_ENTRY.is_invalid
    assert not ERASED_ENTRY.is_valid
    assert ERASED_ENTRY.is_initial
    assert ERASED_ENTRY.state is OtaImgState.UNDEFINED


@pytest.mark.parametrize("state", [OtaImgState.INVALID, OtaImgState.ABORTED])
def test_invalid_and_aborted_entries_are_invalid_despite_good_crc(state):
    entry = _entry(4, state)
    assert entry.crc_ok
    assert entry.is_invalid
    assert not entry.is_valid
    assert not entry.is_initial


@pytest.mark.parametrize(
    "state",
    [OtaImgState.NEW, OtaImgState.PENDING_VERIFY, OtaImgState.VALID, OtaImgState.UNDEFINED],
)
def test_usable_states_with_good_crc_are_valid(state):
    assert _entry(4, state).is_valid


def test_seq_zero_with_matching_crc_is_valid_and_selects_the_uint32_wrapped_slot():
    entry = OtaSelectEntry(0, FF20, OtaImgState.VALID, 0xFFFFFFFF)
    assert entry.is_valid
    assert entry.slot(2) == 0xFFFFFFFF % 2 == 1
    assert entry.slot(3) == 0xFFFFFFFF % 3 == 0


def test_slot_is_seq_minus_one_modulo_app_count():
    assert [_entry(s).slot(3) for s in range(1, 8)] == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(UsageError):
        _entry(1).slot(0)


def test_active_copy_is_the_valid_one_with_the_larger_seq():
    assert OtaData((_entry(1), _entry(2))).active_index() == 1
    assert OtaData((_entry(9), _entry(2))).active_index() == 0
    assert OtaData((_entry(9, OtaImgState.ABORTED), _entry(2))).active_index() == 1
    assert OtaData((ERASED_ENTRY, ERASED_ENTRY)).active_index() is None


def test_equal_seqs_select_copy_0():
    assert OtaData((_entry(3), _entry(3))).active_index() == 0
    entries = (_entry(3), _entry(3))
    assert select_otadata(entries, (True, True), maximum=False) == 0
    assert select_otadata((_entry(3), _entry(1)), (True, True), maximum=False) == 1


def test_state_of_slot_is_the_first_copy_with_a_good_crc_naming_it():
    od = OtaData((_entry(1, OtaImgState.VALID), _entry(2, OtaImgState.PENDING_VERIFY)))
    assert od.state_of_slot(0, 2) is OtaImgState.VALID
    assert od.state_of_slot(1, 2) is OtaImgState.PENDING_VERIFY
    assert OtaData().state_of_slot(0, 2) is None
    # with one slot both copies name ota_0: copy 0 answers
    assert od.state_of_slot(0, 1) is OtaImgState.VALID


def test_bootloader_state_change_keeps_seq_label_and_crc():
    raw = bytearray(_entry(5, OtaImgState.NEW).to_bytes())
    raw[28] ^= 0xFF  # a bad CRC stays bad: write_otadata does not recompute it
    raw[4:8] = b"abcd"
    entry = OtaSelectEntry.parse(bytes(raw))
    after = entry.with_state(OtaImgState.PENDING_VERIFY)
    assert after.to_bytes()[:24] == bytes(raw[:24])
    assert after.to_bytes()[28:] == bytes(raw[28:])
    assert after.ota_state == OtaImgState.PENDING_VERIFY


def test_after_write_and_after_cut_write():
    write = OtadataWrite(1, _entry(2, OtaImgState.NEW))
    od = OtaData((_entry(1), _entry(9)))
    assert od.after(write)[1] == _entry(2, OtaImgState.NEW)
    assert od.after(write, programmed=False)[1] == ERASED_ENTRY
    assert od.after(OtadataWrite(0, None))[0] == ERASED_ENTRY
    assert write.offset == 0x1000
    assert write.data == _entry(2, OtaImgState.NEW).to_bytes()
    assert OtadataWrite(0, None).data == b""


# --- properties ------------------------------------------------------------------------


@given(st.binary(max_size=OTADATA_SIZE + 64))
def test_random_bytes_parse_or_format_error(data):
    try:
        od = OtaData.parse(data)
    except FormatError:
        assert len(data) != OTADATA_SIZE
    else:
        assert OtaData.parse(od.to_bytes()) == od


@given(st.binary(min_size=ENTRY_SIZE, max_size=ENTRY_SIZE))
def test_any_32_bytes_are_an_entry_that_writes_back_identically(data):
    entry = OtaSelectEntry.parse(data)
    assert entry.to_bytes() == data
    assert entry.is_valid == (not entry.is_invalid and entry.crc_ok)
