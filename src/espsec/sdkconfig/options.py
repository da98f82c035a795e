"""The option table: every ESP-IDF Kconfig option espsec knows, one row each.

The rows are ESP-IDF v5.5's Kconfig (rows added later say which release added them, and
two v5.5 rows that v6.0 removed say so), written in Kconfig's own words: see
:mod:`espsec.sdkconfig.table` for the row format. Each group cites the upstream file it
copies; a group covers its file completely, so that a real ``sdkconfig`` parses and a
misspelt name in these namespaces is caught.

Where upstream spells a chip fact as a per-target condition that espsec keeps on the
chip record instead, the row reads the chip-derived symbol (``ESP_ROM_BOOTLOADER_
OFFSET_FLASH``, ``CHIP_SECURE_VERSION_BITS``; see :mod:`espsec.sdkconfig.resolve`).
Selects of other components' options (``MBEDTLS_*``, ``SPI_FLASH_*``) are kept: they
matter when the selected symbol is one these rows read.
"""

from __future__ import annotations

import dataclasses

from espsec.sdkconfig.table import BOOL, HEX, INT, STRING, Choice, Option, Rename, Table


def _rows(source: str, *entries: Option | Choice) -> tuple[Option | Choice, ...]:
    return tuple(dataclasses.replace(entry, source=source) for entry in entries)


# components/bootloader/Kconfig.projbuild
_BOOTLOADER = _rows(
    "components/bootloader/Kconfig.projbuild",
    # v5.5 lists the offset per target; v6.1 reads the ROM capability, as here.
    Option(
        "BOOTLOADER_OFFSET_IN_FLASH",
        HEX,
        prompt=False,
        default=("ESP_ROM_BOOTLOADER_OFFSET_FLASH",),
    ),
    Choice("BOOTLOADER_COMPILER_OPTIMIZATION", default=("BOOTLOADER_COMPILER_OPTIMIZATION_SIZE",)),
    Option(
        "BOOTLOADER_COMPILER_OPTIMIZATION_SIZE", BOOL, choice="BOOTLOADER_COMPILER_OPTIMIZATION"
    ),
    Option(
        "BOOTLOADER_COMPILER_OPTIMIZATION_DEBUG", BOOL, choice="BOOTLOADER_COMPILER_OPTIMIZATION"
    ),
    Option(
        "BOOTLOADER_COMPILER_OPTIMIZATION_PERF", BOOL, choice="BOOTLOADER_COMPILER_OPTIMIZATION"
    ),
    # v5.5 only: v6.0 renames it to BOOTLOADER_COMPILER_OPTIMIZATION_DEBUG
    Option(
        "BOOTLOADER_COMPILER_OPTIMIZATION_NONE",
        BOOL,
        choice="BOOTLOADER_COMPILER_OPTIMIZATION",
        depends="IDF_TARGET_ARCH_XTENSA || IDF_TARGET_ESP32C3 || IDF_TARGET_ESP32C2",
    ),
    # ESP-IDF v6.0
    Option(
        "BOOTLOADER_CPU_CLK_FREQ_MHZ",
        INT,
        prompt=False,
        default=(
            "64 if IDF_TARGET_ESP32H2",
            "48 if IDF_TARGET_ESP32H21 || IDF_TARGET_ESP32H4",
            "90 if IDF_TARGET_ESP32P4 && ESP32P4_SELECTS_REV_LESS_V3",
            "100 if IDF_TARGET_ESP32P4 && !ESP32P4_SELECTS_REV_LESS_V3",
            "80",
        ),
    ),
    Option(
        "BOOTLOADER_SPI_CUSTOM_WP_PIN",
        BOOL,
        depends="IDF_TARGET_ESP32 && (ESPTOOLPY_FLASHMODE_QIO || ESPTOOLPY_FLASHMODE_QOUT)",
        default=("y if BOOTLOADER_SPI_WP_PIN != 7", "n"),
    ),
    Option(
        "BOOTLOADER_SPI_WP_PIN",
        INT,
        depends="IDF_TARGET_ESP32 && (ESPTOOLPY_FLASHMODE_QIO || ESPTOOLPY_FLASHMODE_QOUT)",
        default=("7",),
        range=("0 33",),
    ),
    Option("BOOTLOADER_FLASH_DC_AWARE", BOOL),
    Option("BOOTLOADER_FLASH_XMC_SUPPORT", BOOL, default=("y",)),
    Option(
        "BOOTLOADER_FLASH_32BIT_ADDR",
        BOOL,
        prompt=False,
        default=(
            (
                "y if ESPTOOLPY_FLASHSIZE_32MB || ESPTOOLPY_FLASHSIZE_64MB"
                " || ESPTOOLPY_FLASHSIZE_128MB"
            ),
            "n",
        ),
    ),
    Option(
        "BOOTLOADER_FLASH_NEEDS_32BIT_FEAT",
        BOOL,
        prompt=False,
        default=("y if BOOTLOADER_FLASH_32BIT_ADDR && !ESPTOOLPY_OCT_FLASH",),
    ),
    Option(
        "BOOTLOADER_FLASH_NEEDS_32BIT_ADDR_QUAD_FLASH",
        BOOL,
        prompt=False,
        default=(
            "y if BOOTLOADER_FLASH_NEEDS_32BIT_FEAT && SOC_SPI_MEM_SUPPORT_CACHE_32BIT_ADDR_MAP",
        ),
    ),
    Option(
        "BOOTLOADER_CACHE_32BIT_ADDR_QUAD_FLASH",
        BOOL,
        depends="BOOTLOADER_FLASH_NEEDS_32BIT_ADDR_QUAD_FLASH && IDF_EXPERIMENTAL_FEATURES",
        default=("n",),
    ),
    Option(
        "BOOTLOADER_CACHE_32BIT_ADDR_OCTAL_FLASH",
        BOOL,
        prompt=False,
        default=("y if ESPTOOLPY_OCT_FLASH && BOOTLOADER_FLASH_32BIT_ADDR", "n"),
    ),
    Choice(
        "BOOTLOADER_VDDSDIO_BOOST",
        depends="SOC_CONFIGURABLE_VDDSDIO_SUPPORTED",
        default=("BOOTLOADER_VDDSDIO_BOOST_1_9V",),
    ),
    Option(
        "BOOTLOADER_VDDSDIO_BOOST_1_8V",
        BOOL,
        choice="BOOTLOADER_VDDSDIO_BOOST",
        depends="!ESPTOOLPY_FLASHFREQ_80M",
    ),
    Option("BOOTLOADER_VDDSDIO_BOOST_1_9V", BOOL, choice="BOOTLOADER_VDDSDIO_BOOST"),
    Option(
        "BOOTLOADER_FACTORY_RESET",
        BOOL,
        default=("n",),
        select=("BOOTLOADER_RESERVE_RTC_MEM if SOC_RTC_FAST_MEM_SUPPORTED",),
    ),
    Option(
        "BOOTLOADER_NUM_PIN_FACTORY_RESET",
        INT,
        depends="BOOTLOADER_FACTORY_RESET",
        default=("4",),
        range=(
            "0 39 if IDF_TARGET_ESP32",
            "0 46 if IDF_TARGET_ESP32S2",
            "0 48 if IDF_TARGET_ESP32S3",
            "0 20 if IDF_TARGET_ESP32C2",
            "0 21 if IDF_TARGET_ESP32C3 || IDF_TARGET_ESP32C61",
            "0 28 if IDF_TARGET_ESP32C5",
            "0 30 if IDF_TARGET_ESP32C6",
            "0 27 if IDF_TARGET_ESP32H2",
            "0 54 if IDF_TARGET_ESP32P4",
        ),
    ),
    Choice(
        "BOOTLOADER_FACTORY_RESET_PIN_LEVEL",
        depends="BOOTLOADER_FACTORY_RESET",
        default=("BOOTLOADER_FACTORY_RESET_PIN_LOW",),
    ),
    Option("BOOTLOADER_FACTORY_RESET_PIN_LOW", BOOL, choice="BOOTLOADER_FACTORY_RESET_PIN_LEVEL"),
    Option("BOOTLOADER_FACTORY_RESET_PIN_HIGH", BOOL, choice="BOOTLOADER_FACTORY_RESET_PIN_LEVEL"),
    Option("BOOTLOADER_OTA_DATA_ERASE", BOOL, depends="BOOTLOADER_FACTORY_RESET"),
    Option(
        "BOOTLOADER_DATA_FACTORY_RESET",
        STRING,
        depends="BOOTLOADER_FACTORY_RESET",
        default=('"nvs"',),
    ),
    Option("BOOTLOADER_APP_TEST", BOOL, depends="!BOOTLOADER_APP_ANTI_ROLLBACK", default=("n",)),
    Option(
        "BOOTLOADER_NUM_PIN_APP_TEST",
        INT,
        depends="BOOTLOADER_APP_TEST",
        default=("18",),
        range=(
            "0 39 if IDF_TARGET_ESP32",
            "0 46 if IDF_TARGET_ESP32S2",
            "0 48 if IDF_TARGET_ESP32S3",
            "0 20 if IDF_TARGET_ESP32C2",
            "0 21 if IDF_TARGET_ESP32C3 || IDF_TARGET_ESP32C61",
            "0 28 if IDF_TARGET_ESP32C5",
            "0 30 if IDF_TARGET_ESP32C6",
            "0 27 if IDF_TARGET_ESP32H2",
            "0 54 if IDF_TARGET_ESP32P4",
        ),
    ),
    Choice(
        "BOOTLOADER_APP_TEST_PIN_LEVEL",
        depends="BOOTLOADER_APP_TEST",
        default=("BOOTLOADER_APP_TEST_PIN_LOW",),
    ),
    Option("BOOTLOADER_APP_TEST_PIN_LOW", BOOL, choice="BOOTLOADER_APP_TEST_PIN_LEVEL"),
    Option("BOOTLOADER_APP_TEST_PIN_HIGH", BOOL, choice="BOOTLOADER_APP_TEST_PIN_LEVEL"),
    Option(
        "BOOTLOADER_HOLD_TIME_GPIO",
        INT,
        depends="BOOTLOADER_FACTORY_RESET || BOOTLOADER_APP_TEST",
        default=("5",),
    ),
    Option("BOOTLOADER_REGION_PROTECTION_ENABLE", BOOL, default=("y",)),
    Option("BOOTLOADER_WDT_ENABLE", BOOL, default=("y",)),
    Option(
        "BOOTLOADER_WDT_DISABLE_IN_USER_CODE", BOOL, depends="BOOTLOADER_WDT_ENABLE", default=("n",)
    ),
    Option(
        "BOOTLOADER_WDT_TIME_MS",
        INT,
        depends="BOOTLOADER_WDT_ENABLE",
        default=("9000",),
        range=("0 120000",),
    ),
    Option(
        "BOOTLOADER_SKIP_VALIDATE_IN_DEEP_SLEEP",
        BOOL,
        depends="((SECURE_BOOT && SECURE_BOOT_INSECURE) || !SECURE_BOOT)",
        default=("n",),
        select=("BOOTLOADER_RESERVE_RTC_MEM if SOC_RTC_FAST_MEM_SUPPORTED",),
    ),
    Option(
        "BOOTLOADER_SKIP_VALIDATE_ON_POWER_ON",
        BOOL,
        depends="!SECURE_SIGNED_ON_BOOT",
        default=("n",),
    ),
    Option(
        "BOOTLOADER_SKIP_VALIDATE_ALWAYS",
        BOOL,
        depends="!SECURE_SIGNED_ON_BOOT",
        default=("n",),
        select=(
            "BOOTLOADER_SKIP_VALIDATE_IN_DEEP_SLEEP if SOC_RTC_FAST_MEM_SUPPORTED",
            "BOOTLOADER_SKIP_VALIDATE_ON_POWER_ON",
        ),
    ),
    Option(
        "BOOTLOADER_RESERVE_RTC_SIZE",
        HEX,
        prompt=False,
        depends="SOC_RTC_FAST_MEM_SUPPORTED",
        default=("0x10 if BOOTLOADER_RESERVE_RTC_MEM", "0"),
    ),
    Option(
        "BOOTLOADER_CUSTOM_RESERVE_RTC",
        BOOL,
        depends="SOC_RTC_FAST_MEM_SUPPORTED",
        default=("n",),
        select=("BOOTLOADER_RESERVE_RTC_MEM",),
    ),
    Option(
        "BOOTLOADER_CUSTOM_RESERVE_RTC_IN_CRC",
        BOOL,
        depends="BOOTLOADER_CUSTOM_RESERVE_RTC",
        default=("n",),
    ),
    Option(
        "BOOTLOADER_CUSTOM_RESERVE_RTC_SIZE",
        HEX,
        depends="BOOTLOADER_CUSTOM_RESERVE_RTC",
        default=("0",),
    ),
    Option("BOOTLOADER_RESERVE_RTC_MEM", BOOL, prompt=False, depends="SOC_RTC_FAST_MEM_SUPPORTED"),
    # menu "Security features"
    Option(
        "SECURE_SIGNED_ON_BOOT",
        BOOL,
        prompt=False,
        depends="SECURE_BOOT || SECURE_SIGNED_ON_BOOT_NO_SECURE_BOOT",
        default=("y",),
    ),
    Option(
        "SECURE_SIGNED_ON_UPDATE",
        BOOL,
        prompt=False,
        depends="SECURE_BOOT || SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT",
        default=("y",),
    ),
    Option(
        "SECURE_SIGNED_APPS",
        BOOL,
        prompt=False,
        depends="SECURE_SIGNED_ON_BOOT || SECURE_SIGNED_ON_UPDATE",
        default=("y",),
        select=(
            "MBEDTLS_ECP_DP_SECP256R1_ENABLED",
            "MBEDTLS_ECP_C",
            "MBEDTLS_ECDH_C",
            "MBEDTLS_ECDSA_C",
        ),
    ),
    Option(
        "SECURE_BOOT_V2_RSA_SUPPORTED",
        BOOL,
        prompt=False,
        depends="(IDF_TARGET_ESP32 && ESP32_REV_MIN_FULL >= 300) || SOC_SECURE_BOOT_V2_RSA",
        default=("y",),
    ),
    Option(
        "SECURE_BOOT_V2_ECC_SUPPORTED",
        BOOL,
        prompt=False,
        depends="SOC_SECURE_BOOT_V2_ECC",
        default=("y",),
    ),
    Option(
        "SECURE_BOOT_V2_ECDSA_INSECURE",
        BOOL,
        prompt=False,
        default=(
            (
                "y if IDF_TARGET_ESP32C5 || IDF_TARGET_ESP32C61 || IDF_TARGET_ESP32H2"
                " || IDF_TARGET_ESP32P4"
            ),
        ),
    ),
    Option(
        "SECURE_BOOT_V1_SUPPORTED", BOOL, prompt=False, depends="SOC_SECURE_BOOT_V1", default=("y",)
    ),
    Option(
        "SECURE_BOOT_V2_PREFERRED",
        BOOL,
        prompt=False,
        depends="ESP32_REV_MIN_FULL >= 300",
        default=("y",),
    ),
    Option(
        "SECURE_BOOT_V2_ECDSA_ENABLED",
        BOOL,
        prompt=False,
        default=("y if SECURE_BOOT_V2_ENABLED && SECURE_BOOT_V2_ECC_SUPPORTED",),
    ),
    Option(
        "SECURE_BOOT_V2_RSA_ENABLED",
        BOOL,
        prompt=False,
        default=("y if SECURE_BOOT_V2_ENABLED && SECURE_BOOT_V2_RSA_SUPPORTED",),
    ),
    Option(
        "SECURE_BOOT_FLASH_ENC_KEYS_BURN_TOGETHER",
        BOOL,
        prompt=False,
        default=(
            "y if SOC_EFUSE_CONSISTS_OF_ONE_KEY_BLOCK && SECURE_BOOT && SECURE_FLASH_ENC_ENABLED",
        ),
    ),
    Option("SECURE_SIGNED_APPS_NO_SECURE_BOOT", BOOL, depends="!SECURE_BOOT"),
    Choice(
        "SECURE_SIGNED_APPS_SCHEME",
        depends="SECURE_BOOT || SECURE_SIGNED_APPS_NO_SECURE_BOOT",
        default=(
            "SECURE_SIGNED_APPS_ECDSA_SCHEME if SECURE_BOOT_V1_ENABLED",
            "SECURE_SIGNED_APPS_RSA_SCHEME if SECURE_BOOT_V2_RSA_SUPPORTED",
            "SECURE_SIGNED_APPS_ECDSA_V2_SCHEME if SECURE_BOOT_V2_ECC_SUPPORTED",
        ),
    ),
    Option(
        "SECURE_SIGNED_APPS_ECDSA_SCHEME",
        BOOL,
        choice="SECURE_SIGNED_APPS_SCHEME",
        depends=(
            "SECURE_BOOT_V1_SUPPORTED && (SECURE_SIGNED_APPS_NO_SECURE_BOOT"
            " || SECURE_BOOT_V1_ENABLED)"
        ),
    ),
    Option(
        "SECURE_SIGNED_APPS_RSA_SCHEME",
        BOOL,
        choice="SECURE_SIGNED_APPS_SCHEME",
        depends=(
            "(SECURE_BOOT_V2_RSA_SUPPORTED && (SECURE_SIGNED_APPS_NO_SECURE_BOOT"
            " || SECURE_BOOT_V2_ENABLED)) && !(IDF_TARGET_ESP32C5 && ESP32C5_REV_MIN_FULL < 1)"
        ),
    ),
    Option(
        "SECURE_SIGNED_APPS_ECDSA_V2_SCHEME",
        BOOL,
        choice="SECURE_SIGNED_APPS_SCHEME",
        depends=(
            "(SECURE_BOOT_V2_ECC_SUPPORTED && (SECURE_SIGNED_APPS_NO_SECURE_BOOT"
            " || SECURE_BOOT_V2_ENABLED)) && (!SECURE_BOOT_V2_ENABLED"
            " || (!SECURE_BOOT_V2_ECDSA_INSECURE || SECURE_BOOT_V2_FORCE_ENABLE_ECDSA))"
        ),
    ),
    Choice(
        "SECURE_BOOT_ECDSA_KEY_LEN_SIZE",
        depends="SECURE_SIGNED_APPS_ECDSA_V2_SCHEME",
        default=("SECURE_BOOT_ECDSA_KEY_LEN_256_BITS",),
    ),
    # v5.5 only (removed in v6.0)
    Option(
        "SECURE_BOOT_ECDSA_KEY_LEN_192_BITS",
        BOOL,
        choice="SECURE_BOOT_ECDSA_KEY_LEN_SIZE",
        depends="SECURE_SIGNED_APPS_ECDSA_V2_SCHEME",
    ),
    Option(
        "SECURE_BOOT_ECDSA_KEY_LEN_256_BITS",
        BOOL,
        choice="SECURE_BOOT_ECDSA_KEY_LEN_SIZE",
        depends="SECURE_SIGNED_APPS_ECDSA_V2_SCHEME",
    ),
    Option(
        "SECURE_BOOT_ECDSA_KEY_LEN_384_BITS",
        BOOL,
        choice="SECURE_BOOT_ECDSA_KEY_LEN_SIZE",
        # ESP-IDF v6.0: ESP32-P4 revisions before v3.0 have no P-384 Secure Boot.
        depends=(
            "SECURE_SIGNED_APPS_ECDSA_V2_SCHEME && SOC_ECDSA_SUPPORT_CURVE_P384"
            " && !ESP32P4_SELECTS_REV_LESS_V3"
        ),
    ),
    Option(
        "SECURE_SIGNED_ON_BOOT_NO_SECURE_BOOT",
        BOOL,
        depends="SECURE_SIGNED_APPS_NO_SECURE_BOOT && SECURE_SIGNED_APPS_ECDSA_SCHEME",
        default=("n",),
    ),
    Option(
        "SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT",
        BOOL,
        depends="SECURE_SIGNED_APPS_NO_SECURE_BOOT",
        default=("y",),
    ),
    Option(
        "SECURE_BOOT",
        BOOL,
        depends="SOC_SECURE_BOOT_SUPPORTED && !(IDF_TARGET_ESP32C3 && ESP32C3_REV_MIN_FULL < 3)",
        default=("n",),
        select=("ESPTOOLPY_NO_STUB if !IDF_TARGET_ESP32 && !IDF_TARGET_ESP32S2",),
    ),
    Choice(
        "SECURE_BOOT_VERSION",
        depends="SECURE_BOOT",
        default=("SECURE_BOOT_V2_ENABLED if SECURE_BOOT_V2_PREFERRED",),
    ),
    Option(
        "SECURE_BOOT_V1_ENABLED",
        BOOL,
        choice="SECURE_BOOT_VERSION",
        depends="SECURE_BOOT_V1_SUPPORTED",
    ),
    Option(
        "SECURE_BOOT_V2_ENABLED",
        BOOL,
        choice="SECURE_BOOT_VERSION",
        depends="SECURE_BOOT_V2_RSA_SUPPORTED || SECURE_BOOT_V2_ECC_SUPPORTED",
    ),
    Choice(
        "SECURE_BOOTLOADER_MODE",
        depends="SECURE_BOOT_V1_ENABLED",
        default=("SECURE_BOOTLOADER_ONE_TIME_FLASH",),
    ),
    Option("SECURE_BOOTLOADER_ONE_TIME_FLASH", BOOL, choice="SECURE_BOOTLOADER_MODE"),
    Option("SECURE_BOOTLOADER_REFLASHABLE", BOOL, choice="SECURE_BOOTLOADER_MODE"),
    Option("SECURE_BOOT_BUILD_SIGNED_BINARIES", BOOL, depends="SECURE_SIGNED_APPS", default=("y",)),
    Option(
        "SECURE_BOOT_SIGNING_KEY",
        STRING,
        depends="SECURE_BOOT_BUILD_SIGNED_BINARIES",
        default=('"secure_boot_signing_key.pem"',),
    ),
    Option(
        "SECURE_BOOT_VERIFICATION_KEY",
        STRING,
        depends=(
            "SECURE_SIGNED_APPS && SECURE_SIGNED_APPS_ECDSA_SCHEME"
            " && !SECURE_BOOT_BUILD_SIGNED_BINARIES"
        ),
        default=('"signature_verification_key.bin"',),
    ),
    Option(
        "SECURE_BOOT_ENABLE_AGGRESSIVE_KEY_REVOKE",
        BOOL,
        depends="SECURE_BOOT && SOC_SUPPORT_SECURE_BOOT_REVOKE_KEY",
        default=("n",),
    ),
    Option(
        "SECURE_BOOT_V2_ALLOW_EFUSE_RD_DIS", BOOL, depends="SECURE_BOOT_V2_ENABLED", default=("n",)
    ),
    Option(
        "SECURE_BOOT_FLASH_BOOTLOADER_DEFAULT",
        BOOL,
        depends="SECURE_BOOT_V2_ENABLED",
        default=("n",),
    ),
    Choice(
        "SECURE_BOOTLOADER_KEY_ENCODING",
        depends="SECURE_BOOTLOADER_REFLASHABLE",
        default=("SECURE_BOOTLOADER_KEY_ENCODING_256BIT",),
    ),
    Option("SECURE_BOOTLOADER_KEY_ENCODING_256BIT", BOOL, choice="SECURE_BOOTLOADER_KEY_ENCODING"),
    Option("SECURE_BOOTLOADER_KEY_ENCODING_192BIT", BOOL, choice="SECURE_BOOTLOADER_KEY_ENCODING"),
    Option("SECURE_BOOT_INSECURE", BOOL, depends="SECURE_BOOT", default=("n",)),
    Option(
        "SECURE_FLASH_ENC_ENABLED",
        BOOL,
        default=("n",),
        select=("SPI_FLASH_ENABLE_ENCRYPTED_READ_WRITE",),
    ),
    # ESP-IDF v6.0
    Choice(
        "SECURE_FLASH_ENCRYPTION_KEY_SOURCE",
        depends="SECURE_FLASH_ENC_ENABLED",
        default=("SECURE_FLASH_ENCRYPTION_KEY_SOURCE_EFUSES",),
    ),
    # ESP-IDF v6.0
    Option(
        "SECURE_FLASH_ENCRYPTION_KEY_SOURCE_EFUSES",
        BOOL,
        choice="SECURE_FLASH_ENCRYPTION_KEY_SOURCE",
    ),
    # ESP-IDF v6.0
    Option(
        "SECURE_FLASH_ENCRYPTION_KEY_SOURCE_KEY_MGR",
        BOOL,
        choice="SECURE_FLASH_ENCRYPTION_KEY_SOURCE",
        depends=(
            "SOC_KEY_MANAGER_SUPPORTED && SOC_KEY_MANAGER_FE_KEY_DEPLOY && !(IDF_TARGET_ESP32P4"
            " && ESP32P4_SELECTS_REV_LESS_V3)"
        ),
    ),
    Choice(
        "SECURE_FLASH_ENCRYPTION_KEYSIZE",
        depends="SOC_FLASH_ENCRYPTION_XTS_AES_OPTIONS && SECURE_FLASH_ENC_ENABLED",
        default=("SECURE_FLASH_ENCRYPTION_AES128",),
    ),
    Option(
        "SECURE_FLASH_ENCRYPTION_AES128_DERIVED",
        BOOL,
        choice="SECURE_FLASH_ENCRYPTION_KEYSIZE",
        depends="SOC_FLASH_ENCRYPTION_XTS_AES_128_DERIVED",
    ),
    Option(
        "SECURE_FLASH_ENCRYPTION_AES128",
        BOOL,
        choice="SECURE_FLASH_ENCRYPTION_KEYSIZE",
        depends="SOC_FLASH_ENCRYPTION_XTS_AES_128 && !(IDF_TARGET_ESP32C2 && SECURE_BOOT)",
    ),
    Option(
        "SECURE_FLASH_ENCRYPTION_AES256",
        BOOL,
        choice="SECURE_FLASH_ENCRYPTION_KEYSIZE",
        depends="SOC_FLASH_ENCRYPTION_XTS_AES_256",
    ),
    Choice(
        "SECURE_FLASH_ENCRYPTION_MODE",
        depends="SECURE_FLASH_ENC_ENABLED",
        default=("SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",),
    ),
    Option(
        "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",
        BOOL,
        choice="SECURE_FLASH_ENCRYPTION_MODE",
        select=("SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC",),
    ),
    Option(
        "SECURE_FLASH_ENCRYPTION_MODE_RELEASE",
        BOOL,
        choice="SECURE_FLASH_ENCRYPTION_MODE",
        depends="!EFUSE_VIRTUAL || IDF_CI_BUILD",
        select=("PARTITION_TABLE_MD5 if !APP_COMPATIBLE_PRE_V3_1_BOOTLOADERS",),
    ),
    Option(
        "SECURE_FLASH_HAS_WRITE_PROTECTION_CACHE",
        BOOL,
        prompt=False,
        default=("y if (SOC_EFUSE_DIS_ICACHE || IDF_TARGET_ESP32) && SECURE_FLASH_ENC_ENABLED",),
    ),
    # menu "Potentially insecure options": each row depends on SECURE_BOOT_INSECURE or
    # development mode itself (the menu's "visible if" hides prompts, not values)
    Option(
        "SECURE_BOOT_V2_FORCE_ENABLE_ECDSA",
        BOOL,
        depends="SECURE_BOOT_INSECURE && SECURE_BOOT_V2_ECDSA_INSECURE",
        default=("n",),
    ),
    Option(
        "SECURE_BOOT_ALLOW_ROM_BASIC",
        BOOL,
        depends=(
            "(SECURE_BOOT_INSECURE || SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT) && IDF_TARGET_ESP32"
        ),
        default=("n",),
    ),
    Option(
        "SECURE_BOOT_ALLOW_JTAG",
        BOOL,
        depends="SECURE_BOOT_INSECURE || SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",
        default=("n",),
        select=(
            "SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE if SECURE_FLASH_HAS_WRITE_PROTECTION_CACHE",
        ),
    ),
    Option(
        "SECURE_BOOT_ALLOW_SHORT_APP_PARTITION",
        BOOL,
        depends="SECURE_BOOT_INSECURE || SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT",
    ),
    Option(
        "SECURE_BOOT_ALLOW_UNUSED_DIGEST_SLOTS",
        BOOL,
        depends="SECURE_BOOT_INSECURE && SOC_EFUSE_REVOKE_BOOT_KEY_DIGESTS",
        default=("n",),
    ),
    Option(
        "SECURE_BOOT_SKIP_WRITE_PROTECTION_SCA",
        BOOL,
        depends="SOC_ECDSA_SUPPORT_CURVE_P384 && SOC_FLASH_ENCRYPTION_XTS_AES_SUPPORT_PSEUDO_ROUND",
        default=(
            "y if SECURE_FLASH_PSEUDO_ROUND_FUNC && !SECURE_FLASH_ENCRYPTION_MODE_RELEASE",
            "n",
        ),
    ),
    Option(
        "SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC",
        BOOL,
        depends="SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",
        default=("n",),
        select=(
            "SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE if SECURE_FLASH_HAS_WRITE_PROTECTION_CACHE",
        ),
    ),
    Option(
        "SECURE_FLASH_UART_BOOTLOADER_ALLOW_DEC",
        BOOL,
        depends="SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT && IDF_TARGET_ESP32",
        default=("n",),
    ),
    Option(
        "SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE",
        BOOL,
        depends=(
            "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT && (IDF_TARGET_ESP32"
            " || SOC_EFUSE_DIS_DOWNLOAD_ICACHE || SOC_EFUSE_DIS_DOWNLOAD_DCACHE)"
        ),
        default=("n",),
        select=(
            "SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE if SECURE_FLASH_HAS_WRITE_PROTECTION_CACHE",
        ),
    ),
    # ESP-IDF v6.1 (master)
    Option(
        "SECURE_BOOT_REQUIRE_ALREADY_ENABLED", BOOL, depends="SECURE_BOOT_INSECURE", default=("n",)
    ),
    Option(
        "SECURE_FLASH_REQUIRE_ALREADY_ENABLED",
        BOOL,
        depends="SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",
        default=("n",),
    ),
    Option(
        "SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE",
        BOOL,
        depends="SECURE_FLASH_HAS_WRITE_PROTECTION_CACHE",
        default=("n",),
    ),
    Option(
        "SECURE_FLASH_ENCRYPT_ONLY_IMAGE_LEN_IN_APP_PART",
        BOOL,
        depends="SECURE_FLASH_ENC_ENABLED && !SECURE_FLASH_REQUIRE_ALREADY_ENABLED",
        default=("y",),
    ),
    Option(
        "SECURE_FLASH_CHECK_ENC_EN_IN_APP", BOOL, depends="SECURE_FLASH_ENC_ENABLED", default=("y",)
    ),
    Option(
        "SECURE_FLASH_PSEUDO_ROUND_FUNC",
        BOOL,
        # ESP-IDF v6.0: ESP32-P4 revisions before v3.0 have no pseudo rounds.
        depends=(
            "SECURE_FLASH_ENC_ENABLED && SOC_FLASH_ENCRYPTION_XTS_AES_SUPPORT_PSEUDO_ROUND"
            " && !ESP32P4_SELECTS_REV_LESS_V3"
        ),
        default=("y if SECURE_FLASH_ENCRYPTION_MODE_RELEASE", "n"),
    ),
    Choice(
        "SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH",
        depends="SECURE_FLASH_PSEUDO_ROUND_FUNC",
        default=("SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH_LOW",),
    ),
    Option(
        "SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH_LOW",
        BOOL,
        choice="SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH",
    ),
    Option(
        "SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH_MEDIUM",
        BOOL,
        choice="SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH",
    ),
    Option(
        "SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH_HIGH",
        BOOL,
        choice="SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH",
    ),
    Option(
        "SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH",
        INT,
        prompt=False,
        default=(
            "1 if SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH_LOW",
            "2 if SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH_MEDIUM",
            "3 if SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH_HIGH",
        ),
    ),
    Option(
        "SECURE_ROM_DL_MODE_ENABLED",
        BOOL,
        prompt=False,
        default=("y if SOC_SUPPORTS_SECURE_DL_MODE && !SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",),
    ),
    Choice(
        "SECURE_UART_ROM_DL_MODE",
        depends=(
            "(SECURE_BOOT_V2_ENABLED || SECURE_FLASH_ENC_ENABLED) && !(IDF_TARGET_ESP32"
            " && ESP32_REV_MIN_FULL < 300)"
        ),
        default=(
            "SECURE_ENABLE_SECURE_ROM_DL_MODE if SECURE_ROM_DL_MODE_ENABLED",
            "SECURE_INSECURE_ALLOW_DL_MODE",
        ),
    ),
    Option("SECURE_DISABLE_ROM_DL_MODE", BOOL, choice="SECURE_UART_ROM_DL_MODE"),
    Option(
        "SECURE_ENABLE_SECURE_ROM_DL_MODE",
        BOOL,
        choice="SECURE_UART_ROM_DL_MODE",
        depends="SOC_SUPPORTS_SECURE_DL_MODE",
        select=("ESPTOOLPY_NO_STUB",),
    ),
    Option("SECURE_INSECURE_ALLOW_DL_MODE", BOOL, choice="SECURE_UART_ROM_DL_MODE"),
)

# components/esp_bootloader_format/Kconfig.bootloader
_BOOTLOADER_FORMAT = _rows(
    "components/esp_bootloader_format/Kconfig.bootloader",
    Option("BOOTLOADER_COMPILE_TIME_DATE", BOOL, depends="!APP_REPRODUCIBLE_BUILD", default=("y",)),
    Option("BOOTLOADER_PROJECT_VER", INT, default=("1",), range=("0 4294967295",)),
)

# components/bootloader/Kconfig.app_rollback
_APP_ROLLBACK = _rows(
    "components/bootloader/Kconfig.app_rollback",
    Option("BOOTLOADER_APP_ROLLBACK_ENABLE", BOOL, default=("n",)),
    Option(
        "BOOTLOADER_APP_ANTI_ROLLBACK",
        BOOL,
        depends="BOOTLOADER_APP_ROLLBACK_ENABLE",
        default=("n",),
    ),
    Option(
        "BOOTLOADER_APP_SECURE_VERSION", INT, depends="BOOTLOADER_APP_ANTI_ROLLBACK", default=("0",)
    ),
    Option(
        "BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD",
        INT,
        depends="BOOTLOADER_APP_ANTI_ROLLBACK",
        # Upstream spells the width per target (32 on ESP32, 4 on ESP32-C2, 9 on ESP32-C5,
        # 16 elsewhere): it is the chip record's Chip.secure_version_bits.
        default=("CHIP_SECURE_VERSION_BITS",),
        range=("1 CHIP_SECURE_VERSION_BITS",),
    ),
    Option(
        "BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE",
        BOOL,
        depends="BOOTLOADER_APP_ANTI_ROLLBACK",
        default=("n",),
        select=("EFUSE_VIRTUAL", "EFUSE_VIRTUAL_KEEP_IN_FLASH"),
    ),
)

# components/bootloader/Kconfig.bootloader_rollback
_BOOTLOADER_ROLLBACK = _rows(
    "components/bootloader/Kconfig.bootloader_rollback",
    Option(
        "BOOTLOADER_RECOVERY_ENABLE",
        BOOL,
        depends="SOC_RECOVERY_BOOTLOADER_SUPPORTED",
        default=("n",),
    ),
    Option(
        "BOOTLOADER_RECOVERY_OFFSET",
        HEX,
        depends="BOOTLOADER_RECOVERY_ENABLE",
        default=("0x3F0000",),
        range=("0x0 0xFFE000",),
    ),
    Option(
        "BOOTLOADER_ANTI_ROLLBACK_ENABLE",
        BOOL,
        depends="BOOTLOADER_RECOVERY_ENABLE",
        default=("n",),
    ),
    Option(
        "BOOTLOADER_SECURE_VERSION",
        INT,
        depends="BOOTLOADER_ANTI_ROLLBACK_ENABLE",
        default=("0",),
        range=("0 4",),
    ),
)

# components/bootloader/Kconfig.log
_BOOTLOADER_LOG = _rows(
    "components/bootloader/Kconfig.log",
    Choice("BOOTLOADER_LOG_VERSION"),
    Option(
        "BOOTLOADER_LOG_VERSION_1", BOOL, prompt="LOG_VERSION_1", choice="BOOTLOADER_LOG_VERSION"
    ),
    Option(
        "BOOTLOADER_LOG_VERSION_2", BOOL, prompt="LOG_VERSION_2", choice="BOOTLOADER_LOG_VERSION"
    ),
    Option(
        "BOOTLOADER_LOG_VERSION",
        INT,
        prompt=False,
        default=("1 if BOOTLOADER_LOG_VERSION_1", "2 if BOOTLOADER_LOG_VERSION_2"),
    ),
    Choice("BOOTLOADER_LOG_LEVEL", default=("BOOTLOADER_LOG_LEVEL_INFO",)),
    Option("BOOTLOADER_LOG_LEVEL_NONE", BOOL, choice="BOOTLOADER_LOG_LEVEL"),
    Option("BOOTLOADER_LOG_LEVEL_ERROR", BOOL, choice="BOOTLOADER_LOG_LEVEL"),
    Option("BOOTLOADER_LOG_LEVEL_WARN", BOOL, choice="BOOTLOADER_LOG_LEVEL"),
    Option("BOOTLOADER_LOG_LEVEL_INFO", BOOL, choice="BOOTLOADER_LOG_LEVEL"),
    Option("BOOTLOADER_LOG_LEVEL_DEBUG", BOOL, choice="BOOTLOADER_LOG_LEVEL"),
    Option("BOOTLOADER_LOG_LEVEL_VERBOSE", BOOL, choice="BOOTLOADER_LOG_LEVEL"),
    Option(
        "BOOTLOADER_LOG_LEVEL",
        INT,
        prompt=False,
        default=(
            "0 if BOOTLOADER_LOG_LEVEL_NONE",
            "1 if BOOTLOADER_LOG_LEVEL_ERROR",
            "2 if BOOTLOADER_LOG_LEVEL_WARN",
            "3 if BOOTLOADER_LOG_LEVEL_INFO",
            "4 if BOOTLOADER_LOG_LEVEL_DEBUG",
            "5 if BOOTLOADER_LOG_LEVEL_VERBOSE",
        ),
    ),
)

# components/bootloader/Kconfig.log.format
_BOOTLOADER_LOG_FORMAT = _rows(
    "components/bootloader/Kconfig.log.format",
    Option(
        "BOOTLOADER_LOG_COLORS",
        BOOL,
        default=("n",),
        select=("BOOTLOADER_LOG_COLORS_SUPPORT if BOOTLOADER_LOG_VERSION_2",),
    ),
    Option(
        "BOOTLOADER_LOG_COLORS_SUPPORT", BOOL, depends="BOOTLOADER_LOG_VERSION_2", default=("n",)
    ),
    Choice(
        "BOOTLOADER_LOG_TIMESTAMP_SOURCE", default=("BOOTLOADER_LOG_TIMESTAMP_SOURCE_CPU_TICKS",)
    ),
    Option(
        "BOOTLOADER_LOG_TIMESTAMP_SOURCE_NONE",
        BOOL,
        choice="BOOTLOADER_LOG_TIMESTAMP_SOURCE",
        depends="BOOTLOADER_LOG_VERSION_2",
    ),
    Option(
        "BOOTLOADER_LOG_TIMESTAMP_SOURCE_CPU_TICKS",
        BOOL,
        choice="BOOTLOADER_LOG_TIMESTAMP_SOURCE",
        select=("BOOTLOADER_LOG_TIMESTAMP_SUPPORT if BOOTLOADER_LOG_VERSION_2",),
    ),
    Option(
        "BOOTLOADER_LOG_TIMESTAMP_SUPPORT", BOOL, depends="BOOTLOADER_LOG_VERSION_2", default=("y",)
    ),
)

# components/bootloader/Kconfig.log.settings
_BOOTLOADER_LOG_SETTINGS = _rows(
    "components/bootloader/Kconfig.log.settings",
    Option("BOOTLOADER_LOG_MODE_TEXT_EN", BOOL, prompt=False),
    Option("BOOTLOADER_LOG_MODE_BINARY_EN", BOOL, prompt=False),
    Choice("BOOTLOADER_LOG_MODE", default=("BOOTLOADER_LOG_MODE_TEXT",)),
    Option(
        "BOOTLOADER_LOG_MODE_TEXT",
        BOOL,
        choice="BOOTLOADER_LOG_MODE",
        select=("BOOTLOADER_LOG_MODE_TEXT_EN",),
    ),
    Option(
        "BOOTLOADER_LOG_MODE_BINARY",
        BOOL,
        choice="BOOTLOADER_LOG_MODE",
        depends="BOOTLOADER_LOG_VERSION_2",
        select=("BOOTLOADER_LOG_MODE_BINARY_EN",),
    ),
)

# components/app_update/Kconfig.projbuild
_APP_UPDATE = _rows(
    "components/app_update/Kconfig.projbuild",
    # ESP-IDF v6.0
    Option(
        "SECURE_SIGNED_DATA_PARTITION",
        BOOL,
        depends="SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT || SECURE_SIGNED_APPS",
        default=("n",),
    ),
)

# components/nvs_flash/Kconfig
_NVS_FLASH = _rows(
    "components/nvs_flash/Kconfig",
    Option(
        "NVS_ENCRYPTION",
        BOOL,
        depends="SECURE_FLASH_ENC_ENABLED || SOC_HMAC_SUPPORTED",
        default=("y if SECURE_FLASH_ENC_ENABLED",),
    ),
    Option("NVS_COMPATIBLE_PRE_V4_3_ENCRYPTION_FLAG", BOOL, depends="SECURE_FLASH_ENC_ENABLED"),
    Option("NVS_ASSERT_ERROR_CHECK", BOOL, default=("n",)),
    Option("NVS_LEGACY_DUP_KEYS_COMPATIBILITY", BOOL, default=("n",)),
    Option(
        "NVS_ALLOCATE_CACHE_IN_SPIRAM",
        BOOL,
        depends="SPIRAM && (SPIRAM_USE_CAPS_ALLOC || SPIRAM_USE_MALLOC)",
        default=("n",),
    ),
    # ESP-IDF v6.0
    Option("NVS_BDL_STACK", BOOL, default=("n",)),
    # ESP-IDF v6.0
    Option("NVS_FLASH_VERIFY_ERASE", BOOL, default=("n",)),
    # ESP-IDF v6.0
    Option(
        "NVS_FLASH_ERASE_ATTEMPTS",
        INT,
        depends="NVS_FLASH_VERIFY_ERASE",
        default=("2",),
        range=("1 10",),
    ),
)

# components/nvs_sec_provider/Kconfig
_NVS_SEC_PROVIDER = _rows(
    "components/nvs_sec_provider/Kconfig",
    # v5.5's default; v6.0 defaults to USING_HMAC where SOC_HMAC_SUPPORTED
    Choice(
        "NVS_SEC_KEY_PROTECTION_SCHEME",
        depends="NVS_ENCRYPTION",
        default=("NVS_SEC_KEY_PROTECT_USING_FLASH_ENC",),
    ),
    Option(
        "NVS_SEC_KEY_PROTECT_USING_FLASH_ENC",
        BOOL,
        choice="NVS_SEC_KEY_PROTECTION_SCHEME",
        depends="SECURE_FLASH_ENC_ENABLED",
    ),
    Option(
        "NVS_SEC_KEY_PROTECT_USING_HMAC",
        BOOL,
        choice="NVS_SEC_KEY_PROTECTION_SCHEME",
        depends="SOC_HMAC_SUPPORTED",
    ),
    # ESP-IDF v6.0
    Option("NVS_SEC_KEY_PROTECT_NONE", BOOL, choice="NVS_SEC_KEY_PROTECTION_SCHEME"),
    Option(
        "NVS_SEC_HMAC_EFUSE_KEY_ID",
        INT,
        depends="NVS_SEC_KEY_PROTECT_USING_HMAC",
        default=("-1",),
        range=("-1 5",),
    ),
)

# components/partition_table/Kconfig.projbuild
_PARTITION_TABLE = _rows(
    "components/partition_table/Kconfig.projbuild",
    Choice("PARTITION_TABLE_TYPE", default=("PARTITION_TABLE_SINGLE_APP",)),
    Option("PARTITION_TABLE_SINGLE_APP", BOOL, choice="PARTITION_TABLE_TYPE"),
    Option("PARTITION_TABLE_SINGLE_APP_LARGE", BOOL, choice="PARTITION_TABLE_TYPE"),
    Option("PARTITION_TABLE_TWO_OTA", BOOL, choice="PARTITION_TABLE_TYPE"),
    Option("PARTITION_TABLE_TWO_OTA_LARGE", BOOL, choice="PARTITION_TABLE_TYPE"),
    Option("PARTITION_TABLE_CUSTOM", BOOL, choice="PARTITION_TABLE_TYPE"),
    Option(
        "PARTITION_TABLE_SINGLE_APP_ENCRYPTED_NVS",
        BOOL,
        choice="PARTITION_TABLE_TYPE",
        depends="!ESP32_COREDUMP_ENABLE_TO_FLASH && NVS_SEC_KEY_PROTECT_USING_FLASH_ENC",
    ),
    Option(
        "PARTITION_TABLE_SINGLE_APP_LARGE_ENC_NVS",
        BOOL,
        choice="PARTITION_TABLE_TYPE",
        depends="!ESP32_COREDUMP_ENABLE_TO_FLASH && NVS_SEC_KEY_PROTECT_USING_FLASH_ENC",
    ),
    Option(
        "PARTITION_TABLE_TWO_OTA_ENCRYPTED_NVS",
        BOOL,
        choice="PARTITION_TABLE_TYPE",
        depends="!ESP_COREDUMP_ENABLE_TO_FLASH && NVS_SEC_KEY_PROTECT_USING_FLASH_ENC",
    ),
    Option(
        "PARTITION_TABLE_SINGLE_APP_TEE",
        BOOL,
        choice="PARTITION_TABLE_TYPE",
        depends="SECURE_ENABLE_TEE",
    ),
    Option(
        "PARTITION_TABLE_TWO_OTA_TEE",
        BOOL,
        choice="PARTITION_TABLE_TYPE",
        depends="SECURE_ENABLE_TEE",
    ),
    Option(
        "PARTITION_TABLE_CUSTOM_FILENAME",
        STRING,
        prompt="PARTITION_TABLE_CUSTOM",
        default=('"partitions.csv"',),
    ),
    Option(
        "PARTITION_TABLE_FILENAME",
        STRING,
        prompt=False,
        default=(
            (
                '"partitions_singleapp.csv" if PARTITION_TABLE_SINGLE_APP'
                " && !ESP_COREDUMP_ENABLE_TO_FLASH"
            ),
            (
                '"partitions_singleapp_coredump.csv" if PARTITION_TABLE_SINGLE_APP'
                " && ESP_COREDUMP_ENABLE_TO_FLASH"
            ),
            '"partitions_singleapp_encr_nvs.csv" if PARTITION_TABLE_SINGLE_APP_ENCRYPTED_NVS',
            (
                '"partitions_singleapp_large.csv" if PARTITION_TABLE_SINGLE_APP_LARGE'
                " && !ESP_COREDUMP_ENABLE_TO_FLASH"
            ),
            (
                '"partitions_singleapp_large_coredump.csv" if PARTITION_TABLE_SINGLE_APP_LARGE'
                " && ESP_COREDUMP_ENABLE_TO_FLASH"
            ),
            '"partitions_singleapp_large_encr_nvs.csv" if PARTITION_TABLE_SINGLE_APP_LARGE_ENC_NVS',
            '"partitions_two_ota.csv" if PARTITION_TABLE_TWO_OTA && !ESP_COREDUMP_ENABLE_TO_FLASH',
            (
                '"partitions_two_ota_coredump.csv" if PARTITION_TABLE_TWO_OTA'
                " && ESP_COREDUMP_ENABLE_TO_FLASH"
            ),
            '"partitions_two_ota_encr_nvs.csv" if PARTITION_TABLE_TWO_OTA_ENCRYPTED_NVS',
            (
                '"partitions_two_ota_large.csv" if PARTITION_TABLE_TWO_OTA_LARGE'
                " && !ESP_COREDUMP_ENABLE_TO_FLASH"
            ),
            '"partitions_singleapp_tee.csv" if PARTITION_TABLE_SINGLE_APP_TEE',
            '"partitions_two_ota_tee.csv" if PARTITION_TABLE_TWO_OTA_TEE',
            "PARTITION_TABLE_CUSTOM_FILENAME if PARTITION_TABLE_CUSTOM",
        ),
    ),
    Option("PARTITION_TABLE_OFFSET", HEX, default=("0x8000",)),
    Option(
        "PARTITION_TABLE_MD5",
        BOOL,
        depends="!APP_COMPATIBLE_PRE_V3_1_BOOTLOADERS && !IDF_TARGET_LINUX",
        default=("y",),
    ),
)

# components/esptool_py/Kconfig.projbuild
_ESPTOOL_PY = _rows(
    "components/esptool_py/Kconfig.projbuild",
    Option(
        "ESPTOOLPY_NO_STUB",
        BOOL,
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=("y if IDF_ENV_FPGA || IDF_ENV_BRINGUP", "n"),
    ),
    Option(
        "ESPTOOLPY_OCT_FLASH",
        BOOL,
        depends="!APP_BUILD_TYPE_PURE_RAM_APP && SOC_SPI_MEM_SUPPORT_FLASH_OPI_MODE",
        default=("n",),
    ),
    Option(
        "ESPTOOLPY_FLASH_MODE_AUTO_DETECT",
        BOOL,
        depends="!APP_BUILD_TYPE_PURE_RAM_APP && SOC_SPI_MEM_SUPPORT_FLASH_OPI_MODE",
        default=("y",),
    ),
    Choice(
        "ESPTOOLPY_FLASHMODE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=("ESPTOOLPY_FLASHMODE_DIO", "ESPTOOLPY_FLASHMODE_OPI if ESPTOOLPY_OCT_FLASH"),
    ),
    Option(
        "ESPTOOLPY_FLASHMODE_QIO",
        BOOL,
        choice="ESPTOOLPY_FLASHMODE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP && !ESPTOOLPY_OCT_FLASH",
    ),
    Option(
        "ESPTOOLPY_FLASHMODE_QOUT",
        BOOL,
        choice="ESPTOOLPY_FLASHMODE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP && !ESPTOOLPY_OCT_FLASH",
    ),
    Option(
        "ESPTOOLPY_FLASHMODE_DIO",
        BOOL,
        choice="ESPTOOLPY_FLASHMODE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP && !ESPTOOLPY_OCT_FLASH",
    ),
    Option(
        "ESPTOOLPY_FLASHMODE_DOUT",
        BOOL,
        choice="ESPTOOLPY_FLASHMODE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP && !ESPTOOLPY_OCT_FLASH",
    ),
    Option(
        "ESPTOOLPY_FLASHMODE_OPI",
        BOOL,
        choice="ESPTOOLPY_FLASHMODE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP && ESPTOOLPY_OCT_FLASH",
    ),
    Choice(
        "ESPTOOLPY_FLASH_SAMPLE_MODE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=(
            "ESPTOOLPY_FLASH_SAMPLE_MODE_DTR if ESPTOOLPY_OCT_FLASH",
            "ESPTOOLPY_FLASH_SAMPLE_MODE_STR if !ESPTOOLPY_OCT_FLASH",
        ),
    ),
    Option(
        "ESPTOOLPY_FLASH_SAMPLE_MODE_STR",
        BOOL,
        choice="ESPTOOLPY_FLASH_SAMPLE_MODE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_FLASH_SAMPLE_MODE_DTR",
        BOOL,
        choice="ESPTOOLPY_FLASH_SAMPLE_MODE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP && ESPTOOLPY_OCT_FLASH",
    ),
    Option(
        "ESPTOOLPY_FLASHMODE",
        STRING,
        prompt=False,
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=(
            '"dio" if ESPTOOLPY_FLASHMODE_QIO',
            '"dio" if ESPTOOLPY_FLASHMODE_QOUT',
            '"dio" if ESPTOOLPY_FLASHMODE_DIO',
            '"dout" if ESPTOOLPY_FLASHMODE_DOUT',
            '"dout" if ESPTOOLPY_FLASHMODE_OPI',
        ),
    ),
    # ESP-IDF v6.1 (master)
    Option(
        "ESPTOOLPY_FLASHMODE_VAL",
        INT,
        prompt=False,
        depends="!APP_BUILD_TYPE_PURE_RAM_APP && !IDF_TARGET_LINUX",
        default=(
            "1 if ESPTOOLPY_FLASHMODE_QIO",
            "2 if ESPTOOLPY_FLASHMODE_QOUT",
            "3 if ESPTOOLPY_FLASHMODE_DIO",
            "4 if ESPTOOLPY_FLASHMODE_DOUT",
            "5 if ESPTOOLPY_FLASHMODE_OPI",
        ),
    ),
    Option(
        "ESPTOOLPY_FLASHFREQ",
        STRING,
        prompt=False,
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=(
            '"80m" if ESPTOOLPY_FLASHFREQ_120M',
            '"80m" if ESPTOOLPY_FLASHFREQ_80M',
            '"60m" if ESPTOOLPY_FLASHFREQ_60M',
            '"48m" if ESPTOOLPY_FLASHFREQ_64M',
            '"48m" if ESPTOOLPY_FLASHFREQ_48M',
            '"24m" if ESPTOOLPY_FLASHFREQ_32M',
            '"30m" if ESPTOOLPY_FLASHFREQ_30M',
            '"24m" if ESPTOOLPY_FLASHFREQ_24M',
            '"40m" if ESPTOOLPY_FLASHFREQ_40M',
            '"26m" if ESPTOOLPY_FLASHFREQ_26M',
            '"20m" if ESPTOOLPY_FLASHFREQ_20M',
            '"12m" if ESPTOOLPY_FLASHFREQ_16M',
            '"20m"',
        ),
    ),
    Choice(
        "ESPTOOLPY_FLASHSIZE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=("ESPTOOLPY_FLASHSIZE_2MB",),
    ),
    Option(
        "ESPTOOLPY_FLASHSIZE_1MB",
        BOOL,
        choice="ESPTOOLPY_FLASHSIZE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_FLASHSIZE_2MB",
        BOOL,
        choice="ESPTOOLPY_FLASHSIZE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_FLASHSIZE_4MB",
        BOOL,
        choice="ESPTOOLPY_FLASHSIZE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_FLASHSIZE_8MB",
        BOOL,
        choice="ESPTOOLPY_FLASHSIZE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_FLASHSIZE_16MB",
        BOOL,
        choice="ESPTOOLPY_FLASHSIZE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_FLASHSIZE_32MB",
        BOOL,
        choice="ESPTOOLPY_FLASHSIZE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_FLASHSIZE_64MB",
        BOOL,
        choice="ESPTOOLPY_FLASHSIZE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_FLASHSIZE_128MB",
        BOOL,
        choice="ESPTOOLPY_FLASHSIZE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_FLASHSIZE",
        STRING,
        prompt=False,
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=(
            '"1MB" if ESPTOOLPY_FLASHSIZE_1MB',
            '"2MB" if ESPTOOLPY_FLASHSIZE_2MB',
            '"4MB" if ESPTOOLPY_FLASHSIZE_4MB',
            '"8MB" if ESPTOOLPY_FLASHSIZE_8MB',
            '"16MB" if ESPTOOLPY_FLASHSIZE_16MB',
            '"32MB" if ESPTOOLPY_FLASHSIZE_32MB',
            '"64MB" if ESPTOOLPY_FLASHSIZE_64MB',
            '"128MB" if ESPTOOLPY_FLASHSIZE_128MB',
        ),
    ),
    Option(
        "ESPTOOLPY_HEADER_FLASHSIZE_UPDATE",
        BOOL,
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=("n",),
    ),
    Choice(
        "ESPTOOLPY_BEFORE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=("ESPTOOLPY_BEFORE_RESET",),
    ),
    Option(
        "ESPTOOLPY_BEFORE_RESET",
        BOOL,
        choice="ESPTOOLPY_BEFORE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_BEFORE_NORESET",
        BOOL,
        choice="ESPTOOLPY_BEFORE",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_BEFORE",
        STRING,
        prompt=False,
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=(
            '"default_reset" if ESPTOOLPY_BEFORE_RESET',
            '"no_reset" if ESPTOOLPY_BEFORE_NORESET',
        ),
    ),
    Choice(
        "ESPTOOLPY_AFTER",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=("ESPTOOLPY_AFTER_RESET",),
    ),
    Option(
        "ESPTOOLPY_AFTER_RESET",
        BOOL,
        choice="ESPTOOLPY_AFTER",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_AFTER_NORESET",
        BOOL,
        choice="ESPTOOLPY_AFTER",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
    ),
    Option(
        "ESPTOOLPY_AFTER",
        STRING,
        prompt=False,
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=('"hard_reset" if ESPTOOLPY_AFTER_RESET', '"no_reset" if ESPTOOLPY_AFTER_NORESET'),
    ),
    Option(
        "ESPTOOLPY_MONITOR_BAUD",
        INT,
        prompt=False,
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=("ESP_CONSOLE_UART_BAUDRATE if ESP_CONSOLE_UART", "115200 if !ESP_CONSOLE_UART"),
    ),
)

# components/spi_flash/<chip>/Kconfig.flash_freq
_FLASH_FREQ = _rows(
    "components/spi_flash/<chip>/Kconfig.flash_freq",
    # One file per target, sourced inside the "Serial flasher config" menu: the members a
    # target lacks carry the targets that have them, and each default names its target.
    Choice(
        "ESPTOOLPY_FLASHFREQ",
        depends="!APP_BUILD_TYPE_PURE_RAM_APP",
        default=(
            "ESPTOOLPY_FLASHFREQ_80M if IDF_TARGET_ESP32S3",
            "ESPTOOLPY_FLASHFREQ_40M if IDF_TARGET_ESP32P4 && ESP32P4_REV_MIN_0",
            "ESPTOOLPY_FLASHFREQ_80M if IDF_TARGET_ESP32P4",
            "ESPTOOLPY_FLASHFREQ_80M if IDF_TARGET_ESP32C3",
            "ESPTOOLPY_FLASHFREQ_80M if IDF_TARGET_ESP32C6",
            "ESPTOOLPY_FLASHFREQ_64M if IDF_TARGET_ESP32H2",
        ),
    ),
    Option(
        "ESPTOOLPY_FLASHFREQ_120M",
        BOOL,
        choice="ESPTOOLPY_FLASHFREQ",
        depends=(
            "IDF_TARGET_ESP32S3 && (SPI_FLASH_HPM_ON || ESPTOOLPY_OCT_FLASH)"
            " && (ESPTOOLPY_FLASH_SAMPLE_MODE_STR || IDF_EXPERIMENTAL_FEATURES)"
            " || IDF_TARGET_ESP32P4 && IDF_EXPERIMENTAL_FEATURES && !ESP32P4_REV_MIN_0"
        ),
        chips=frozenset({"esp32s3", "esp32p4"}),
    ),
    Option(
        "ESPTOOLPY_FLASHFREQ_80M",
        BOOL,
        choice="ESPTOOLPY_FLASHFREQ",
        depends="!(IDF_TARGET_ESP32P4 && ESP32P4_REV_MIN_0)",
        chips=frozenset({"esp32s3", "esp32p4", "esp32c3", "esp32c6"}),
    ),
    Option(
        "ESPTOOLPY_FLASHFREQ_40M",
        BOOL,
        choice="ESPTOOLPY_FLASHFREQ",
        chips=frozenset({"esp32s3", "esp32p4", "esp32c3", "esp32c6"}),
    ),
    Option(
        "ESPTOOLPY_FLASHFREQ_20M",
        BOOL,
        choice="ESPTOOLPY_FLASHFREQ",
        chips=frozenset({"esp32s3", "esp32p4", "esp32c3", "esp32c6"}),
    ),
    Option(
        "ESPTOOLPY_FLASHFREQ_VAL",
        INT,
        prompt=False,
        default=(
            "20 if ESPTOOLPY_FLASHFREQ_20M",
            "40 if ESPTOOLPY_FLASHFREQ_40M",
            "80 if ESPTOOLPY_FLASHFREQ_80M",
            "120 if ESPTOOLPY_FLASHFREQ_120M",
        ),
        chips=frozenset({"esp32p4"}),
    ),
    Option(
        "ESPTOOLPY_FLASHFREQ_26M", BOOL, choice="ESPTOOLPY_FLASHFREQ", chips=frozenset({"esp32c3"})
    ),
    Option(
        "ESPTOOLPY_FLASHFREQ_64M", BOOL, choice="ESPTOOLPY_FLASHFREQ", chips=frozenset({"esp32h2"})
    ),
    Option(
        "ESPTOOLPY_FLASHFREQ_32M", BOOL, choice="ESPTOOLPY_FLASHFREQ", chips=frozenset({"esp32h2"})
    ),
    Option(
        "ESPTOOLPY_FLASHFREQ_16M", BOOL, choice="ESPTOOLPY_FLASHFREQ", chips=frozenset({"esp32h2"})
    ),
)

# components/bootloader/sdkconfig.rename and components/esptool_py/sdkconfig.rename.
# v6.0's BOOTLOADER_COMPILER_OPTIMIZATION_NONE -> _DEBUG is left out: NONE is a v5.5 row.
RENAMES = tuple(
    Rename(old, new, source=source)
    for source, pairs in (
        (
            "components/bootloader/sdkconfig.rename",
            (
                ("LOG_BOOTLOADER_LEVEL", "BOOTLOADER_LOG_LEVEL"),
                ("LOG_BOOTLOADER_LEVEL_NONE", "BOOTLOADER_LOG_LEVEL_NONE"),
                ("LOG_BOOTLOADER_LEVEL_ERROR", "BOOTLOADER_LOG_LEVEL_ERROR"),
                ("LOG_BOOTLOADER_LEVEL_WARN", "BOOTLOADER_LOG_LEVEL_WARN"),
                ("LOG_BOOTLOADER_LEVEL_INFO", "BOOTLOADER_LOG_LEVEL_INFO"),
                ("LOG_BOOTLOADER_LEVEL_DEBUG", "BOOTLOADER_LOG_LEVEL_DEBUG"),
                ("LOG_BOOTLOADER_LEVEL_VERBOSE", "BOOTLOADER_LOG_LEVEL_VERBOSE"),
                ("APP_ROLLBACK_ENABLE", "BOOTLOADER_APP_ROLLBACK_ENABLE"),
                ("APP_ANTI_ROLLBACK", "BOOTLOADER_APP_ANTI_ROLLBACK"),
                ("APP_SECURE_VERSION", "BOOTLOADER_APP_SECURE_VERSION"),
                ("APP_SECURE_VERSION_SIZE_EFUSE_FIELD", "BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD"),
                ("EFUSE_SECURE_VERSION_EMULATE", "BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE"),
                ("FLASH_ENCRYPTION_ENABLED", "SECURE_FLASH_ENC_ENABLED"),
                ("FLASH_ENCRYPTION_INSECURE", "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT"),
                (
                    "FLASH_ENCRYPTION_UART_BOOTLOADER_ALLOW_ENCRYPT",
                    "SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC",
                ),
                (
                    "FLASH_ENCRYPTION_UART_BOOTLOADER_ALLOW_DECRYPT",
                    "SECURE_FLASH_UART_BOOTLOADER_ALLOW_DEC",
                ),
                (
                    "FLASH_ENCRYPTION_UART_BOOTLOADER_ALLOW_CACHE",
                    "SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE",
                ),
                ("SECURE_BOOT_ENABLED", "SECURE_BOOT_V1_ENABLED"),
                ("SPI_FLASH_32BIT_ADDR_ENABLE", "BOOTLOADER_CACHE_32BIT_ADDR_QUAD_FLASH"),
                ("SPI_FLASH_QUAD_32BIT_ADDR_ENABLE", "BOOTLOADER_CACHE_32BIT_ADDR_QUAD_FLASH"),
                ("SPI_FLASH_OCTAL_32BIT_ADDR_ENABLE", "BOOTLOADER_CACHE_32BIT_ADDR_OCTAL_FLASH"),
            ),
        ),
        (
            "components/esptool_py/sdkconfig.rename",
            (
                ("FLASHMODE_QIO", "ESPTOOLPY_FLASHMODE_QIO"),
                ("FLASHMODE_QOUT", "ESPTOOLPY_FLASHMODE_QOUT"),
                ("FLASHMODE_DIO", "ESPTOOLPY_FLASHMODE_DIO"),
                ("FLASHMODE_DOUT", "ESPTOOLPY_FLASHMODE_DOUT"),
                ("MONITOR_BAUD", "ESPTOOLPY_MONITOR_BAUD"),
            ),
        ),
    )
    for old, new in pairs
)

NAMESPACES = ("SECURE_", "BOOTLOADER_", "NVS_", "PARTITION_TABLE_", "ESPTOOLPY_")
"""Every ESP-IDF option under these prefixes is a row above (or a rename)."""
NOT_OURS = ("SECURE_TEE_", "SECURE_ENABLE_TEE")
"""Prefixes inside :data:`NAMESPACES` that ``components/esp_tee/Kconfig.projbuild`` owns."""

EXTERNAL = frozenset(
    {
        # root Kconfig and components/esp_system, esp_hw_support/port/<chip>
        "APP_BUILD_TYPE_PURE_RAM_APP",
        "APP_COMPATIBLE_PRE_V3_1_BOOTLOADERS",
        "APP_REPRODUCIBLE_BUILD",
        "IDF_CI_BUILD",
        "IDF_ENV_BRINGUP",
        "IDF_ENV_FPGA",
        "IDF_EXPERIMENTAL_FEATURES",
        "IDF_TARGET_ARCH_XTENSA",
        "ESP32_REV_MIN_FULL",
        "ESP32C3_REV_MIN_FULL",
        "ESP32C5_REV_MIN_FULL",
        "ESP32P4_REV_MIN_0",
        "ESP32P4_SELECTS_REV_LESS_V3",
        "ESP_CONSOLE_UART",
        "ESP_CONSOLE_UART_BAUDRATE",
        # components/espcoredump, efuse, esp_tee, log, spi_flash, esp_psram, mbedtls
        "ESP32_COREDUMP_ENABLE_TO_FLASH",
        "ESP_COREDUMP_ENABLE_TO_FLASH",
        "EFUSE_VIRTUAL",
        "EFUSE_VIRTUAL_KEEP_IN_FLASH",
        "SECURE_ENABLE_TEE",
        "LOG_VERSION_1",
        "LOG_VERSION_2",
        "SPI_FLASH_HPM_ON",
        "SPI_FLASH_ENABLE_ENCRYPTED_READ_WRITE",
        "SPIRAM",
        "SPIRAM_USE_CAPS_ALLOC",
        "SPIRAM_USE_MALLOC",
        "MBEDTLS_ECP_DP_SECP256R1_ENABLED",
        "MBEDTLS_ECP_C",
        "MBEDTLS_ECDH_C",
        "MBEDTLS_ECDSA_C",
    }
)
"""Other components' symbols the rows read or select."""

UNREAD = frozenset(
    {
        # Kconfig.flash_freq of targets espsec has no chip record for
        "ESPTOOLPY_FLASHFREQ_15M",
        "ESPTOOLPY_FLASHFREQ_24M",
        "ESPTOOLPY_FLASHFREQ_30M",
        "ESPTOOLPY_FLASHFREQ_48M",
        "ESPTOOLPY_FLASHFREQ_60M",
        # esptool_py, v5.1 to v5.3
        "ESPTOOLPY_FLASHFREQ_80M_DEFAULT",
        # esptool_py, v4.3 and v4.4 (the serial port and baud rates moved to idf.py)
        "ESPTOOLPY_BAUD",
        "ESPTOOLPY_BAUD_115200B",
        "ESPTOOLPY_BAUD_230400B",
        "ESPTOOLPY_BAUD_2MB",
        "ESPTOOLPY_BAUD_921600B",
        "ESPTOOLPY_BAUD_OTHER",
        "ESPTOOLPY_BAUD_OTHER_VAL",
        "ESPTOOLPY_COMPRESSED",
        "ESPTOOLPY_FLASHSIZE_DETECT",
        "ESPTOOLPY_MONITOR_BAUD_115200B",
        "ESPTOOLPY_MONITOR_BAUD_230400B",
        "ESPTOOLPY_MONITOR_BAUD_2MB",
        "ESPTOOLPY_MONITOR_BAUD_57600B",
        "ESPTOOLPY_MONITOR_BAUD_921600B",
        "ESPTOOLPY_MONITOR_BAUD_9600B",
        "ESPTOOLPY_MONITOR_BAUD_CONSOLE",
        "ESPTOOLPY_MONITOR_BAUD_OTHER",
        "ESPTOOLPY_MONITOR_BAUD_OTHER_VAL",
        "ESPTOOLPY_PORT",
        "ESPTOOLPY_S3_STR",
        # bootloader, v4.3 and v4.4
        "SECURE_BOOT_SUPPORTS_RSA",
        "SECURE_ESP32_SUPPORTS_RSA",
        "SECURE_TARGET_HAS_SECURE_ROM_DL_MODE",
    }
)
"""Names these Kconfig files define that have no row: options of targets espsec has no
chip record for, and options ESP-IDF v4.3 to v5.4 had and later releases dropped. A file
may hold them; they are kept, unread, in ``raw``."""

CHIP_SYMBOLS = ("IDF_TARGET", "SOC_", "ESP_ROM_", "CHIP_")
"""Prefixes of the symbols :mod:`espsec.sdkconfig.resolve` derives from the chip record."""

# -- Options the security audit reads (espsec.audit) --------------------------------------
# Each group copies only the options the audit reads from its upstream file (ESP-IDF v5.5
# unless a row says otherwise); these prefixes are not namespaces the table covers, so an
# unknown name under them stays in ``raw``. Groups are appended, one per upstream file.

# components/esp_system/Kconfig, menu "Memory protection". The rows are v6.0's (one switch
# and a mode choice); v5.5's names resolve through v6.0's components/esp_system/sdkconfig.rename
# (AUDIT_RENAMES below).
_ESP_SYSTEM_MEMPROT = _rows(
    "components/esp_system/Kconfig",
    Option(
        "ESP_SYSTEM_MEMPROT",
        BOOL,
        depends="SOC_CPU_IDRAM_SPLIT_USING_PMP || SECURE_ENABLE_TEE || SOC_MEMPROT_SUPPORTED",
        default=("y",),
    ),
    Choice(
        "ESP_SYSTEM_MEMPROT_MODE",
        depends="ESP_SYSTEM_MEMPROT",
        default=(
            "ESP_SYSTEM_MEMPROT_TEE if SECURE_ENABLE_TEE",
            "ESP_SYSTEM_MEMPROT_PMP if SOC_CPU_IDRAM_SPLIT_USING_PMP && !SECURE_ENABLE_TEE",
            "ESP_SYSTEM_MEMPROT_PMS if SOC_MEMPROT_SUPPORTED",
        ),
    ),
    Option(
        "ESP_SYSTEM_MEMPROT_PMS",
        BOOL,
        choice="ESP_SYSTEM_MEMPROT_MODE",
        depends="SOC_MEMPROT_SUPPORTED",
    ),
    Option(
        "ESP_SYSTEM_MEMPROT_PMP",
        BOOL,
        choice="ESP_SYSTEM_MEMPROT_MODE",
        depends="SOC_CPU_IDRAM_SPLIT_USING_PMP && !SECURE_ENABLE_TEE",
    ),
    Option(
        "ESP_SYSTEM_MEMPROT_TEE",
        BOOL,
        choice="ESP_SYSTEM_MEMPROT_MODE",
        depends="SECURE_ENABLE_TEE",
    ),
    Option(
        "ESP_SYSTEM_MEMPROT_PMS_LOCK",
        BOOL,
        depends="ESP_SYSTEM_MEMPROT && ESP_SYSTEM_MEMPROT_PMS",
        default=("y",),
    ),
    Option(
        "ESP_SYSTEM_MEMPROT_PMP_LP_CORE_RESERVE_MEM_EXEC",
        BOOL,
        depends=(
            "ESP_SYSTEM_MEMPROT && IDF_TARGET_ARCH_RISCV && SOC_LP_CORE_SUPPORTED"
            " && ESP_SYSTEM_MEMPROT_PMP"
        ),
        default=("n",),
    ),
)

# components/esp-tls/Kconfig
_ESP_TLS = _rows(
    "components/esp-tls/Kconfig",
    Choice("ESP_TLS_LIBRARY_CHOOSE", default=("ESP_TLS_USING_MBEDTLS",)),
    Option("ESP_TLS_USING_MBEDTLS", BOOL, choice="ESP_TLS_LIBRARY_CHOOSE"),
    Option(
        "ESP_TLS_USING_WOLFSSL", BOOL, choice="ESP_TLS_LIBRARY_CHOOSE", depends="TLS_STACK_WOLFSSL"
    ),
    Option(
        "ESP_TLS_SERVER_MIN_AUTH_MODE_OPTIONAL",
        BOOL,
        depends="ESP_TLS_USING_MBEDTLS",
        default=("n",),
    ),
    Option("ESP_TLS_INSECURE", BOOL),
    Option("ESP_TLS_SKIP_SERVER_CERT_VERIFY", BOOL, depends="ESP_TLS_INSECURE"),
)

# components/mbedtls/Kconfig, menu "Certificate Bundle"
_MBEDTLS_BUNDLE = _rows(
    "components/mbedtls/Kconfig",
    Option("MBEDTLS_CERTIFICATE_BUNDLE", BOOL, default=("y",)),
    Choice(
        "MBEDTLS_DEFAULT_CERTIFICATE_BUNDLE",
        depends="MBEDTLS_CERTIFICATE_BUNDLE",
        default=("MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_FULL",),
    ),
    Option(
        "MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_FULL", BOOL, choice="MBEDTLS_DEFAULT_CERTIFICATE_BUNDLE"
    ),
    Option(
        "MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_CMN", BOOL, choice="MBEDTLS_DEFAULT_CERTIFICATE_BUNDLE"
    ),
    Option(
        "MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_NONE", BOOL, choice="MBEDTLS_DEFAULT_CERTIFICATE_BUNDLE"
    ),
    Option(
        "MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE",
        BOOL,
        depends="MBEDTLS_CERTIFICATE_BUNDLE",
        default=("n",),
    ),
    Option(
        "MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE_PATH",
        STRING,
        depends="MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE",
    ),
    Option(
        "MBEDTLS_CERTIFICATE_BUNDLE_DEPRECATED_LIST",
        BOOL,
        depends="MBEDTLS_CERTIFICATE_BUNDLE && !MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_NONE",
    ),
    # ESP-IDF v6.0
    Option(
        "MBEDTLS_CERTIFICATE_BUNDLE_CROSS_SIGNED_VERIFY",
        BOOL,
        depends="MBEDTLS_CERTIFICATE_BUNDLE",
        default=("n",),
        select=("MBEDTLS_X509_TRUSTED_CERT_CALLBACK",),
    ),
    Option(
        "MBEDTLS_CERTIFICATE_BUNDLE_MAX_CERTS",
        INT,
        depends="MBEDTLS_CERTIFICATE_BUNDLE",
        default=("200",),
    ),
)

# components/esp_https_ota/Kconfig
_ESP_HTTPS_OTA = _rows(
    "components/esp_https_ota/Kconfig",
    Option("ESP_HTTPS_OTA_DECRYPT_CB", BOOL, default=("n",)),
    Option("ESP_HTTPS_OTA_ALLOW_HTTP", BOOL, default=("n",)),
)

# components/esp_wifi/Kconfig (the security options; Wi-Fi rows of other kinds are appended
# as a separate group when something reads them)
_ESP_WIFI = _rows(
    "components/esp_wifi/Kconfig",
    Option("ESP_WIFI_ENABLED", BOOL, prompt=False, default=("y if SOC_WIFI_SUPPORTED",)),
    Option("ESP_HOST_WIFI_ENABLED", BOOL, depends="SOC_WIRELESS_HOST_SUPPORTED", default=("n",)),
    Option(
        "ESP_WIFI_NVS_ENABLED",
        BOOL,
        depends="ESP_WIFI_ENABLED || ESP_HOST_WIFI_ENABLED",
        default=("y",),
    ),
    Option(
        "ESP_WIFI_ENABLE_WPA3_SAE",
        BOOL,
        depends="ESP_WIFI_ENABLED || ESP_HOST_WIFI_ENABLED",
        default=("y",),
        select=("ESP_WIFI_MBEDTLS_CRYPTO",),
    ),
    Option(
        "ESP_WIFI_ENABLE_SAE_PK",
        BOOL,
        depends=(
            "(ESP_WIFI_ENABLED || ESP_HOST_WIFI_ENABLED)"
            " && ESP_WIFI_ENABLE_WPA3_SAE && ESP_WIFI_ENABLE_SAE_H2E"
        ),
        default=("y",),
    ),
    Option(
        "ESP_WIFI_ENABLE_SAE_H2E",
        BOOL,
        depends="(ESP_WIFI_ENABLED || ESP_HOST_WIFI_ENABLED) && ESP_WIFI_ENABLE_WPA3_SAE",
        default=("y",),
    ),
    Option(
        "ESP_WIFI_ENABLE_WPA3_OWE_STA",
        BOOL,
        depends="ESP_WIFI_ENABLED || ESP_HOST_WIFI_ENABLED",
        default=("y",),
        select=("ESP_WIFI_MBEDTLS_CRYPTO",),
    ),
)

# components/lwip/Kconfig (the DHCP server a published advisory concerns)
_LWIP = _rows(
    "components/lwip/Kconfig",
    Option("LWIP_IPV4", BOOL, default=("y",)),
    Option("LWIP_DHCPS", BOOL, depends="LWIP_IPV4", default=("y",)),
)

# components/protocomm/Kconfig
_PROTOCOMM = _rows(
    "components/protocomm/Kconfig",
    Option("ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_0", BOOL, default=("y",)),
    Option("ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_1", BOOL, default=("y",)),
    Option("ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_2", BOOL, default=("y",)),
)

_AUDIT = (
    *_ESP_SYSTEM_MEMPROT,
    *_ESP_TLS,
    *_MBEDTLS_BUNDLE,
    *_ESP_HTTPS_OTA,
    *_ESP_WIFI,
    *_LWIP,
    *_PROTOCOMM,
)
"""The rows the audit reads, in the order of the groups above."""

AUDIT_RENAMES = tuple(
    Rename(old, new, source=source)
    for source, pairs in (
        (
            # ESP-IDF v6.0
            "components/esp_system/sdkconfig.rename",
            (
                ("ESP_SYSTEM_PMP_IDRAM_SPLIT", "ESP_SYSTEM_MEMPROT"),
                (
                    "ESP_SYSTEM_PMP_LP_CORE_RESERVE_MEM_EXECUTABLE",
                    "ESP_SYSTEM_MEMPROT_PMP_LP_CORE_RESERVE_MEM_EXEC",
                ),
                ("ESP_SYSTEM_MEMPROT_FEATURE_VIA_TEE", "ESP_SYSTEM_MEMPROT"),
                ("ESP_SYSTEM_MEMPROT_FEATURE", "ESP_SYSTEM_MEMPROT"),
                ("ESP_SYSTEM_MEMPROT_FEATURE_LOCK", "ESP_SYSTEM_MEMPROT_PMS_LOCK"),
            ),
        ),
        (
            "components/esp_https_ota/sdkconfig.rename",
            (("OTA_ALLOW_HTTP", "ESP_HTTPS_OTA_ALLOW_HTTP"),),
        ),
        (
            "components/esp_wifi/sdkconfig.rename",
            (
                ("ESP32_WIFI_ENABLED", "ESP_WIFI_ENABLED"),
                ("ESP32_WIFI_NVS_ENABLED", "ESP_WIFI_NVS_ENABLED"),
                ("ESP32_WIFI_ENABLE_WPA3_SAE", "ESP_WIFI_ENABLE_WPA3_SAE"),
                ("ESP32_WIFI_ENABLE_WPA3_OWE_STA", "ESP_WIFI_ENABLE_WPA3_OWE_STA"),
            ),
        ),
    )
    for old, new in pairs
)

AUDIT_EXTERNAL = frozenset({"TLS_STACK_WOLFSSL"})
"""Symbols of other components the audit rows read (``components/esp-wolfssl``)."""

TABLE = Table.of(
    (
        *_BOOTLOADER,
        *_BOOTLOADER_FORMAT,
        *_APP_ROLLBACK,
        *_BOOTLOADER_ROLLBACK,
        *_BOOTLOADER_LOG,
        *_BOOTLOADER_LOG_FORMAT,
        *_BOOTLOADER_LOG_SETTINGS,
        *_APP_UPDATE,
        *_NVS_FLASH,
        *_NVS_SEC_PROVIDER,
        *_PARTITION_TABLE,
        *_ESPTOOL_PY,
        *_FLASH_FREQ,
        *_AUDIT,
    ),
    RENAMES + AUDIT_RENAMES,
    namespaces=NAMESPACES,
    not_ours=NOT_OURS,
    external=EXTERNAL | AUDIT_EXTERNAL,
    unread=UNREAD,
    derived=CHIP_SYMBOLS,
)
"""The option table the resolver reads."""
