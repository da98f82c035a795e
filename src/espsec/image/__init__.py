"""App and bootloader image containers: header, segments, descriptors, checks, builders.

Format code does no IO: pass bytes to :func:`parse_image`, get bytes from ``to_bytes()``.
"""

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

__all__ = [
    "APP_DESC_MAGIC",
    "APP_DESC_SIZE",
    "BOOTLOADER_DESC_MAGIC",
    "BOOTLOADER_DESC_SIZE",
    "DESC_OFFSET",
    "DIGEST_SIZE",
    "HEADER_SIZE",
    "IMAGE_MAGIC",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_LEN",
    "SECTOR_SIZE",
    "SEGMENT_HEADER_SIZE",
    "WP_PIN_DISABLED",
    "AppDesc",
    "BootloaderDesc",
    "EspImage",
    "ImageHeader",
    "ImageInfo",
    "ImageKind",
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
    "memory_types",
    "parse_image",
    "verify_image",
]
