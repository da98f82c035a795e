"""Flash encryption: the chip's XTS-AES flash cipher, keys, and whole-flash images.

* :mod:`~espsec.flash_encryption.xts`: standard XTS-AES over many data units at once
  (vectorised; also used by NVS encryption);
* :mod:`~espsec.flash_encryption.cipher`: the flash cipher (128-byte units, tweak from
  the flash address, per-unit byte reversal), in memory, streaming and file to file;
* :mod:`~espsec.flash_encryption.keys`: key files as espsecure reads them;
* :mod:`~espsec.flash_encryption.whole_flash`: the flash image a device holds after
  flashing a partition table and its files (or an ESP-IDF ``build/`` folder).

The whole-flash names load on first use: encrypting one file (or an NVS partition)
does not import the image and partition-table code.
"""

from typing import TYPE_CHECKING, Any

from espsec.flash_encryption.cipher import (
    FlashCipher,
    decrypt_flash_data,
    encrypt_flash_data,
    process_file,
)
from espsec.flash_encryption.keys import FlashEncryptionKey, generate_key_file, load_key
from espsec.flash_encryption.xts import XtsEngine, tweaks_from_le32, xts_decrypt, xts_encrypt

if TYPE_CHECKING:
    from espsec.flash_encryption.whole_flash import (
        BuildLayout,
        EncryptedFlash,
        FlashWrite,
        PlacedWrite,
        encrypt_flash,
        load_build_dir,
        parse_flash_size,
        read_partition,
    )

_WHOLE_FLASH = frozenset(
    {
        "BuildLayout",
        "EncryptedFlash",
        "FlashWrite",
        "PlacedWrite",
        "encrypt_flash",
        "load_build_dir",
        "parse_flash_size",
        "read_partition",
    }
)


def __getattr__(name: str) -> Any:
    if name in _WHOLE_FLASH:
        from espsec.flash_encryption import whole_flash

        return getattr(whole_flash, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BuildLayout",
    "EncryptedFlash",
    "FlashCipher",
    "FlashEncryptionKey",
    "FlashWrite",
    "PlacedWrite",
    "XtsEngine",
    "decrypt_flash_data",
    "encrypt_flash",
    "encrypt_flash_data",
    "generate_key_file",
    "load_build_dir",
    "load_key",
    "parse_flash_size",
    "process_file",
    "read_partition",
    "tweaks_from_le32",
    "xts_decrypt",
    "xts_encrypt",
]
