"""Flash encryption: the chip's XTS-AES flash cipher, keys, and whole-flash images.

* :mod:`~espsec.flash_encryption.xts`: standard XTS-AES over many data units at once
  (vectorised; also used by NVS encryption);
* :mod:`~espsec.flash_encryption.cipher`: the flash cipher (128-byte units, tweak from
  the flash address, per-unit byte reversal), in memory, streaming and file to file;
* :mod:`~espsec.flash_encryption.keys`: key files as espsecure reads them;
* :mod:`~espsec.flash_encryption.whole_flash`: the flash image a device holds after
  flashing a partition table and its files (or an ESP-IDF ``build/`` folder).

Every name loads on first use (the XTS engine imports NumPy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from espsec._lazy import lazy_exports

if TYPE_CHECKING:
    from espsec.flash_encryption.cipher import (
        FlashCipher,
        decrypt_flash_data,
        encrypt_flash_data,
        process_file,
    )
    from espsec.flash_encryption.keys import FlashEncryptionKey, generate_key_file, load_key
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
    from espsec.flash_encryption.xts import (
        XtsEngine,
        tweaks_from_le32,
        xts_decrypt,
        xts_encrypt,
    )

_LAZY = {
    "BuildLayout": "espsec.flash_encryption.whole_flash",
    "EncryptedFlash": "espsec.flash_encryption.whole_flash",
    "FlashCipher": "espsec.flash_encryption.cipher",
    "FlashEncryptionKey": "espsec.flash_encryption.keys",
    "FlashWrite": "espsec.flash_encryption.whole_flash",
    "PlacedWrite": "espsec.flash_encryption.whole_flash",
    "XtsEngine": "espsec.flash_encryption.xts",
    "decrypt_flash_data": "espsec.flash_encryption.cipher",
    "encrypt_flash": "espsec.flash_encryption.whole_flash",
    "encrypt_flash_data": "espsec.flash_encryption.cipher",
    "generate_key_file": "espsec.flash_encryption.keys",
    "load_build_dir": "espsec.flash_encryption.whole_flash",
    "load_key": "espsec.flash_encryption.keys",
    "parse_flash_size": "espsec.flash_encryption.whole_flash",
    "process_file": "espsec.flash_encryption.cipher",
    "read_partition": "espsec.flash_encryption.whole_flash",
    "tweaks_from_le32": "espsec.flash_encryption.xts",
    "xts_decrypt": "espsec.flash_encryption.xts",
    "xts_encrypt": "espsec.flash_encryption.xts",
}
"""Where each public name lives, loaded on first use: a key file loads without NumPy,
and encrypting one file (or an NVS partition) without the image and partition-table
code."""


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


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
