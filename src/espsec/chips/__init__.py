"""The chip catalogue: facts about each ESP32 target, as data.

Sources (ESP-IDF v5.5): ``components/soc/<chip>/include/soc/soc_caps.h`` (Secure Boot
schemes, XTS-AES key sizes, key digest slots, the other ``SOC_*`` capabilities),
``esp_app_format.h`` (image chip ids), ``components/esp_rom/<chip>/Kconfig.soc_caps.in``
(ROM bootloader offset), ``components/bootloader/Kconfig.app_rollback`` (secure version
field width), ``components/bootloader_support/src/<chip>/flash_encryption_secure_
features.c`` (download-mode cache eFuses), ``components/esp_hw_support/port/<chip>/
Kconfig.hw_support`` (the ``<CHIP>_REV_MIN_*`` revisions), espefuse's
``efuse/<chip>/fields.py`` (which eFuse table a revision uses).
"""

from __future__ import annotations

from dataclasses import dataclass

from espsec.errors import UsageError

#: Secure Boot v2 signature schemes by the names espsecure uses.
RSA3072 = "rsa3072"
ECDSA192 = "ecdsa192"
ECDSA256 = "ecdsa256"
ECDSA384 = "ecdsa384"
SCHEMES = (RSA3072, ECDSA192, ECDSA256, ECDSA384)

MAX_FLASH_SIZE = 128 << 20
"""The largest SPI flash an ESP image header can name, and so any chip boots from
(ESP-IDF ``esp_app_format.h`` ``ESP_IMAGE_FLASH_SIZE_128MB``; esptool ``FLASH_SIZES``)."""

DEFAULT_CHIP = "esp32s3"
"""The target assumed when none is named: espsec's primary target (ESP-IDF itself falls
back to ``esp32``, which espsec does not model)."""


@dataclass(frozen=True)
class MemoryRegion:
    """One address range of a chip's memory map, named as esptool ``image-info`` names it."""

    start: int
    end: int
    """Exclusive."""
    name: str


@dataclass(frozen=True)
class LoadAddresses:
    """Where a typical ESP-IDF build loads each kind of segment (synthetic images, demos).

    ``drom`` and ``irom`` are the first flash-mapped page of each bus; the others are the
    start of the segment in internal RAM.
    """

    drom: int
    irom: int
    dram: int
    iram: int
    bootloader_dram: int
    bootloader_iram: int


@dataclass(frozen=True)
class EfuseTable:
    """One eFuse layout of a chip, and the first wafer revision that has it."""

    name: str
    """The table espsec models it with: ``espsec/efuse/data/<name>.json``, generated from
    espefuse's ``efuse_defs/<name>.yaml``."""
    since: int = 0
    """First chip revision (major * 100 + minor) with this layout; espefuse loads the
    table with the highest ``since`` at or below the chip's revision."""


@dataclass(frozen=True)
class GatedScheme:
    """A Secure Boot v2 scheme the ROM accepts only from a chip revision on, and only
    once an eFuse selects its digest (ESP32-P4: ECDSA-P384 needs v3.0+ and
    ``SECURE_BOOT_SHA384_EN``; the ESP-IDF bootloader burns it on the first boot)."""

    scheme: str
    since: int
    efuse: str
    """The eFuse that switches the ROM to this scheme's digest; with it burned the ROM
    verifies this scheme only (``docs/en/security/secure-boot-v2.rst``: keys of other
    curves alongside P-384 fail verification)."""


def parse_revision(text: str) -> int:
    """A chip revision as ``major * 100 + minor``: ``v3.1``, ``3.1`` or ``301``."""
    raw = text.strip().lower()
    named = raw.startswith("v")  # vMAJOR.MINOR; a bare number is major * 100 + minor
    raw = raw.removeprefix("v")
    major, dot, minor = raw.partition(".")
    try:
        if dot or named:
            if not (major.isdigit() and minor.isdigit() and len(minor) <= 2):
                raise ValueError
            return int(major) * 100 + int(minor)
        value = int(raw)
    except ValueError:
        raise UsageError(
            f"not a chip revision: {text!r} (expected vMAJOR.MINOR, e.g. v3.1)"
        ) from None
    if value < 0:
        raise UsageError(f"not a chip revision: {text!r} (expected vMAJOR.MINOR, e.g. v3.1)")
    return value


def revision_name(revision: int) -> str:
    """``301`` -> ``v3.1`` (how esptool and ESP-IDF write a revision)."""
    return f"v{revision // 100}.{revision % 100}"


#: SPI flash frequency names and image-header codes (esptool ``FLASH_FREQUENCY``).
_FLASH_FREQS_DEFAULT = (("80m", 0xF), ("40m", 0x0), ("26m", 0x1), ("20m", 0x2))


@dataclass(frozen=True)
class Chip:
    """One target's security-relevant facts."""

    name: str
    """espsec / esptool name, e.g. ``esp32s3``."""
    display_name: str
    image_chip_id: int
    """``chip_id`` in the image extended header and in ``GET_SECURITY_INFO``."""
    bootloader_offset: int
    """``ESP_ROM_BOOTLOADER_OFFSET_FLASH``: where the ROM loads the bootloader from."""
    secure_boot_schemes: frozenset[str]
    """Secure Boot v2 schemes the ROM verifies (``SOC_SECURE_BOOT_V2_RSA`` / ``_ECC``)."""
    xts_key_bits: tuple[int, ...]
    """Flash-encryption key file sizes in bits (256: XTS-AES-128, 512: XTS-AES-256)."""
    key_digest_slots: int = 3
    """``SOC_EFUSE_SECURE_BOOT_KEY_DIGESTS``."""
    partition_table_offset: int = 0x8000
    peripherals: frozenset[str] = frozenset({"hmac", "ds"})
    notes: str = ""
    arch: str = "riscv"
    """CPU architecture, as Kconfig's ``IDF_TARGET_ARCH`` (``xtensa`` or ``riscv``)."""
    memory_map: tuple[MemoryRegion, ...] = ()
    """Address ranges by memory type, in esptool's ``MEMORY_MAP`` order (``image info``)."""
    flash_freqs: tuple[tuple[str, int], ...] = _FLASH_FREQS_DEFAULT
    """SPI flash frequency names and their codes in the image header (low nibble of byte 3)."""
    mmu_page_size: int = 0x10000
    """Flash MMU page size of a default build (``CONFIG_MMU_PAGE_SIZE``)."""
    rev_max_full: int = 0xFFFF
    """Default ``CONFIG_ESP_REV_MAX_FULL``: the ``max_chip_rev_full`` ESP-IDF builds write."""
    load_addresses: LoadAddresses | None = None
    secure_download_mode: bool = True
    """``SOC_SUPPORTS_SECURE_DL_MODE``: the ROM has a secure download mode."""
    secure_version_bits: int = 16
    """Width of the app ``SECURE_VERSION`` eFuse field: the default and largest
    ``CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD`` (32 on ESP32, 4 on ESP32-C2, 9 on
    ESP32-C5)."""
    extra_soc_caps: frozenset[str] = frozenset()
    """Boolean ``SOC_*`` capabilities no other field states (see :attr:`soc_caps`)."""
    uart_download_cache_fields: tuple[str, ...] = ()
    """eFuses ``esp_flash_encryption_enable_secure_features`` burns to shut flash cache
    access out of UART download mode, unless ``SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE``."""
    gated_schemes: tuple[GatedScheme, ...] = ()
    """Schemes of :attr:`secure_boot_schemes` the ROM accepts only on some revisions and
    with an eFuse burned (see :meth:`rom_schemes`)."""
    xts_pseudo_round_since: int | None = None
    """``spi_flash_encrypt_ll_is_pseudo_rounds_function_supported`` on an eFuse-modelled
    chip: the build's minimum chip revision (``CONFIG_ESP_REV_MIN_FULL``, the bootloader
    header's ``min_chip_rev_full``) from which the first boot burns
    ``XTS_DPA_PSEUDO_LEVEL`` (ESP32-P4: v3.0); ``None``: it never does."""
    efuse_tables: tuple[EfuseTable, ...] = ()
    """The eFuse layouts espsec models the chip with, oldest first; empty: no eFuse model,
    and so no virtual device."""
    revisions: tuple[int, ...] = (0,)
    """The wafer revisions the data knows (ESP-IDF's ``<CHIP>_REV_MIN_*`` choices),
    oldest first; a new virtual chip is the newest unless told otherwise."""

    @property
    def efuse_table(self) -> str | None:
        """The first eFuse table (a fresh, blank chip reads as revision v0.0)."""
        return self.efuse_tables[0].name if self.efuse_tables else None

    @property
    def latest_revision(self) -> int:
        """The newest revision in :attr:`revisions`."""
        return self.revisions[-1]

    def efuse_table_for(self, revision: int) -> EfuseTable:
        """The eFuse layout of silicon at ``revision`` (espefuse's choice, e.g. ESP32-P4
        ``esp32p4_v3.0`` from v3.0 on)."""
        if not self.efuse_tables:
            raise UsageError(f"no eFuse model for {self.display_name}")
        return [t for t in self.efuse_tables if t.since <= revision][-1]

    def require_revision(self, revision: int) -> None:
        """Raise :class:`UsageError` unless ``revision`` is one of :attr:`revisions`."""
        if revision not in self.revisions:
            known = ", ".join(revision_name(r) for r in self.revisions)
            raise UsageError(
                f"{self.display_name} has no revision {revision_name(revision)} (known: {known})"
            )

    @property
    def soc_caps(self) -> frozenset[str]:
        """Every boolean ``SOC_*`` capability the chip has, by its ``soc_caps.h`` name: those
        the other fields imply plus :attr:`extra_soc_caps`."""
        implied = {
            "SOC_SECURE_BOOT_SUPPORTED": bool(self.secure_boot_schemes),
            "SOC_SECURE_BOOT_V2_RSA": RSA3072 in self.secure_boot_schemes,
            "SOC_SECURE_BOOT_V2_ECC": bool(self.secure_boot_schemes - {RSA3072}),
            "SOC_FLASH_ENC_SUPPORTED": bool(self.xts_key_bits),
            "SOC_FLASH_ENCRYPTION_XTS_AES": bool(self.xts_key_bits),
            "SOC_FLASH_ENCRYPTION_XTS_AES_128": 256 in self.xts_key_bits,
            "SOC_FLASH_ENCRYPTION_XTS_AES_256": 512 in self.xts_key_bits,
            "SOC_FLASH_ENCRYPTION_XTS_AES_OPTIONS": len(self.xts_key_bits) > 1,
            "SOC_HMAC_SUPPORTED": "hmac" in self.peripherals,
            "SOC_DIG_SIGN_SUPPORTED": "ds" in self.peripherals,
            "SOC_ECDSA_SUPPORTED": "ecdsa" in self.peripherals,
            "SOC_SUPPORTS_SECURE_DL_MODE": self.secure_download_mode,
        }
        return frozenset(name for name, has in implied.items() if has) | self.extra_soc_caps

    def gate(self, scheme: str | None) -> GatedScheme | None:
        """The revision / eFuse gate of ``scheme`` on this chip, if it has one."""
        return next((g for g in self.gated_schemes if g.scheme == scheme), None)

    def rom_schemes(self, revision: int, burned: frozenset[str]) -> frozenset[str]:
        """The schemes the ROM of silicon at ``revision`` verifies, given the eFuses set
        among the gates' (``burned``): a burned gate leaves its scheme alone; an
        unburned one, or one before its revision, removes it."""
        for g in self.gated_schemes:
            if revision >= g.since and g.efuse in burned:
                return frozenset({g.scheme})
        return self.secure_boot_schemes - {g.scheme for g in self.gated_schemes}

    def require_scheme(self, scheme: str) -> None:
        """Raise :class:`UsageError` unless this chip's ROM accepts ``scheme``."""
        if scheme not in self.secure_boot_schemes:
            accepted = ", ".join(s for s in SCHEMES if s in self.secure_boot_schemes)
            raise UsageError(
                f"{self.display_name} ROM does not accept Secure Boot v2 scheme {scheme} "
                f"(accepts: {accepted})"
            )


_ECC_ROM = frozenset({RSA3072, ECDSA192, ECDSA256})
# SOC_* capabilities every modelled chip has (soc_caps.h).
_COMMON_CAPS = frozenset(
    {
        "SOC_EFUSE_REVOKE_BOOT_KEY_DIGESTS",
        "SOC_RTC_FAST_MEM_SUPPORTED",
        "SOC_SUPPORT_SECURE_BOOT_REVOKE_KEY",
    }
)


_RADIO_CAPS = frozenset({"SOC_WIFI_SUPPORTED", "SOC_BT_SUPPORTED", "SOC_BLE_SUPPORTED"})
"""A 2.4 GHz Wi-Fi and Bluetooth LE radio (``soc_caps.h``; ESP32-H2 has Bluetooth only)."""
_PMP_CAPS = frozenset(
    {"SOC_CPU_IDRAM_SPLIT_USING_PMP", "SOC_APM_SUPPORTED", "SOC_LP_CORE_SUPPORTED"}
)
"""RISC-V memory protection: the CPU's PMP splits IRAM/DRAM; the APM peripheral guards
memory and peripherals by privilege (``soc_caps.h``)."""


def _regions(*rows: tuple[int, int, str]) -> tuple[MemoryRegion, ...]:
    return tuple(MemoryRegion(start, end, name) for start, end, name in rows)


# Memory maps (TRM "Address Mapping"), in the order esptool 5.6.0 lists them, so that
# ``image info`` names a segment's memory types as ``esptool image-info`` does.
_S3_MEMORY_MAP = _regions(
    (0x00000000, 0x00010000, "PADDING"),
    (0x3C000000, 0x3D000000, "DROM"),
    (0x3D000000, 0x3E000000, "EXTRAM_DATA"),
    (0x600FE000, 0x60100000, "RTC_DRAM"),
    (0x3FC88000, 0x3FD00000, "BYTE_ACCESSIBLE"),
    (0x3FC88000, 0x403E2000, "MEM_INTERNAL"),
    (0x3FC88000, 0x3FD00000, "DRAM"),
    (0x40000000, 0x4001A100, "IROM_MASK"),
    (0x40370000, 0x403E0000, "IRAM"),
    (0x600FE000, 0x60100000, "RTC_IRAM"),
    (0x42000000, 0x42800000, "IROM"),
    (0x50000000, 0x50002000, "RTC_DATA"),
)
_P4_MEMORY_MAP = _regions(
    (0x00000000, 0x00010000, "PADDING"),
    (0x40000000, 0x4C000000, "DROM"),
    (0x4FF00000, 0x4FFA0000, "DRAM"),
    (0x4FF00000, 0x4FFA0000, "BYTE_ACCESSIBLE"),
    (0x4FC00000, 0x4FC20000, "DROM_MASK"),
    (0x4FC00000, 0x4FC20000, "IROM_MASK"),
    (0x40000000, 0x4C000000, "IROM"),
    (0x4FF00000, 0x4FFA0000, "IRAM"),
    (0x50108000, 0x50110000, "RTC_IRAM"),
    (0x50108000, 0x50110000, "RTC_DRAM"),
    (0x600FE000, 0x60100000, "MEM_INTERNAL2"),
)
_C3_MEMORY_MAP = _regions(
    (0x00000000, 0x00010000, "PADDING"),
    (0x3C000000, 0x3C800000, "DROM"),
    (0x3FC80000, 0x3FCE0000, "DRAM"),
    (0x3FC88000, 0x3FD00000, "BYTE_ACCESSIBLE"),
    (0x3FF00000, 0x3FF20000, "DROM_MASK"),
    (0x40000000, 0x40060000, "IROM_MASK"),
    (0x42000000, 0x42800000, "IROM"),
    (0x4037C000, 0x403E0000, "IRAM"),
    (0x50000000, 0x50002000, "RTC_IRAM"),
    (0x50000000, 0x50002000, "RTC_DRAM"),
    (0x600FE000, 0x60100000, "MEM_INTERNAL2"),
)
# esptool 5.6.0 gives the ESP32-H2 the ESP32-C6 map.
_C6_MEMORY_MAP = _regions(
    (0x00000000, 0x00010000, "PADDING"),
    (0x42000000, 0x43000000, "DROM"),
    (0x40800000, 0x40880000, "DRAM"),
    (0x40800000, 0x40880000, "BYTE_ACCESSIBLE"),
    (0x4004AC00, 0x40050000, "DROM_MASK"),
    (0x40000000, 0x4004AC00, "IROM_MASK"),
    (0x42000000, 0x43000000, "IROM"),
    (0x40800000, 0x40880000, "IRAM"),
    (0x50000000, 0x50004000, "RTC_IRAM"),
    (0x50000000, 0x50004000, "RTC_DRAM"),
    (0x600FE000, 0x60100000, "MEM_INTERNAL2"),
)

CHIPS: dict[str, Chip] = {
    c.name: c
    for c in (
        Chip(
            "esp32s3",
            "ESP32-S3",
            arch="xtensa",
            memory_map=_S3_MEMORY_MAP,
            rev_max_full=99,
            load_addresses=LoadAddresses(
                drom=0x3C000000,
                irom=0x42000000,
                dram=0x3FC88000,
                iram=0x40374000,
                bootloader_dram=0x3FCE2820,
                bootloader_iram=0x403C8700,
            ),
            image_chip_id=9,
            bootloader_offset=0x0,
            secure_boot_schemes=frozenset({RSA3072}),
            xts_key_bits=(256, 512),
            extra_soc_caps=_COMMON_CAPS
            | {
                "SOC_CONFIGURABLE_VDDSDIO_SUPPORTED",
                "SOC_EFUSE_DIS_DOWNLOAD_DCACHE",
                "SOC_EFUSE_DIS_DOWNLOAD_ICACHE",
                "SOC_EFUSE_DIS_ICACHE",
                "SOC_SPI_MEM_SUPPORT_CACHE_32BIT_ADDR_MAP",
                "SOC_SPI_MEM_SUPPORT_FLASH_OPI_MODE",
                *_RADIO_CAPS,
                "SOC_MEMPROT_SUPPORTED",
            },
            uart_download_cache_fields=("DIS_DOWNLOAD_DCACHE", "DIS_DOWNLOAD_ICACHE"),
            efuse_tables=(EfuseTable("esp32s3"),),
            revisions=(0, 1, 2),
        ),
        Chip(
            "esp32p4",
            "ESP32-P4",
            memory_map=_P4_MEMORY_MAP,
            rev_max_full=199,
            load_addresses=LoadAddresses(
                drom=0x40000000,
                irom=0x40000000,
                dram=0x4FF20000,
                iram=0x4FF00000,
                bootloader_dram=0x4FF3A000,
                bootloader_iram=0x4FF2C000,
            ),
            image_chip_id=0x12,
            bootloader_offset=0x2000,
            secure_boot_schemes=frozenset({RSA3072, ECDSA192, ECDSA256, ECDSA384}),
            xts_key_bits=(256, 512),
            peripherals=frozenset({"hmac", "ds", "ecdsa"}),
            notes="ECDSA P-384 Secure Boot needs chip revision v3.0+ (SECURE_BOOT_SHA384_EN)",
            gated_schemes=(GatedScheme(ECDSA384, since=300, efuse="SECURE_BOOT_SHA384_EN"),),
            # esp_hal_mspi/esp32p4/.../spi_flash_encrypted_ll.h: CHIP_SUPPORT_MIN_REV >= 300.
            xts_pseudo_round_since=300,
            extra_soc_caps=_COMMON_CAPS
            | {
                "SOC_ECDSA_SUPPORT_CURVE_P384",
                "SOC_FLASH_ENCRYPTION_XTS_AES_SUPPORT_PSEUDO_ROUND",
                "SOC_KEY_MANAGER_SUPPORTED",
                "SOC_KEY_MANAGER_FE_KEY_DEPLOY",
                "SOC_RECOVERY_BOOTLOADER_SUPPORTED",
                "SOC_SPI_MEM_SUPPORT_CACHE_32BIT_ADDR_MAP",
                "SOC_WIRELESS_HOST_SUPPORTED",
                *_PMP_CAPS,
            },
            uart_download_cache_fields=("SPI_DOWNLOAD_MSPI_DIS",),
            # espefuse efuse/esp32p4/fields.py: "esp32p4_v3.0" if chip_revision >= 300.
            efuse_tables=(EfuseTable("esp32p4"), EfuseTable("esp32p4_v3.0", since=300)),
            revisions=(0, 1, 100, 300, 301),
        ),
        Chip(
            "esp32c3",
            "ESP32-C3",
            memory_map=_C3_MEMORY_MAP,
            rev_max_full=199,
            load_addresses=LoadAddresses(
                drom=0x3C000000,
                irom=0x42000000,
                dram=0x3FC88000,
                iram=0x40380000,
                bootloader_dram=0x3FCD5820,
                bootloader_iram=0x403CC000,
            ),
            image_chip_id=5,
            bootloader_offset=0x0,
            secure_boot_schemes=frozenset({RSA3072}),
            xts_key_bits=(256,),
            extra_soc_caps=_COMMON_CAPS
            | _RADIO_CAPS
            | {"SOC_EFUSE_DIS_DOWNLOAD_ICACHE", "SOC_EFUSE_DIS_ICACHE", "SOC_MEMPROT_SUPPORTED"},
        ),
        Chip(
            "esp32c6",
            "ESP32-C6",
            memory_map=_C6_MEMORY_MAP,
            flash_freqs=(("80m", 0x0), ("40m", 0x0), ("20m", 0x2)),
            rev_max_full=99,
            load_addresses=LoadAddresses(
                drom=0x42000000,
                irom=0x42000000,
                dram=0x40810000,
                iram=0x40800000,
                bootloader_dram=0x4086C000,
                bootloader_iram=0x40860000,
            ),
            image_chip_id=0x0D,
            bootloader_offset=0x0,
            secure_boot_schemes=_ECC_ROM,
            xts_key_bits=(256,),
            peripherals=frozenset({"hmac", "ds"}),
            extra_soc_caps=_COMMON_CAPS
            | _RADIO_CAPS
            | _PMP_CAPS
            | {"SOC_EFUSE_DIS_DOWNLOAD_ICACHE", "SOC_EFUSE_DIS_ICACHE"},
        ),
        Chip(
            "esp32h2",
            "ESP32-H2",
            memory_map=_C6_MEMORY_MAP,
            flash_freqs=(("48m", 0xF), ("24m", 0x0), ("16m", 0x1), ("12m", 0x2)),
            rev_max_full=99,
            load_addresses=LoadAddresses(
                drom=0x42000000,
                irom=0x42000000,
                dram=0x40810000,
                iram=0x40800000,
                bootloader_dram=0x4083C000,
                bootloader_iram=0x40830000,
            ),
            image_chip_id=0x10,
            bootloader_offset=0x0,
            secure_boot_schemes=_ECC_ROM,
            xts_key_bits=(256,),
            peripherals=frozenset({"hmac", "ds", "ecdsa"}),
            extra_soc_caps=_COMMON_CAPS
            | _PMP_CAPS - {"SOC_LP_CORE_SUPPORTED"}
            | {"SOC_BT_SUPPORTED", "SOC_BLE_SUPPORTED"}
            | {"SOC_EFUSE_DIS_ICACHE", "SOC_FLASH_ENCRYPTION_XTS_AES_SUPPORT_PSEUDO_ROUND"},
        ),
    )
}


EFUSE_MODEL_CHIPS: tuple[str, ...] = tuple(c.name for c in CHIPS.values() if c.efuse_table)
"""Chips espsec has an eFuse model for, and so a virtual device."""


def get_chip(name: str) -> Chip:
    """Look up a chip by name (``esp32s3``, ``ESP32-S3`` and ``esp32-s3`` all work)."""
    key = name.lower().replace("-", "").replace("_", "")
    try:
        return CHIPS[key]
    except KeyError:
        raise UsageError(f"unknown chip {name!r} (known: {', '.join(CHIPS)})") from None


def chip_by_image_id(chip_id: int) -> Chip | None:
    """The chip whose image header ``chip_id`` is ``chip_id``, if espsec knows it."""
    return next((c for c in CHIPS.values() if c.image_chip_id == chip_id), None)
