"""App and bootloader image containers: header, segments, descriptors, checks, builders.

Format code does no IO: pass bytes to :func:`parse_image`, get bytes from ``to_bytes()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from espsec._lazy import lazy_exports

if TYPE_CHECKING:
    from espsec.image.app_image import (
        DIGEST_SIZE,
        MAX_SEGMENT_LEN,
        SECTOR_SIZE,
        SEGMENT_HEADER_SIZE,
        EspImage,
        Segment,
        calculate_checksum,
        check_segment_count,
        check_segment_length,
        parse_image,
    )
    from espsec.image.builders import build_app_image, build_bootloader_image
    from espsec.image.descriptors import (
        APP_DESC_MAGIC,
        APP_DESC_SIZE,
        BOOTLOADER_DESC_MAGIC,
        BOOTLOADER_DESC_SIZE,
        DESC_OFFSET,
        AppDesc,
        BootloaderDesc,
        find_app_desc,
        find_bootloader_desc,
        find_descriptor,
    )
    from espsec.image.header import (
        HEADER_SIZE,
        IMAGE_MAGIC,
        MAX_SEGMENTS,
        WP_PIN_DISABLED,
        ImageHeader,
        SpiMode,
    )
    from espsec.image.info import ImageInfo, SegmentInfo, image_info
    from espsec.image.otadata import (
        ERASED_ENTRY,
        OTADATA_SIZE,
        OtaData,
        OtadataWrite,
        OtaImgState,
        OtaSelectEntry,
        ota_select_crc,
        select_otadata,
    )
    from espsec.image.partition_table import Partition, PartitionTable, load_partition_table
    from espsec.image.validate import (
        ImageKind,
        check_checksum,
        check_chip,
        check_digest,
        check_flash_mapping,
        image_kind,
        memory_types,
        verify_image,
    )

_LAZY = {
    "APP_DESC_MAGIC": "espsec.image.descriptors",
    "APP_DESC_SIZE": "espsec.image.descriptors",
    "AppDesc": "espsec.image.descriptors",
    "BOOTLOADER_DESC_MAGIC": "espsec.image.descriptors",
    "BOOTLOADER_DESC_SIZE": "espsec.image.descriptors",
    "BootloaderDesc": "espsec.image.descriptors",
    "DESC_OFFSET": "espsec.image.descriptors",
    "DIGEST_SIZE": "espsec.image.app_image",
    "ERASED_ENTRY": "espsec.image.otadata",
    "EspImage": "espsec.image.app_image",
    "HEADER_SIZE": "espsec.image.header",
    "IMAGE_MAGIC": "espsec.image.header",
    "ImageHeader": "espsec.image.header",
    "ImageInfo": "espsec.image.info",
    "ImageKind": "espsec.image.validate",
    "MAX_SEGMENTS": "espsec.image.header",
    "MAX_SEGMENT_LEN": "espsec.image.app_image",
    "OTADATA_SIZE": "espsec.image.otadata",
    "OtaData": "espsec.image.otadata",
    "OtaImgState": "espsec.image.otadata",
    "OtaSelectEntry": "espsec.image.otadata",
    "OtadataWrite": "espsec.image.otadata",
    "Partition": "espsec.image.partition_table",
    "PartitionTable": "espsec.image.partition_table",
    "SECTOR_SIZE": "espsec.image.app_image",
    "SEGMENT_HEADER_SIZE": "espsec.image.app_image",
    "Segment": "espsec.image.app_image",
    "SegmentInfo": "espsec.image.info",
    "SpiMode": "espsec.image.header",
    "WP_PIN_DISABLED": "espsec.image.header",
    "build_app_image": "espsec.image.builders",
    "build_bootloader_image": "espsec.image.builders",
    "calculate_checksum": "espsec.image.app_image",
    "check_checksum": "espsec.image.validate",
    "check_chip": "espsec.image.validate",
    "check_digest": "espsec.image.validate",
    "check_flash_mapping": "espsec.image.validate",
    "check_segment_count": "espsec.image.app_image",
    "check_segment_length": "espsec.image.app_image",
    "find_app_desc": "espsec.image.descriptors",
    "find_bootloader_desc": "espsec.image.descriptors",
    "find_descriptor": "espsec.image.descriptors",
    "image_info": "espsec.image.info",
    "image_kind": "espsec.image.validate",
    "load_partition_table": "espsec.image.partition_table",
    "memory_types": "espsec.image.validate",
    "ota_select_crc": "espsec.image.otadata",
    "parse_image": "espsec.image.app_image",
    "select_otadata": "espsec.image.otadata",
    "verify_image": "espsec.image.validate",
}
"""Where each public name lives, loaded on first use: a command that parses one image
does not import the partition table, otadata or the builders."""


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "APP_DESC_MAGIC",
    "APP_DESC_SIZE",
    "BOOTLOADER_DESC_MAGIC",
    "BOOTLOADER_DESC_SIZE",
    "DESC_OFFSET",
    "DIGEST_SIZE",
    "ERASED_ENTRY",
    "HEADER_SIZE",
    "IMAGE_MAGIC",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_LEN",
    "OTADATA_SIZE",
    "SECTOR_SIZE",
    "SEGMENT_HEADER_SIZE",
    "WP_PIN_DISABLED",
    "AppDesc",
    "BootloaderDesc",
    "EspImage",
    "ImageHeader",
    "ImageInfo",
    "ImageKind",
    "OtaData",
    "OtaImgState",
    "OtaSelectEntry",
    "OtadataWrite",
    "Partition",
    "PartitionTable",
    "Segment",
    "SegmentInfo",
    "SpiMode",
    "build_app_image",
    "build_bootloader_image",
    "calculate_checksum",
    "check_checksum",
    "check_chip",
    "check_digest",
    "check_flash_mapping",
    "check_segment_count",
    "check_segment_length",
    "find_app_desc",
    "find_bootloader_desc",
    "find_descriptor",
    "image_info",
    "image_kind",
    "load_partition_table",
    "memory_types",
    "ota_select_crc",
    "parse_image",
    "select_otadata",
    "verify_image",
]
