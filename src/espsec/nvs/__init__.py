"""Secure storage: NVS partitions, NVS encryption and the NVS runtime.

Host side: :func:`generate_partition` builds images byte-identical to
``esp-idf-nvs-partition-gen`` from rows (:func:`load_csv` reads its CSV format;
:func:`generate_csv_file` does both in one fast pass, :func:`write_csv_partition`
writes its image to a file as it is made),
:func:`read_partition` reads any image back, :class:`NvsKeys` is the ``nvs_keys``
partition and the HMAC-derived scheme, :func:`encrypt_partition` /
:func:`decrypt_partition` convert images.

Device side: :class:`NvsStore` is ESP-IDF's NVS API (``nvs_open``, ``nvs_set_*``,
``nvs_get_*``, ``nvs_erase_*``, ``nvs_commit``) over a
:class:`~espsec.flash.FlashRegion` (the virtual device's partitions, or an
:class:`~espsec.flash.NorFlash`), power-loss safe like ESP-IDF's.

Format: ESP-IDF ``components/nvs_flash/src/nvs_page.cpp``, ``nvs_types.cpp``,
``nvs_encrypted_partition.cpp`` and ``private_include/nvs_constants.h``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from espsec._lazy import lazy_exports

if TYPE_CHECKING:
    from espsec.nvs.csv_format import (
        DataRow,
        NamespaceRow,
        Row,
        dump_csv,
        load_csv,
        parse_csv,
        rows_from_entries,
    )
    from espsec.nvs.encryption import decrypt_partition, encrypt_partition
    from espsec.nvs.entry import NvsEntry
    from espsec.nvs.generator import (
        generate_csv_file,
        generate_csv_partition,
        generate_partition,
        write_csv_partition,
    )
    from espsec.nvs.item import Item
    from espsec.nvs.layout import EntryState, ItemType, PageState
    from espsec.nvs.nvs_keys import NvsKeys, generate_hmac_key
    from espsec.nvs.page import PageHeader, PageImage
    from espsec.nvs.reader import NvsContents, read_partition
    from espsec.nvs.runtime import NvsError, NvsHandle, NvsStats, NvsStore, OpenMode
    from espsec.nvs.value import Value, ValueType

_LAZY = {
    "DataRow": "espsec.nvs.csv_format",
    "EntryState": "espsec.nvs.layout",
    "Item": "espsec.nvs.item",
    "ItemType": "espsec.nvs.layout",
    "NamespaceRow": "espsec.nvs.csv_format",
    "NvsContents": "espsec.nvs.reader",
    "NvsEntry": "espsec.nvs.entry",
    "NvsError": "espsec.nvs.runtime",
    "NvsHandle": "espsec.nvs.runtime",
    "NvsKeys": "espsec.nvs.nvs_keys",
    "NvsStats": "espsec.nvs.runtime",
    "NvsStore": "espsec.nvs.runtime",
    "OpenMode": "espsec.nvs.runtime",
    "PageHeader": "espsec.nvs.page",
    "PageImage": "espsec.nvs.page",
    "PageState": "espsec.nvs.layout",
    "Row": "espsec.nvs.csv_format",
    "Value": "espsec.nvs.value",
    "ValueType": "espsec.nvs.value",
    "decrypt_partition": "espsec.nvs.encryption",
    "dump_csv": "espsec.nvs.csv_format",
    "encrypt_partition": "espsec.nvs.encryption",
    "generate_csv_file": "espsec.nvs.generator",
    "generate_csv_partition": "espsec.nvs.generator",
    "generate_hmac_key": "espsec.nvs.nvs_keys",
    "generate_partition": "espsec.nvs.generator",
    "load_csv": "espsec.nvs.csv_format",
    "parse_csv": "espsec.nvs.csv_format",
    "read_partition": "espsec.nvs.reader",
    "rows_from_entries": "espsec.nvs.csv_format",
    "write_csv_partition": "espsec.nvs.generator",
}
"""Where each public name lives, loaded on first use: generating a plain partition
does not import NumPy, the XTS engine or the runtime store."""


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "DataRow",
    "EntryState",
    "Item",
    "ItemType",
    "NamespaceRow",
    "NvsContents",
    "NvsEntry",
    "NvsError",
    "NvsHandle",
    "NvsKeys",
    "NvsStats",
    "NvsStore",
    "OpenMode",
    "PageHeader",
    "PageImage",
    "PageState",
    "Row",
    "Value",
    "ValueType",
    "decrypt_partition",
    "dump_csv",
    "encrypt_partition",
    "generate_csv_file",
    "generate_csv_partition",
    "generate_hmac_key",
    "generate_partition",
    "load_csv",
    "parse_csv",
    "read_partition",
    "rows_from_entries",
    "write_csv_partition",
]
