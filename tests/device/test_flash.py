"""The device's SPI flash: the NOR chip (tests/flash) behind the XTS-AES engine keyed
from eFuses, and the partition view the NVS runtime runs on."""

from __future__ import annotations

import pytest

from espsec import efuse
from espsec.device import FaultPlan, PowerCut
from espsec.device.flash import PartitionFlash, SpiFlash, flash_encryption_key
from espsec.flash import FlashAccessError, FlashRegion, NorFlash, WriteCounter
from espsec.flash_encryption import FlashCipher
from espsec.image.partition_table import Partition
from espsec.nvs.runtime import NvsStore

from .kit import FACTORY_TABLE, FE_DEV, app, bootloader, device

KEY = bytes(range(32))


def blank(size: int = 0x10000, plan: FaultPlan | None = None) -> SpiFlash:
    return SpiFlash(b"\xff" * size, efuse.new("esp32s3"), WriteCounter(plan))


def test_the_device_flash_is_the_nor_flash_model():
    flash = blank()
    assert isinstance(flash, NorFlash)
    flash.write(0x100, b"\x0f\xf0\xff\x00")
    flash.write(0x100, b"\xf0\xff\x0f\xff")  # NOR: the chip ANDs
    assert flash.read_raw(0x100, 4) == b"\x00\xf0\x0f\x00"


def test_a_fault_plan_cuts_the_device_flash_before_the_next_write():
    flash = blank(plan=FaultPlan(1))
    flash.write(0, b"\0" * 4)
    with pytest.raises(PowerCut):
        flash.erase_sector(0)
    assert flash.read_raw(0, 8) == b"\0" * 4 + b"\xff" * 4


def test_encrypted_write_is_one_counted_program_and_ands_like_a_plain_one():
    flash = blank()
    efuse.burn_key(flash.efuses, "BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    flash.write(0x2000, b"\x00" * 16)
    flash.write_encrypted(0x2000, b"A" * 16)  # over programmed flash: the chip ANDs
    assert flash.read_raw(0x2000, 16) == b"\x00" * 16
    assert flash.counter.flash_writes == 2


def test_encrypted_write_must_be_whole_16_byte_blocks():
    flash = blank()
    efuse.burn_key(flash.efuses, "BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    with pytest.raises(FlashAccessError, match="16-byte blocks"):
        flash.write_encrypted(8, b"\0" * 16)


def test_encrypted_write_uses_the_efuse_key_as_espefuse_burned_it():
    flash = blank()
    efuse.burn_key(flash.efuses, "BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    data = bytes(range(256)) * 2
    flash.write_encrypted(0x2000, data)
    assert flash.read_raw(0x2000, len(data)) == FlashCipher(KEY).encrypt(data, 0x2000)
    assert flash.read(0x2000, len(data), decrypt=True) == data
    engine = flash.engine_key()
    assert engine is not None and engine.blocks == ("BLOCK_KEY0",)


def test_cache_reads_decrypt_only_when_crypt_cnt_is_odd():
    flash = blank()
    efuse.burn_key(flash.efuses, "BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    flash.write_encrypted(0, b"A" * 64)
    assert flash.read(0, 64) != b"A" * 64
    efuse.burn(flash.efuses, {"SPI_BOOT_CRYPT_CNT": 1})
    assert flash.read(0, 64) == b"A" * 64
    assert flash.read(8, 8) == b"A" * 8  # unaligned reads too


def test_xts_aes_256_key_is_the_two_blocks_reversed():
    flash = blank()
    key = bytes(range(64))
    efuse.burn_key(flash.efuses, "BLOCK_KEY0", key, "XTS_AES_256_KEY")
    found = flash_encryption_key(flash.efuses)
    assert found is not None and found[1].material == key and found[0].purpose == "XTS_AES_256_KEY"


def test_encrypted_write_without_a_key_is_refused():
    with pytest.raises(FlashAccessError, match="no flash encryption key"):
        blank().write_encrypted(0, b"\0" * 16)


def test_partition_flash_is_the_nvs_flash_region_protocol():
    region = PartitionFlash(blank(), Partition("nvs", 1, 2, 0x9000, 0x4000))
    assert isinstance(region, FlashRegion)
    assert region.size == 0x4000
    with pytest.raises(FlashAccessError, match="outside partition 'nvs'"):
        region.read(0x3FF0, 0x20)


def test_nvs_runs_on_the_device_flash_after_flash_encryption():
    dev = device(FE_DEV, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    assert dev.boot().ok
    nvs = dev.running.partition("nvs")
    assert not nvs.encrypted  # NVS encryption is its own (nvs_keys), not flash encryption
    store = NvsStore.init(nvs)
    with store.open("wifi") as handle:
        handle.set_str("ssid", "lab")
    again = NvsStore.init(dev.running.partition("nvs"))
    with again.open("wifi") as handle:
        assert handle.get_str("ssid") == "lab"


def test_encrypted_partition_round_trips_through_the_engine():
    dev = device(FE_DEV, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    dev.boot()
    keys = dev.running.partition("nvs_keys")
    assert keys.encrypted
    keys.erase_sector(0)
    keys.write(0, b"k" * 64)
    assert keys.read(0, 64) == b"k" * 64
    assert dev.flash.read_raw(0xA0000, 64) != b"k" * 64
