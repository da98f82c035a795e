"""Whole-flash encryption: layout, which regions are encrypted, build folders, errors."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from espsec.errors import EspsecError, FormatError, KeyFormatError, UsageError
from espsec.flash_encryption import FlashCipher, FlashEncryptionKey
from espsec.flash_encryption.whole_flash import (
    FlashWrite,
    encrypt_flash,
    load_build_dir,
    parse_flash_size,
    read_partition,
)
from espsec.image.partition_table import PartitionTable

FLASH = 4 << 20


@pytest.fixture(params=[32, 64], ids=["xts128", "xts256"])
def key(request: pytest.FixtureRequest) -> FlashEncryptionKey:
    return FlashEncryptionKey(os.urandom(request.param))


def _files() -> dict[str, FlashWrite]:
    def w(offset: int, size: int, name: str) -> FlashWrite:
        return FlashWrite(offset, os.urandom(size), name)

    return {
        "bootloader": w(0x0, 0x5103 & ~3, "bootloader.bin"),  # not 16-aligned: padded
        "nvs": w(0x9000, 0x3000, "nvs.bin"),
        "otadata": w(0xD000, 0x2000, "ota_data_initial.bin"),
        "nvs_key": w(0x10000, 0x40, "nvs_keys.bin"),
        "factory": w(0x20000, 0x2345 * 16 + 4, "app.bin"),
        "ota_0": w(0x120000, 0x8000, "app2.bin"),
        "storage": w(0x220000, 0x2000, "fat.bin"),
        "spiffs": w(0x230000, 0x1002, "spiffs.bin"),
    }


def test_each_partition_decrypts_back_to_its_input(
    key: FlashEncryptionKey, fe_table: PartitionTable
) -> None:
    files = _files()
    flash = encrypt_flash(key, fe_table, list(files.values()), flash_size=FLASH)
    image = flash.to_bytes()
    assert len(image) == FLASH
    for name, write in files.items():
        if name == "bootloader":
            continue
        part = fe_table.find(name)
        assert part is not None
        contents = read_partition(image, key, part)
        assert contents[: len(write.data)] == write.data, name
    boot = files["bootloader"]
    padded = boot.data + b"\xff" * (-len(boot.data) % 16)
    assert FlashCipher(key).decrypt(image[: len(padded)], 0) == padded
    table_sector = FlashCipher(key).decrypt(image[0x8000:0x8C00], 0x8000)
    assert PartitionTable.parse(table_sector) == fe_table


def test_encrypted_and_plain_regions(key: FlashEncryptionKey, fe_table: PartitionTable) -> None:
    files = _files()
    flash = encrypt_flash(key, fe_table, list(files.values()), flash_size=FLASH)
    state = {w.region: w.encrypted for w in flash.writes}
    assert state == {
        "bootloader": True,
        "partition table": True,
        "nvs": False,
        "otadata": True,
        "nvs_key": True,
        "factory": True,
        "ota_0": True,
        "storage": True,  # flagged encrypted
        "spiffs": False,
    }
    image = flash.to_bytes()
    nvs = files["nvs"]
    assert image[0x9000 : 0x9000 + len(nvs.data)] == nvs.data  # stored plain
    assert image[0x9000 + len(nvs.data) : 0xD000] == b"\xff" * (0xD000 - 0x9000 - len(nvs.data))
    # encrypted writes are FF-padded to 16 bytes, then encrypted (so the pad is not FF)
    app = files["factory"]
    end = 0x20000 + len(app.data)
    pad = -len(app.data) % 16
    assert pad and image[end : end + pad] != b"\xff" * pad
    assert image[end + pad : end + pad + 64] == b"\xff" * 64
    # plain writes are FF-padded to 4 bytes, i.e. erased-looking
    assert image[0x230000 + 0x1002 : 0x230000 + 0x1004] == b"\xff\xff"


def test_streamed_image_equals_in_memory_image(
    key: FlashEncryptionKey, tmp_path: Path, fe_table: PartitionTable
) -> None:
    flash = encrypt_flash(key, fe_table, list(_files().values()), flash_size=FLASH)
    with (tmp_path / "flash.bin").open("wb") as fh:
        flash.write_to(fh)
    assert (tmp_path / "flash.bin").read_bytes() == flash.to_bytes()


def test_esp32p4_bootloader_lives_at_0x2000(
    key: FlashEncryptionKey, fe_table: PartitionTable
) -> None:
    boot = FlashWrite(0x2000, os.urandom(0x4000), "bootloader.bin")
    flash = encrypt_flash(key, fe_table, [boot], flash_size=FLASH, chip="esp32p4")
    image = flash.to_bytes()
    assert image[:0x2000] == b"\xff" * 0x2000
    assert FlashCipher(key).decrypt(image[0x2000:0x6000], 0x2000) == boot.data
    with pytest.raises(UsageError, match="not inside any partition"):
        encrypt_flash(
            key, fe_table, [FlashWrite(0x0, bytes(16), "b")], flash_size=FLASH, chip="esp32p4"
        )


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (
            FlashWrite(0x20000, bytes(0x100001), "big.bin"),
            r"does not fit in factory \(ends at 0x120000\)",
        ),
        (FlashWrite(0x0, bytes(0x8010), "bl.bin"), "does not fit in bootloader"),
        (FlashWrite(0x240000, bytes(16), "x.bin"), "not inside any partition"),
        (FlashWrite(0x20008, bytes(16), "x.bin"), "16-byte boundary"),
        (FlashWrite(0x8000, bytes(0x1001), "pt.bin"), "4 KiB sector"),
        (FlashWrite(0x9000, b"", "empty.bin"), "empty"),
    ],
)
def test_bad_writes_are_one_clear_line(
    write: FlashWrite, message: str, fe_table: PartitionTable
) -> None:
    key = FlashEncryptionKey(os.urandom(32))
    with pytest.raises(UsageError, match=message) as info:
        encrypt_flash(key, fe_table, [write], flash_size=FLASH)
    assert "\n" not in str(info.value)


def test_files_sharing_a_sector_are_rejected_as_esptool_does(fe_table: PartitionTable) -> None:
    key = FlashEncryptionKey(os.urandom(32))
    writes = [FlashWrite(0x9000, bytes(0x1100), "a.bin"), FlashWrite(0xA800, bytes(16), "b.bin")]
    with pytest.raises(
        UsageError, match=r"b\.bin at 0xa800 overlaps the flash sector\(s\) of a\.bin"
    ):
        encrypt_flash(key, fe_table, writes, flash_size=FLASH)


def test_table_larger_than_flash_and_wrong_table_are_rejected(fe_table: PartitionTable) -> None:
    key = FlashEncryptionKey(os.urandom(32))
    with pytest.raises(UsageError, match="larger than the flash size"):
        encrypt_flash(key, fe_table, [], flash_size=2 << 20)
    other = PartitionTable.from_csv("factory, app, factory, 0x10000, 1M\n").to_bytes()
    with pytest.raises(UsageError, match="not the partition table being used"):
        encrypt_flash(key, fe_table, [FlashWrite(0x8000, other, "pt.bin")], flash_size=FLASH)


def test_key_size_must_suit_the_chip(fe_table: PartitionTable) -> None:
    with pytest.raises(KeyFormatError, match="ESP32-C3"):
        encrypt_flash(FlashEncryptionKey(bytes(64)), fe_table, [], flash_size=FLASH, chip="esp32c3")


@pytest.mark.parametrize(
    ("text", "size"), [("4MB", 4 << 20), ("16mb", 16 << 20), ("8M", 8 << 20), ("0x200000", 2 << 20)]
)
def test_flash_sizes(text: str, size: int) -> None:
    assert parse_flash_size(text) == size


# ------------------------------------------------------------------- build folders


def test_build_dir_gives_the_same_image_as_explicit_writes(
    tmp_path: Path, make_build_dir: Callable[..., Path], fe_table: PartitionTable
) -> None:
    build = make_build_dir(tmp_path)
    layout = load_build_dir(build)
    assert layout.chip.name == "esp32s3" and layout.flash_size == 4 << 20
    assert layout.table == fe_table and layout.table_offset == 0x8000
    key = FlashEncryptionKey(os.urandom(32))
    from_build = encrypt_flash(
        key, layout.table, layout.writes, flash_size=FLASH, chip=layout.chip
    ).to_bytes()
    explicit = [
        FlashWrite(0x0, (build / "bootloader/bootloader.bin").read_bytes(), "bootloader.bin"),
        FlashWrite(0x20000, (build / "app.bin").read_bytes(), "app.bin"),
        FlashWrite(0xD000, (build / "ota_data_initial.bin").read_bytes(), "otadata"),
    ]
    assert encrypt_flash(key, fe_table, explicit, flash_size=FLASH).to_bytes() == from_build


def test_build_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(EspsecError, match=r"flasher_args\.json not found"):
        load_build_dir(tmp_path)
    (tmp_path / "flasher_args.json").write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        load_build_dir(tmp_path)
    for extra in ({}, {"extra_esptool_args": "esp32s3"}):
        (tmp_path / "flasher_args.json").write_text(json.dumps({"flash_files": {}, **extra}))
        with pytest.raises(FormatError, match="chip"):
            load_build_dir(tmp_path)


def test_build_dir_with_detected_flash_size_needs_one(
    tmp_path: Path, make_build_dir: Callable[..., Path]
) -> None:
    layout = load_build_dir(make_build_dir(tmp_path, flash_size="detect"))
    assert layout.flash_size is None
