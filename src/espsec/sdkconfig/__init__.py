"""ESP-IDF build configuration: the Kconfig options espsec knows, as a table, and the
resolver that turns any input into one typed :class:`BootloaderConfig`.

* :mod:`~espsec.sdkconfig.options` holds the table: one row per upstream ``config`` or
  ``choice`` (type, default, ``depends on``, ``select``, ``range``, the chips it applies
  to), the ``sdkconfig.rename`` entries, each group citing its ESP-IDF Kconfig file;
* :mod:`~espsec.sdkconfig.inputs` reads ``sdkconfig`` / ``sdkconfig.defaults`` text,
  kconfgen's ``sdkconfig.json`` and ``NAME=VALUE`` lists into one kind of assignments;
* :mod:`~espsec.sdkconfig.resolve` applies the table to assignments: defaults,
  dependencies, selects and choices, as Kconfig does, refusing what Kconfig would drop.

A facts layer: it imports only :mod:`espsec.chips` and :mod:`espsec.errors`.

Example::

    from espsec.sdkconfig import BootloaderConfig

    config = BootloaderConfig.from_name_values(["SECURE_BOOT=y", "SECURE_FLASH_ENC_ENABLED=y"])
    assert config.secure_boot_v2_enabled and config.secure_flash_uart_bootloader_allow_enc
"""

from espsec.sdkconfig.config import (
    FLASH_SIZES,
    BootloaderConfig,
    EcdsaKeyLen,
    FlashEncryptionKeySize,
    FlashEncryptionMode,
    NvsSecKeyProtection,
    OptionValue,
    RomDownloadMode,
    SignedAppsScheme,
)
from espsec.sdkconfig.inputs import read_json, read_name_values, read_sdkconfig
from espsec.sdkconfig.options import TABLE
from espsec.sdkconfig.resolve import Assignment, Assignments, SdkconfigError, resolve

__all__ = [
    "FLASH_SIZES",
    "TABLE",
    "Assignment",
    "Assignments",
    "BootloaderConfig",
    "EcdsaKeyLen",
    "FlashEncryptionKeySize",
    "FlashEncryptionMode",
    "NvsSecKeyProtection",
    "OptionValue",
    "RomDownloadMode",
    "SdkconfigError",
    "SignedAppsScheme",
    "read_json",
    "read_name_values",
    "read_sdkconfig",
    "resolve",
]
