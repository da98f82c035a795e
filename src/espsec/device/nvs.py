"""NVS on the virtual device: a partition read as the app reads it, with ESP-IDF's key source.

``nvs_flash_secure_init`` gets its XTS keys from ``nvs_sec_provider``
(``components/nvs_sec_provider/nvs_sec_provider.c``): with the flash-encryption scheme
from the first ``data/nvs_keys`` partition (itself protected by flash encryption), with
the HMAC scheme by deriving them from the eFuse key whose purpose is ``HMAC_UP``.
"""

from __future__ import annotations

from espsec.device.flash import PartitionFlash
from espsec.device.virtual_device import VirtualDevice
from espsec.efuse import KeyUnavailableError
from espsec.errors import EspsecError, UsageError
from espsec.storage import NvsContents, NvsKeys, read_partition

NVS_KEYS_SUBTYPE = 0x04
DATA_TYPE = 0x01


def device_partition(dev: VirtualDevice, name: str) -> PartitionFlash:
    """A partition of ``dev`` by label, read and written as ``esp_partition_*`` does."""
    table = dev.partition_table()
    if table is None:
        raise UsageError("the device has no valid partition table on flash")
    found = table.find(name)
    if found is None:
        raise UsageError(f"no partition {name!r} in the device's partition table")
    return PartitionFlash(dev.flash, found)


def nvs_keys_from_partition(dev: VirtualDevice) -> NvsKeys | None:
    """The keys in the first initialised ``data/nvs_keys`` partition, read through flash
    encryption (``nvs_flash_read_security_cfg``); ``None`` if there is none or the app
    does not use NVS encryption."""
    if not (dev.config.nvs_encryption and dev.flash.encryption_enabled):
        return None
    table = dev.partition_table()
    keys_part = next(
        (
            p
            for p in (table.partitions if table else ())
            if p.type == DATA_TYPE and p.subtype == NVS_KEYS_SUBTYPE
        ),
        None,
    )
    if keys_part is None:
        return None
    raw = PartitionFlash(dev.flash, keys_part).read(0, min(keys_part.size, 0x1000))
    return None if raw[:64] == b"\xff" * 64 else NvsKeys.parse(raw)


def device_nvs_keys(dev: VirtualDevice) -> NvsKeys | None:
    """The NVS encryption keys this device's app would use, or ``None`` for plain NVS.

    An initialised ``nvs_keys`` partition read through flash encryption wins; otherwise
    the keys derive from an ``HMAC_UP`` eFuse key, if one is burned.
    """
    if not dev.config.nvs_encryption:
        return None
    from_partition = nvs_keys_from_partition(dev)
    if from_partition is not None:
        return from_partition
    efuses = dev.efuses
    hmac_up = efuses.layout.purpose("HMAC_UP").id
    for block in efuses.layout.key_blocks:
        if efuses.key_purpose(block) == hmac_up:
            try:
                return NvsKeys.from_hmac_key(efuses.hardware_block(block))
            except KeyUnavailableError as exc:
                raise EspsecError(f"NVS HMAC key in {block.name}: {exc}") from None
    raise UsageError(
        "NVS encryption is on but the device has neither an initialised nvs_keys "
        "partition nor an HMAC_UP eFuse key"
    )


def read_device_nvs(
    dev: VirtualDevice, partition: str = "nvs", *, keys: NvsKeys | None = None
) -> NvsContents:
    """The contents of an NVS partition on ``dev`` as its app reads them."""
    region = device_partition(dev, partition)
    data = region.read(0, region.size)
    return read_partition(data, keys=keys if keys is not None else device_nvs_keys(dev))
