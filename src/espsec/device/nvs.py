"""NVS on the virtual device: ``nvs_flash_init`` as the app runs it, with ESP-IDF's key source.

With ``CONFIG_NVS_ENCRYPTION`` the app's ``nvs_flash_init`` (``components/nvs_flash/src/
nvs_api.cpp``, ESP-IDF v5.3+) asks the registered ``nvs_sec_provider`` scheme
(``components/nvs_sec_provider/nvs_sec_provider.c``) for the XTS keys and, if reading
them fails for any reason, has the scheme generate them:

* flash-encryption scheme: the first ``data/nvs_keys`` partition
  (``nvs_flash_read_security_cfg`` / ``nvs_flash_generate_keys``), itself protected by
  flash encryption;
* HMAC scheme: the keys derive from the ``HMAC_UP`` eFuse key in block
  ``CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID``; generating burns a random key there first.

:func:`app_nvs_keys` is that logic; :func:`open_app_nvs` is ``nvs_flash_init`` itself,
with one guard ESP-IDF lacks: a partition whose written entries do not read with the
keys is refused, because the NVS runtime would erase every entry it cannot read.
"""

from __future__ import annotations

import secrets
import struct
from typing import TYPE_CHECKING

from espsec.device.flash import PartitionFlash
from espsec.device.hardware import EfuseProgramError, Hardware
from espsec.efuse import Transaction
from espsec.errors import EspsecError, FormatError, UsageError
from espsec.identity.hmac import HmacError, HmacPeripheral
from espsec.image.partition_table import Partition
from espsec.nvs import NvsContents, NvsKeys, NvsStore, read_partition
from espsec.nvs.layout import crc_a
from espsec.nvs.nvs_keys import KEY_SIZE
from espsec.sdkconfig import NvsSecKeyProtection

if TYPE_CHECKING:
    from espsec.device.app import AppRuntime
    from espsec.device.virtual_device import VirtualDevice
    from espsec.sdkconfig import BootloaderConfig

NVS_KEYS_SUBTYPE = 0x04
DATA_TYPE = 0x01
HMAC_UP = "HMAC_UP"
NVS_DEFAULT_PART_NAME = "nvs"

# nvs_flash_generate_keys writes these raw; read back through the flash-encryption
# engine they become per-device keys ("adjacent 16-byte blocks should be different").
_EKY_PATTERN = b"\xff" * 16 + b"\x99" * 16
_TKY_PATTERN = b"\xee" * 16 + b"\x88" * 16
_KEYS_END = 2 * KEY_SIZE
_CRC_WRITE = 16


class NvsInitError(EspsecError):
    """``nvs_flash_init`` fails: no usable key source, or a partition it must not open."""


def device_partition(dev: VirtualDevice, name: str) -> PartitionFlash:
    """A partition of ``dev`` by label, read and written as ``esp_partition_*`` does."""
    table = dev.partition_table()
    if table is None:
        raise UsageError("the device has no valid partition table on flash")
    found = table.find(name)
    if found is None:
        raise UsageError(f"no partition {name!r} in the device's partition table")
    return PartitionFlash(dev.flash, found)


def _view(
    target: VirtualDevice | AppRuntime,
) -> tuple[Hardware, BootloaderConfig, tuple[Partition, ...]]:
    from espsec.device.app import AppRuntime

    if isinstance(target, AppRuntime):
        return target.hw, target.config, target.state.partitions
    table = target.partition_table()
    if table is None:
        raise UsageError("the device has no valid partition table on flash")
    return Hardware(target.efuses, target.flash), target.config, table.partitions


# -- flash-encryption scheme ------------------------------------------------------------


def _initialised(eky: bytes, tky: bytes, crc: int) -> bool:
    """``check_if_initialized`` in ``nvs_flash_read_security_cfg``."""
    return not (eky == tky == b"\xff" * KEY_SIZE and crc == 0xFFFFFFFF)


def read_security_cfg(region: PartitionFlash) -> NvsKeys | str:
    """``nvs_flash_read_security_cfg``: the keys, or why not
    (``ESP_ERR_NVS_KEYS_NOT_INITIALIZED`` / ``ESP_ERR_NVS_CORRUPT_KEY_PART``)."""
    base = region.partition.offset
    raw = region.flash.read_raw(base, _KEYS_END + 4)
    if not _initialised(raw[:KEY_SIZE], raw[KEY_SIZE:_KEYS_END], _crc(raw)):
        return "ESP_ERR_NVS_KEYS_NOT_INITIALIZED"
    plain = region.read(0, _KEYS_END + 4)
    eky, tky = plain[:KEY_SIZE], plain[KEY_SIZE:_KEYS_END]
    if crc_a(eky + tky) != _crc(plain):
        if not _initialised(eky, tky, _crc(plain)):
            return "ESP_ERR_NVS_KEYS_NOT_INITIALIZED"
        return "ESP_ERR_NVS_CORRUPT_KEY_PART"
    return NvsKeys(eky, tky)


def _crc(data: bytes) -> int:
    value: int = struct.unpack_from("<I", data, _KEYS_END)[0]
    return value


def generate_keys(region: PartitionFlash) -> NvsKeys:
    """``nvs_flash_generate_keys``: erase the partition, write the key patterns raw
    (``esp_partition_write_raw``), read them back through flash encryption, then write
    their CRC encrypted (``esp_partition_write``). A power cut leaves the partition
    erased or corrupt, and the next ``nvs_flash_init`` generates again."""
    region.erase_range(0, region.size)
    base = region.partition.offset
    name = region.partition.name
    region.flash.write(base, _EKY_PATTERN, what=f"{name}: nvs_flash_generate_keys (eky)")
    region.flash.write(base + KEY_SIZE, _TKY_PATTERN, what=f"{name}: nvs_flash_generate_keys (tky)")
    plain = region.read(0, _KEYS_END)
    keys = NvsKeys(plain[:KEY_SIZE], plain[KEY_SIZE:])
    crc = struct.pack("<I", crc_a(keys.xts_key))
    region.write(_KEYS_END, crc + b"\xff" * (_CRC_WRITE - len(crc)))
    return keys


def _nvs_keys_partition(hw: Hardware, partitions: tuple[Partition, ...]) -> PartitionFlash:
    found = next(
        (p for p in partitions if p.type == DATA_TYPE and p.subtype == NVS_KEYS_SUBTYPE), None
    )
    if found is None:
        raise NvsInitError(
            "CONFIG_NVS_ENCRYPTION with the flash-encryption scheme needs a data/nvs_keys "
            "partition and the partition table has none (nvs_flash_init fails with "
            "ESP_ERR_INVALID_ARG): add one, or use the HMAC scheme"
        )
    return PartitionFlash(hw.flash, found)


def _flash_enc_keys(hw: Hardware, partitions: tuple[Partition, ...], *, generate: bool) -> NvsKeys:
    region = _nvs_keys_partition(hw, partitions)
    found = read_security_cfg(region)
    if isinstance(found, NvsKeys):
        return found
    if not generate:
        raise NvsInitError(
            f"nvs_keys partition {region.partition.name!r} holds no keys ({found}): the app "
            "generates them at its first nvs_flash_init"
        )
    return generate_keys(region)


# -- HMAC scheme -----------------------------------------------------------------------


def _hmac_keys(hw: Hardware, key_id: int, *, generate: bool) -> NvsKeys:
    if key_id < 0:
        raise NvsInitError(
            "CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID is -1 (unset): ESP-IDF does not build the HMAC "
            "scheme that way; set it to the eFuse key block (0-5) for the NVS HMAC key"
        )
    efuses = hw.efuses
    block = efuses.layout.block(f"BLOCK_KEY{key_id}").name
    purpose = efuses.layout.purpose_name(efuses.key_purpose(block))
    if purpose != HMAC_UP:
        if not generate:
            raise NvsInitError(
                f"{block} holds no HMAC_UP key (purpose {purpose}) for NVS encryption "
                "(ESP_ERR_NVS_SEC_HMAC_KEY_NOT_FOUND)"
            )
        _burn_hmac_key(hw, block, purpose)
    peripheral = HmacPeripheral(efuses)
    try:
        return NvsKeys.from_hmac(lambda message: peripheral.calculate(key_id, message))
    except HmacError as exc:
        raise NvsInitError(f"NVS HMAC key in {block}: {exc.message}") from None


def _burn_hmac_key(hw: Hardware, block: str, purpose: str) -> None:
    """``generate_keys_hmac``: ``esp_efuse_write_key`` of a random ``HMAC_UP`` key.

    ``esp_efuse_write_key`` (``components/efuse/src/efuse_controller/keys/
    with_key_purposes/esp_efuse_api_key.c``) checks only ``esp_efuse_key_block_unused``;
    it then stages the key, its ``WR_DIS`` bit, its ``RD_DIS`` bit, the purpose and the
    purpose's ``WR_DIS`` bit and commits the batch. It never asks whether ``RD_DIS`` is
    itself write-protected (``WR_DIS_RD_DIS``, burned by Secure Boot's first boot). The
    eFuse controller silently skips write-protected bits, so after ``WR_DIS_RD_DIS`` the
    ``RD_DIS`` bit is not programmed: the key block is programmed first (highest block
    first), then BLOCK0 with the purpose but without ``RD_DIS``; BLOCK0's read-back check
    fails (``esp_efuse_utility_is_correct_written_data``), the commit returns ``ESP_FAIL``
    and, on ESP-IDF v6.1+, the deferred ``WR_DIS`` program is not made. What is left: an
    ``HMAC_UP`` key software can read and nothing locks, which the next ``nvs_flash_init``
    finds and uses. The twin burns exactly that (the ``RD_DIS`` bit goes to the controller
    as a masked bit) and reports the failure.
    """
    efuses = hw.efuses
    b = efuses.layout.block(block)
    if purpose != "USER" or not efuses.is_empty(b) or efuses.is_read_protected(b):
        raise NvsInitError(
            f"cannot burn the NVS HMAC key into {block}: the block is in use (purpose "
            f"{purpose}; esp_efuse_key_block_unused) (ESP_ERR_NVS_SEC_HMAC_KEY_GENERATION_FAILED)"
        )
    key = secrets.token_bytes(32)
    rd_dis_locked = not efuses.is_writeable("RD_DIS")
    masked: dict[int, int] = {}
    if rd_dis_locked and b.rd_dis is not None:
        rd_dis = efuses.field("RD_DIS")
        masked[rd_dis.block] = 1 << (rd_dis.start + b.rd_dis)
    try:
        hw.burn(
            Transaction().burn_key(block, key, HMAC_UP, read_protect=not rd_dis_locked),
            "esp_efuse_write_key (NVS encryption HMAC key)",
            masked=masked,
        )
    except EfuseProgramError as exc:
        raise NvsInitError(
            f"esp_efuse_write_key({block}, HMAC_UP) failed: {exc.message}. RD_DIS is "
            "write-protected (WR_DIS_RD_DIS), so the key stays readable by software "
            "(ESP_ERR_NVS_SEC_HMAC_KEY_GENERATION_FAILED)"
        ) from None


# -- nvs_flash_init --------------------------------------------------------------------


def app_nvs_keys(target: VirtualDevice | AppRuntime, *, generate: bool) -> NvsKeys | None:
    """The keys the app's ``nvs_flash_init`` encrypts NVS with; ``None`` for plain NVS.

    Follows ``nvs_flash_init`` and the ``nvs_sec_provider`` scheme the configuration
    selects. ``generate``: as the app, generate missing keys (write the ``nvs_keys``
    partition, or burn the HMAC key); otherwise only read them (a host-side reader
    must not change the device). Raises :class:`NvsInitError` where the app's
    ``nvs_flash_init`` fails.
    """
    hw, config, partitions = _view(target)
    if not config.nvs_encryption:
        return None
    scheme = config.nvs_sec_key_protection_scheme
    if scheme is NvsSecKeyProtection.FLASH_ENC:
        return _flash_enc_keys(hw, partitions, generate=generate)
    if scheme is NvsSecKeyProtection.HMAC:
        return _hmac_keys(hw, config.nvs_sec_hmac_efuse_key_id, generate=generate)
    raise NvsInitError(
        "CONFIG_NVS_SEC_KEY_PROTECT_NONE: the app registers its own NVS key scheme; "
        "give the NVS keys explicitly"
    )


def check_readable(region: PartitionFlash, keys: NvsKeys | None) -> None:
    """Refuse a partition whose written entries do not read with ``keys``.

    ``nvs_flash_secure_init_partition`` opened anyway would erase every entry with a
    bad CRC (ESP-IDF really does), wiping data written with other keys or none.
    """
    try:
        read_partition(region.read(0, region.size), keys=keys)
    except FormatError as exc:
        how = "its NVS encryption keys" if keys is not None else "the plain NVS API"
        raise NvsInitError(
            f"NVS partition {region.partition.name!r} does not read with {how} "
            f"({exc.message}); refusing to open it: its entries would be erased"
        ) from None


def open_app_nvs(
    runtime: AppRuntime, partition: str = NVS_DEFAULT_PART_NAME, *, keys: NvsKeys | None = None
) -> NvsStore:
    """``nvs_flash_init`` (``nvs_flash_secure_init_partition`` for ``partition``) in the
    running app: keys from :func:`app_nvs_keys` (generated if missing) unless ``keys``
    overrides them; refused by :func:`check_readable` before anything is written."""
    if keys is None:
        keys = app_nvs_keys(runtime, generate=True)
    region = runtime.partition(partition)
    check_readable(region, keys)
    return NvsStore.init(region, keys=keys)


def read_device_nvs(
    dev: VirtualDevice, partition: str = NVS_DEFAULT_PART_NAME, *, keys: NvsKeys | None = None
) -> NvsContents:
    """The contents of an NVS partition on ``dev`` as its app reads them (never generates
    keys: a device whose app has not run ``nvs_flash_init`` yet is refused)."""
    region = device_partition(dev, partition)
    if keys is None:
        keys = app_nvs_keys(dev, generate=False)
    data = region.read(0, region.size)
    return read_partition(data, keys=keys)
