"""The app's ``nvs_flash_init`` on the virtual device: where its NVS encryption keys come from."""

from __future__ import annotations

import os

import pytest

from espsec import efuse
from espsec.device import VirtualDevice
from espsec.device.nvs import (
    NvsInitError,
    app_nvs_keys,
    open_app_nvs,
    read_device_nvs,
    read_security_cfg,
)
from espsec.device.ota_state import OtaNvs, OtaStateError
from espsec.flash import FaultPlan, PowerCut
from espsec.image.partition_table import PartitionTable
from espsec.nvs import NvsKeys, NvsStore
from espsec.sdkconfig import BootloaderConfig

from .kit import FACTORY, FACTORY_TABLE, FE_DEV, app, bootloader, device

NVS_OFFSET, NVS_SIZE = 0x9000, 0x4000
NVS_KEYS_OFFSET = 0xA0000
NO_KEYS_TABLE = PartitionTable.from_csv(
    """nvs,      data, nvs,     0x9000,  0x4000,
otadata,  data, ota,     0xd000,  0x2000,
factory,  app,  factory, 0x10000, 0x30000,
"""
)
SECRET = "hunter2-hunter2"


def booted(
    config: BootloaderConfig = FE_DEV, table: PartitionTable = FACTORY_TABLE
) -> VirtualDevice:
    dev = device(config, boot=bootloader(), apps={FACTORY: app()}, table=table)
    assert dev.boot().ok and dev.running is not None
    return dev


def hmac_config(key_id: int) -> BootloaderConfig:
    return BootloaderConfig.from_options(
        secure_flash_enc_enabled=True,
        nvs_sec_key_protection_scheme="hmac",
        nvs_sec_hmac_efuse_key_id=key_id,
    )


def store_secret(dev: VirtualDevice) -> None:
    assert dev.running is not None
    with open_app_nvs(dev.running).open("app") as h:
        h.set_str("secret", SECRET)
        h.commit()


def secret_of(dev: VirtualDevice) -> object:
    return {e.key: e.value for e in read_device_nvs(dev).entries}["secret"]


# -- flash-encryption scheme -----------------------------------------------------------


def test_first_init_generates_keys_into_the_erased_nvs_keys_partition_encrypted_at_rest():
    dev = booted()
    assert dev.running is not None
    dev.arm(None)
    keys = app_nvs_keys(dev.running, generate=True)
    assert keys is not None
    # nvs_flash_generate_keys: one erase, eky and tky patterns raw, the CRC encrypted
    assert (dev.counter.flash_writes, dev.counter.efuse_writes) == (4, 0)
    raw = dev.flash.read_raw(NVS_KEYS_OFFSET, 0x1000)
    assert keys.eky not in raw and keys.tky not in raw
    assert NvsKeys.parse(dev.running.partition("nvs_keys").read(0, 0x1000)) == keys
    # later inits read them back and write nothing
    assert app_nvs_keys(dev.running, generate=True) == keys
    assert app_nvs_keys(dev, generate=False) == keys
    assert dev.counter.flash_writes == 4
    # the keys are the chip's own: another chip (another flash-encryption key) differs
    other = booted()
    assert other.running is not None
    assert app_nvs_keys(other.running, generate=True) != keys


def test_app_nvs_data_is_ciphertext_at_rest():
    dev = booted()
    store_secret(dev)
    assert SECRET.encode() not in dev.flash.read_raw(NVS_OFFSET, NVS_SIZE)
    assert secret_of(dev) == SECRET
    assert dev.boot().ok  # a reboot's nvs_flash_init finds the same keys
    store_secret(dev)
    assert secret_of(dev) == SECRET


def test_flash_enc_scheme_without_an_nvs_keys_partition_is_refused():
    dev = booted(table=NO_KEYS_TABLE)
    assert dev.running is not None
    before = dev.flash.read_raw(0, dev.flash.size)
    with pytest.raises(NvsInitError, match="the partition table has none"):
        app_nvs_keys(dev.running, generate=True)
    with pytest.raises(OtaStateError, match="nvs_keys"):
        OtaNvs(dev.running)
    assert dev.flash.read_raw(0, dev.flash.size) == before


def test_nvs_encryption_off_keeps_plain_nvs():
    config = BootloaderConfig.from_options(secure_flash_enc_enabled=True, nvs_encryption=False)
    dev = booted(config, NO_KEYS_TABLE)
    assert dev.running is not None
    assert app_nvs_keys(dev.running, generate=True) is None
    store_secret(dev)
    assert SECRET.encode() in dev.flash.read_raw(NVS_OFFSET, NVS_SIZE)  # no FE on data/nvs


def test_power_cut_during_key_generation_leaves_a_device_that_still_works():
    base = booted()
    cuts = 0
    for n in range(10):
        dev = base.copy()
        assert dev.boot().ok and dev.running is not None
        dev.arm(FaultPlan(n))
        try:
            app_nvs_keys(dev.running, generate=True)
        except PowerCut:
            cuts += 1
        else:
            break
        # erased or incomplete, never half-valid keys: the next init generates again
        assert not isinstance(read_security_cfg(dev.running.partition("nvs_keys")), NvsKeys)
        assert dev.boot().ok and dev.running is not None
        keys = app_nvs_keys(dev.running, generate=True)
        store_secret(dev)
        assert secret_of(dev) == SECRET
        assert dev.boot().ok and app_nvs_keys(dev.running, generate=True) == keys
    assert cuts == 4


# -- HMAC scheme -----------------------------------------------------------------------


def test_hmac_scheme_burns_and_uses_the_configured_key_block():
    dev = booted(hmac_config(2))
    assert dev.running is not None
    with pytest.raises(NvsInitError, match="KEY_NOT_FOUND"):
        app_nvs_keys(dev, generate=False)
    keys_partition = dev.flash.read_raw(NVS_KEYS_OFFSET, 0x1000)
    keys = app_nvs_keys(dev.running, generate=True)
    layout = dev.efuses.layout
    assert layout.purpose_name(dev.efuses.key_purpose("BLOCK_KEY2")) == "HMAC_UP"
    assert keys == NvsKeys.from_hmac_key(dev.efuses.hardware_block("BLOCK_KEY2"))
    assert dev.flash.read_raw(NVS_KEYS_OFFSET, 0x1000) == keys_partition  # not used
    efuse_writes = dev.counter.efuse_writes
    assert app_nvs_keys(dev.running, generate=True) == keys
    assert dev.counter.efuse_writes == efuse_writes  # burned once
    store_secret(dev)
    assert SECRET.encode() not in dev.flash.read_raw(NVS_OFFSET, NVS_SIZE)
    assert secret_of(dev) == SECRET


def test_hmac_scheme_uses_its_configured_block_not_the_first_hmac_up_key():
    dev = booted(hmac_config(3))
    ecies_key, nvs_key = os.urandom(32), os.urandom(32)
    efuse.burn_key(dev.efuses, "BLOCK_KEY1", ecies_key, "HMAC_UP")  # the OTA ECIES key
    efuse.burn_key(dev.efuses, "BLOCK_KEY3", nvs_key, "HMAC_UP")
    assert app_nvs_keys(dev, generate=False) == NvsKeys.from_hmac_key(nvs_key)


def test_hmac_scheme_refuses_an_unset_key_id_and_a_block_in_use():
    dev = booted(
        BootloaderConfig.from_options(
            secure_flash_enc_enabled=True, nvs_sec_key_protection_scheme="hmac"
        )
    )
    assert dev.running is not None
    with pytest.raises(NvsInitError, match="-1"):
        app_nvs_keys(dev.running, generate=True)
    dev = booted(hmac_config(4))
    assert dev.running is not None
    efuse.burn_key(dev.efuses, "BLOCK_KEY4", os.urandom(32), "HMAC_DOWN_ALL")
    with pytest.raises(NvsInitError, match="in use"):
        app_nvs_keys(dev.running, generate=True)


# -- refusing to open what would be erased -----------------------------------------------


def test_nvs_written_with_other_keys_is_refused_not_erased():
    dev = booted()
    assert dev.running is not None
    factory_keys = NvsKeys.generate()
    with NvsStore.init(dev.running.partition("nvs"), keys=factory_keys).open("factory") as h:
        h.set_str("serial", "SN-0001")
    before = dev.flash.read_raw(0, dev.flash.size)
    with pytest.raises(NvsInitError, match="does not read with its NVS encryption keys"):
        open_app_nvs(dev.running, keys=NvsKeys.generate())
    assert dev.flash.read_raw(0, dev.flash.size) == before
    with pytest.raises(NvsInitError, match="does not read with the plain NVS API"):
        _open_plain(dev)
    assert dev.flash.read_raw(0, dev.flash.size) == before
    with open_app_nvs(dev.running, keys=factory_keys).open("factory") as h:
        assert h.get_str("serial") == "SN-0001"


def _open_plain(dev: VirtualDevice) -> None:
    """The same partition seen by an app built without NVS encryption."""
    plain = VirtualDevice(
        dev.efuses.copy(),
        bytes(dev.flash.data),
        config=BootloaderConfig.from_options(secure_flash_enc_enabled=True, nvs_encryption=False),
    )
    assert plain.boot().ok and plain.running is not None
    open_app_nvs(plain.running)


def test_hmac_key_generation_after_wr_dis_rd_dis_leaves_a_readable_unlocked_key():
    """``esp_efuse_write_key`` does not check that ``RD_DIS`` is writable; the eFuse
    controller masks the write-protected ``RD_DIS`` bit, BLOCK0's read-back fails
    (``ESP_FAIL``) after the key block was programmed, and the deferred ``WR_DIS``
    program never runs: the call fails, yet an ``HMAC_UP`` key is burned that software
    can read and nothing locks, and the next ``nvs_flash_init`` uses it."""
    dev = booted(hmac_config(2))
    assert dev.running is not None
    efuse.write_protect(dev.efuses, ["RD_DIS"])  # what Secure Boot's first boot burns
    with pytest.raises(NvsInitError, match="stays readable"):
        app_nvs_keys(dev.running, generate=True)
    efuses = dev.efuses
    assert efuses.layout.purpose_name(efuses.key_purpose("BLOCK_KEY2")) == "HMAC_UP"
    assert not efuses.is_read_protected("BLOCK_KEY2")
    assert not efuses.is_write_protected("BLOCK_KEY2")
    assert efuses.is_writeable(efuses.layout.block("BLOCK_KEY2").purpose_field or "")
    key = efuses.read_block("BLOCK_KEY2")  # software reads the key
    assert any(key)
    assert app_nvs_keys(dev, generate=False) == NvsKeys.from_hmac_key(key)
