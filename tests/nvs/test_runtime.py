"""The device-side NVS API: nvs_open / set / get / erase / commit, GC, encryption."""

from __future__ import annotations

import pytest

from espsec.errors import UsageError
from espsec.flash import NorFlash
from espsec.nvs import (
    DataRow,
    ItemType,
    NamespaceRow,
    NvsError,
    NvsKeys,
    NvsStore,
    OpenMode,
    PageImage,
    ValueType,
    generate_partition,
    read_partition,
)
from espsec.nvs.runtime import errors


def new_store(size=0x6000, keys=None):
    flash = NorFlash(size)
    return flash, NvsStore.init(flash, keys=keys)


def reopen(flash, keys=None):
    return NvsStore.init(flash, keys=keys)


def test_every_type_survives_a_reboot():
    flash, store = new_store()
    with store.open("cfg") as nvs:
        nvs.set_u8("u8", 255)
        nvs.set_i8("i8", -128)
        nvs.set_u16("u16", 65535)
        nvs.set_i16("i16", -32768)
        nvs.set_u32("u32", 2**32 - 1)
        nvs.set_i32("i32", -(2**31))
        nvs.set_u64("u64", 2**64 - 1)
        nvs.set_i64("i64", -(2**63))
        nvs.set("f", ValueType.FLOAT, 1.5)
        nvs.set("d", ValueType.DOUBLE, -2.25)
        nvs.set_str("s", "héllo")
        nvs.set_blob("b", bytes(range(256)) * 40)
        nvs.commit()
    nvs = reopen(flash).open("cfg", OpenMode.READONLY)
    assert nvs.get_u8("u8") == 255 and nvs.get_i8("i8") == -128
    assert nvs.get_u16("u16") == 65535 and nvs.get_i16("i16") == -32768
    assert nvs.get_u32("u32") == 2**32 - 1 and nvs.get_i32("i32") == -(2**31)
    assert nvs.get_u64("u64") == 2**64 - 1 and nvs.get_i64("i64") == -(2**63)
    assert nvs.get("f", ValueType.FLOAT) == 1.5 and nvs.get("d", ValueType.DOUBLE) == -2.25
    assert nvs.get_str("s") == "héllo"
    assert nvs.get_blob("b") == bytes(range(256)) * 40


def test_namespaces_keep_keys_apart():
    _, store = new_store()
    store.open("a").set_u8("k", 1)
    store.open("b").set_u8("k", 2)
    assert store.open("a").get_u8("k") == 1
    assert store.open("b").get_u8("k") == 2
    assert store.namespaces == {"a": 1, "b": 2}


def test_missing_keys_namespaces_and_types_are_not_found():
    _, store = new_store()
    nvs = store.open("a")
    nvs.set_u16("k", 1)
    with pytest.raises(NvsError) as info:
        nvs.get_u8("missing")
    assert info.value.code == errors.NOT_FOUND
    with pytest.raises(NvsError, match="not found as u8 \\(it is u16\\)") as info:
        nvs.get_u8("k")
    assert info.value.code == errors.NOT_FOUND
    with pytest.raises(NvsError) as info:
        store.open("nope", OpenMode.READONLY)
    assert info.value.code == errors.NOT_FOUND
    assert nvs.find_key("k") is ValueType.U16 and nvs.find_key("missing") is None


def test_bad_names_values_and_handles_are_refused():
    _, store = new_store()
    nvs = store.open("a")
    with pytest.raises(NvsError) as info:
        nvs.set_u8("x" * 16, 1)
    assert info.value.code == errors.KEY_TOO_LONG
    with pytest.raises(NvsError) as info:
        store.open("")
    assert info.value.code == errors.INVALID_NAME
    with pytest.raises(UsageError, match="does not fit u8"):
        nvs.set_u8("k", 256)
    with pytest.raises(NvsError) as info:
        nvs.set_str("s", "x" * 4000)  # 4001 bytes with the NUL
    assert info.value.code == errors.VALUE_TOO_LONG
    nvs.set_str("s", "x" * 3999)
    reader = store.open("a", OpenMode.READONLY)
    with pytest.raises(NvsError) as info:
        reader.set_u8("k", 1)
    assert info.value.code == errors.READ_ONLY
    nvs.close()
    with pytest.raises(NvsError) as info:
        nvs.get_u8("k")
    assert info.value.code == errors.INVALID_HANDLE


def test_overwrite_erases_the_old_entry_and_a_type_change_replaces_it():
    flash, store = new_store()
    nvs = store.open("a")
    nvs.set_u8("k", 1)
    nvs.set_u8("k", 2)
    nvs.set_str("k", "now a string")
    nvs = reopen(flash).open("a")
    assert nvs.get_str("k") == "now a string"
    assert nvs.find_key("k") is ValueType.STRING
    nvs.set_blob("k", b"now a blob" * 500)
    nvs.set_u32("k", 5)
    assert [(e.key, e.value) for e in reopen(flash).entries("a")] == [("k", 5)]


def test_writing_the_same_value_writes_nothing():
    flash, store = new_store()
    nvs = store.open("a")
    nvs.set_str("s", "same")
    nvs.set_blob("b", b"x" * 5000)
    before = flash.counter.flash_writes
    nvs.set_str("s", "same")
    nvs.set_blob("b", b"x" * 5000)
    assert flash.counter.flash_writes == before


def test_blob_versions_toggle_between_chunk_start_0_and_0x80():
    flash, store = new_store()
    nvs = store.open("a")
    starts = []
    for i in range(3):
        nvs.set_blob("b", bytes([i]) * 5000)
        starts.append(
            [
                item.chunk_start
                for page in range(flash.size // 4096)
                for _, item in PageImage.parse(flash.read(page * 4096, 4096)).items()
                if item.datatype == ItemType.BLOB_IDX
            ]
        )
    assert starts == [[0x00], [0x80], [0x00]]
    assert reopen(flash).open("a").get_blob("b") == bytes([2]) * 5000


def test_erase_key_and_erase_all():
    flash, store = new_store()
    a, b = store.open("a"), store.open("b")
    a.set_u8("x", 1)
    a.set_blob("y", b"z" * 6000)
    b.set_u8("x", 2)
    a.erase_key("x")
    with pytest.raises(NvsError) as info:
        a.erase_key("x")
    assert info.value.code == errors.NOT_FOUND
    a.set_u8("w", 3)
    a.erase_all()
    store = reopen(flash)
    assert store.entries("a") == []
    assert [(e.key, e.value) for e in store.entries("b")] == [("x", 2)]


def test_garbage_collection_reuses_pages_for_years_of_updates():
    flash, store = new_store(size=0x4000)
    nvs = store.open("a")
    for i in range(3000):
        nvs.set_u32(f"k{i % 20}", i)
        if i % 100 == 0:
            nvs.set_blob("blob", bytes([i % 256]) * 1500)
    nvs = reopen(flash).open("a")
    assert [nvs.get_u32(f"k{i}") for i in range(20)] == list(range(2980, 3000))
    assert nvs.get_blob("blob") == bytes([2900 % 256]) * 1500
    stats = reopen(flash).stats()
    assert stats.used_entries < 126 and stats.namespace_count == 1


def test_a_full_partition_reports_not_enough_space_and_keeps_its_data():
    flash, store = new_store(size=0x3000)
    nvs = store.open("a")
    with pytest.raises(NvsError) as info:
        for i in range(1000):
            nvs.set_str(f"k{i}", "x" * 100)
    assert info.value.code == errors.NOT_ENOUGH_SPACE
    nvs = reopen(flash).open("a")
    assert nvs.get_str("k0") == "x" * 100


def test_reads_and_updates_generator_made_partitions():
    rows = [
        NamespaceRow("cfg"),
        DataRow("v1blob", ValueType.BLOB, b"old format"),
        DataRow("n", ValueType.I32, -7),
        DataRow("s", ValueType.STRING, "text"),
    ]
    for version in (1, 2):
        for keys in (None, NvsKeys.generate()):
            flash = NorFlash(generate_partition(rows, 0x5000, version=version, keys=keys))
            nvs = NvsStore.init(flash, keys=keys).open("cfg")
            assert nvs.get_blob("v1blob") == b"old format"
            assert nvs.get_i32("n") == -7 and nvs.get_str("s") == "text"
            nvs.set_blob("v1blob", b"new format" * 1000)
            nvs.set_i32("n", 8)
            contents = read_partition(flash.snapshot(), keys=keys)
            assert [(e.key, e.value) for e in contents.entries] == [
                ("s", "text"),
                ("v1blob", b"new format" * 1000),
                ("n", 8),
            ]


def test_encrypted_store_keeps_only_ciphertext_on_flash():
    keys = NvsKeys.generate()
    flash, store = new_store(keys=keys)
    store.open("wifi").set_str("password", "correct horse battery staple")
    assert b"correct horse" not in flash.snapshot()
    assert reopen(flash, keys).open("wifi").get_str("password") == "correct horse battery staple"
    assert read_partition(flash.snapshot(), keys=keys).entries[0].key == "password"


def test_newer_format_version_is_refused():
    flash, store = new_store()
    store.open("a").set_u8("k", 1)
    page = bytearray(flash.read(0, 4096))
    from espsec.nvs import PageHeader

    page[:32] = PageHeader.make(0xFFFFFFFE, 0, 0xFD).to_bytes()
    with pytest.raises(NvsError) as info:
        NvsStore.init(NorFlash(bytes(page) + b"\xff" * 0x5000))
    assert info.value.code == errors.NEW_VERSION_FOUND


def test_a_partition_without_a_free_page_is_refused_read_write_but_reads():
    rows = [NamespaceRow("n")] + [DataRow(f"k{i}", ValueType.U8, 1) for i in range(200)]
    image = generate_partition(rows, 0x2000)  # read-only size: both pages used
    with pytest.raises(NvsError) as info:
        NvsStore.init(NorFlash(image))
    assert info.value.code == errors.NO_FREE_PAGES
    store = NvsStore.init(NorFlash(image), read_only=True)
    assert store.open("n", OpenMode.READONLY).get_u8("k199") == 1
    with pytest.raises(NvsError) as info:
        store.open("n")
    assert info.value.code == errors.READ_ONLY


def test_entry_reprs_hide_values():
    _, store = new_store()
    store.open("a").set_str("password", "hunter2")
    assert "hunter2" not in repr(store.entries())


def test_overwriting_a_value_with_a_corrupt_payload_keeps_the_new_value():
    flash, store = new_store()
    nvs = store.open("a")
    nvs.set_str("s", "old value here")
    nvs.set_blob("b", b"\x01" * 300)
    image = bytearray(flash.snapshot())
    for needle in (b"old value here", b"\x01" * 32):
        at = image.find(needle)
        image[at] &= 0x7E  # a flipped bit in the payload: its CRC no longer matches
    flash = NorFlash(bytes(image))
    nvs = NvsStore.init(flash).open("a")
    nvs.set_str("s", "new value here")  # same size: compared byte by byte first
    nvs.set_blob("b", b"\x02" * 300)
    nvs = reopen(flash).open("a")
    assert nvs.get_str("s") == "new value here"
    assert nvs.get_blob("b") == b"\x02" * 300
