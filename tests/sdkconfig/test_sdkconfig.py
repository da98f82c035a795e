"""sdkconfig parsing and Kconfig defaults (components/bootloader/Kconfig.projbuild et al.)."""

from __future__ import annotations

import contextlib
import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from espsec.chips import CHIPS, ECDSA192, ECDSA256
from espsec.errors import FormatError, UsageError
from espsec.sdkconfig import (
    BootloaderConfig,
    EcdsaKeyLen,
    FlashEncryptionKeySize,
    FlashEncryptionMode,
    NvsSecKeyProtection,
    RomDownloadMode,
    SdkconfigError,
    SignedAppsScheme,
)

# An excerpt in the layout kconfgen writes (section comments, "is not set" lines).
SECURE_SDKCONFIG = """\
#
# Automatically generated file. DO NOT EDIT.
# Espressif IoT Development Framework (ESP-IDF) 6.0.0 Project Configuration
#
CONFIG_SOC_ADC_SUPPORTED=y
CONFIG_IDF_TARGET="esp32s3"
CONFIG_IDF_FIRMWARE_CHIP_ID=0x0009

#
# Application Rollback
#
CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y
CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y
CONFIG_BOOTLOADER_APP_SECURE_VERSION=2
CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD=16
# CONFIG_BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE is not set
# end of Application Rollback

#
# Security features
#
CONFIG_SECURE_BOOT_V2_RSA_SUPPORTED=y
CONFIG_SECURE_BOOT_V2_PREFERRED=y
# CONFIG_SECURE_SIGNED_APPS_NO_SECURE_BOOT is not set
CONFIG_SECURE_BOOT=y
CONFIG_SECURE_BOOT_V2_ENABLED=y
CONFIG_SECURE_BOOT_BUILD_SIGNED_BINARIES=y
CONFIG_SECURE_SIGNED_APPS_RSA_SCHEME=y
CONFIG_SECURE_BOOT_SIGNING_KEY="secure_boot_signing_key.pem"
# CONFIG_SECURE_BOOT_ENABLE_AGGRESSIVE_KEY_REVOKE is not set
# CONFIG_SECURE_BOOT_V2_ALLOW_EFUSE_RD_DIS is not set
# CONFIG_SECURE_BOOT_INSECURE is not set
CONFIG_SECURE_FLASH_ENC_ENABLED=y
# CONFIG_SECURE_FLASH_ENCRYPTION_AES128 is not set
CONFIG_SECURE_FLASH_ENCRYPTION_AES256=y
# CONFIG_SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT is not set
CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y
CONFIG_SECURE_FLASH_CHECK_ENC_EN_IN_APP=y
CONFIG_SECURE_ROM_DL_MODE_ENABLED=y
# CONFIG_SECURE_DISABLE_ROM_DL_MODE is not set
CONFIG_SECURE_ENABLE_SECURE_ROM_DL_MODE=y
# CONFIG_SECURE_INSECURE_ALLOW_DL_MODE is not set
# end of Security features

CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y
CONFIG_ESPTOOLPY_FLASHSIZE="8MB"
CONFIG_PARTITION_TABLE_OFFSET=0x10000
CONFIG_PARTITION_TABLE_MD5=y
CONFIG_NVS_ENCRYPTION=y
"""


def test_parses_a_generated_secure_sdkconfig():
    cfg = BootloaderConfig.parse(SECURE_SDKCONFIG)
    assert cfg.idf_target == "esp32s3"
    assert cfg.secure_boot and cfg.secure_boot_v2_enabled
    assert cfg.secure_signed_apps_scheme is SignedAppsScheme.RSA
    assert cfg.secure_boot_scheme == "rsa3072"
    assert cfg.secure_flash_enc_enabled
    assert cfg.secure_flash_encryption_mode is FlashEncryptionMode.RELEASE
    assert cfg.secure_flash_encryption_keysize is FlashEncryptionKeySize.AES256
    assert cfg.flash_encryption_key_bits == 512
    assert cfg.secure_uart_rom_dl_mode is RomDownloadMode.SECURE
    assert not cfg.secure_flash_uart_bootloader_allow_enc
    assert cfg.secure_flash_check_enc_en_in_app
    assert cfg.bootloader_app_rollback_enable and cfg.bootloader_app_anti_rollback
    assert cfg.bootloader_app_secure_version == 2
    assert cfg.bootloader_app_sec_ver_size_efuse_field == 16
    assert cfg.partition_table_offset == 0x10000
    assert cfg.partition_table_md5
    assert cfg.nvs_encryption
    assert cfg.esptoolpy_flashsize == "8MB"
    assert cfg.flash_size == 8 << 20


def test_other_components_options_are_kept_in_raw_and_table_options_are_typed():
    cfg = BootloaderConfig.parse(SECURE_SDKCONFIG)
    assert cfg.raw["SOC_ADC_SUPPORTED"] is True
    assert cfg.raw["IDF_FIRMWARE_CHIP_ID"] == 9
    assert cfg.values["SECURE_BOOT_SIGNING_KEY"] == "secure_boot_signing_key.pem"
    assert cfg.values["BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE"] is False
    assert "SECURE_BOOT" not in cfg.raw and "SECURE_BOOT_SIGNING_KEY" not in cfg.raw


def test_misspelt_option_is_an_error_naming_file_and_line():
    with pytest.raises(SdkconfigError) as err:
        BootloaderConfig.parse(
            "CONFIG_SECURE_BOOT=y\nCONFIG_SECURE_BOOT_ALOW_JTAG=y\n", source="sdkconfig"
        )
    assert err.value.line == 2
    assert str(err.value) == "sdkconfig: line 2: CONFIG_SECURE_BOOT_ALOW_JTAG: unknown option"


def test_value_syntax():
    cfg = BootloaderConfig.parse(
        'CONFIG_A=y\nCONFIG_B=n\nCONFIG_C=-12\nCONFIG_D=0x1F\nCONFIG_E="x \\"q\\" \\\\ y"\n'
        '   \n# comment\n# CONFIG_F is not set\nCONFIG_G=""\n'
    )
    assert cfg.raw == {
        "A": True,
        "B": False,
        "C": -12,
        "D": 31,
        "E": 'x "q" \\ y',
        "F": False,
        "G": "",
    }


def test_bytes_input_and_crlf_line_ends():
    cfg = BootloaderConfig.parse(b'CONFIG_SECURE_BOOT=y\r\nCONFIG_IDF_TARGET="esp32p4"\r\n')
    assert cfg.secure_boot and cfg.idf_target == "esp32p4"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("CONFIG_A=y\nSECURE_BOOT=y\n", 2),
        ("\n\nCONFIG_A=yes\n", 3),
        ('CONFIG_A="unterminated\n', 1),
        ("CONFIG_A=\n", 1),
        ("CONFIG_A = y\n", 1),
        ("CONFIG_SECURE_BOOT=1\n", 1),
        ('CONFIG_PARTITION_TABLE_OFFSET="0x8000"\n', 1),
        ("CONFIG_IDF_TARGET=esp32s3\n", 1),
        ("CONFIG_SECURE_FLASH_ENCRYPTION_AES128=2\n", 1),
    ],
)
def test_malformed_line_is_a_format_error_naming_the_line(text, line):
    with pytest.raises(SdkconfigError) as err:
        BootloaderConfig.parse(text, source="sdkconfig")
    assert err.value.line == line
    assert f"line {line}:" in str(err.value)
    assert str(err.value).startswith("sdkconfig: ")
    assert isinstance(err.value, FormatError)


def test_not_utf8_is_a_format_error_with_the_line():
    with pytest.raises(SdkconfigError) as err:
        BootloaderConfig.parse(b'CONFIG_A=y\nCONFIG_B="\xff"\n')
    assert err.value.line == 2


def test_option_whose_dependency_is_off_is_rejected_with_its_line():
    with pytest.raises(SdkconfigError) as err:
        BootloaderConfig.parse("# x\nCONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y\n")
    assert err.value.line == 2
    assert "BOOTLOADER_APP_ROLLBACK_ENABLE" in str(err.value)


def test_two_members_of_one_choice_conflict():
    text = (
        "CONFIG_SECURE_FLASH_ENC_ENABLED=y\n"
        "CONFIG_SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT=y\n"
        "CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y\n"
    )
    with pytest.raises(SdkconfigError) as err:
        BootloaderConfig.parse(text)
    assert err.value.line == 3


def test_deprecated_option_names_are_read_as_their_new_names():
    cfg = BootloaderConfig.parse(
        "CONFIG_APP_ROLLBACK_ENABLE=y\n"
        "CONFIG_APP_ANTI_ROLLBACK=y\n"
        "CONFIG_APP_SECURE_VERSION=4\n"
        "CONFIG_FLASH_ENCRYPTION_ENABLED=y\n"
        "CONFIG_FLASH_ENCRYPTION_INSECURE=y\n"
    )
    assert cfg.bootloader_app_anti_rollback
    assert cfg.bootloader_app_secure_version == 4
    assert cfg.secure_flash_encryption_mode is FlashEncryptionMode.DEVELOPMENT
    assert cfg.raw == {"SPI_FLASH_ENABLE_ENCRYPTED_READ_WRITE": True}  # selected by FE


def test_generated_deprecated_section_agrees_with_new_names():
    text = SECURE_SDKCONFIG + (
        "# Deprecated options for backward compatibility\n"
        "CONFIG_APP_ROLLBACK_ENABLE=y\n"
        "CONFIG_FLASH_ENCRYPTION_ENABLED=y\n"
        "# CONFIG_FLASH_ENCRYPTION_INSECURE is not set\n"
        "# End of deprecated options\n"
    )
    assert BootloaderConfig.parse(text) == BootloaderConfig.parse(SECURE_SDKCONFIG)


def test_later_assignment_of_the_same_option_wins():
    cfg = BootloaderConfig.parse("CONFIG_SECURE_BOOT=y\nCONFIG_SECURE_BOOT=n\n")
    assert not cfg.secure_boot


def test_development_mode_forces_uart_bootloader_encryption():
    cfg = BootloaderConfig.parse("CONFIG_SECURE_FLASH_ENC_ENABLED=y\n")
    assert cfg.secure_flash_encryption_mode is FlashEncryptionMode.DEVELOPMENT
    assert cfg.secure_flash_uart_bootloader_allow_enc
    assert cfg.secure_uart_rom_dl_mode is RomDownloadMode.INSECURE_ALLOW
    with pytest.raises(SdkconfigError):
        BootloaderConfig.parse(
            "CONFIG_SECURE_FLASH_ENC_ENABLED=y\n"
            "# CONFIG_SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC is not set\n"
        )


def test_release_mode_requires_partition_table_md5():
    with pytest.raises(SdkconfigError) as err:
        BootloaderConfig.parse(
            "CONFIG_SECURE_FLASH_ENC_ENABLED=y\n"
            "CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y\n"
            "# CONFIG_PARTITION_TABLE_MD5 is not set\n"
        )
    assert err.value.line == 3


def test_allow_jtag_needs_insecure_or_development_mode():
    with pytest.raises(SdkconfigError):
        BootloaderConfig.parse("CONFIG_SECURE_BOOT=y\nCONFIG_SECURE_BOOT_ALLOW_JTAG=y\n")
    cfg = BootloaderConfig.parse(
        "CONFIG_SECURE_BOOT=y\nCONFIG_SECURE_BOOT_INSECURE=y\nCONFIG_SECURE_BOOT_ALLOW_JTAG=y\n"
    )
    assert cfg.secure_boot_allow_jtag


# --- defaults -----------------------------------------------------------------------------


def test_defaults_are_esp_idf_defaults():
    cfg = BootloaderConfig.from_options()
    assert cfg == BootloaderConfig.parse("") == BootloaderConfig.from_json({})
    assert not cfg.secure_boot and not cfg.secure_flash_enc_enabled
    assert cfg.secure_uart_rom_dl_mode is None
    assert cfg.partition_table_offset == 0x8000
    assert cfg.partition_table_md5
    assert cfg.esptoolpy_flashsize == "2MB"
    assert not cfg.bootloader_app_rollback_enable
    assert cfg.secure_boot_scheme is None


@pytest.fixture
def esp32c2(monkeypatch):
    """An ESP32-C2-like chip record (ECDSA-only ROM, 4-bit secure version field): adding a
    chip is adding data."""
    chip = dataclasses.replace(
        CHIPS["esp32c6"],
        name="esp32c2",
        display_name="ESP32-C2",
        secure_boot_schemes=frozenset({ECDSA192, ECDSA256}),
        secure_version_bits=4,
    )
    monkeypatch.setitem(CHIPS, "esp32c2", chip)
    return chip


def test_secure_boot_defaults_to_v2_with_the_targets_scheme(esp32c2):
    s3 = BootloaderConfig.from_options(secure_boot=True)
    assert s3.secure_boot_v2_enabled
    assert s3.secure_signed_apps_scheme is SignedAppsScheme.RSA
    assert s3.secure_uart_rom_dl_mode is RomDownloadMode.SECURE
    c2 = BootloaderConfig.from_options(idf_target="esp32c2", secure_boot=True)
    assert c2.secure_signed_apps_scheme is SignedAppsScheme.ECDSA_V2
    assert c2.secure_boot_ecdsa_key_len is EcdsaKeyLen.BITS_256
    assert c2.secure_boot_scheme == "ecdsa256"


def test_ecdsa_p384_scheme():
    cfg = BootloaderConfig.from_options(
        idf_target="esp32p4",
        secure_boot=True,
        secure_boot_insecure=True,
        secure_boot_v2_force_enable_ecdsa=True,
        secure_signed_apps_scheme="ecdsa_v2",
        secure_boot_ecdsa_key_len=EcdsaKeyLen.BITS_384,
    )
    assert cfg.secure_boot_scheme == "ecdsa384"


def test_ecdsa_secure_boot_on_esp32p4_needs_the_insecure_force_option():
    # SECURE_BOOT_V2_ECDSA_INSECURE (hardware errata): ECDSA_V2 needs FORCE_ENABLE_ECDSA
    # under "potentially insecure options" once hardware Secure Boot is on.
    with pytest.raises(UsageError, match="SECURE_BOOT_V2_FORCE_ENABLE_ECDSA"):
        BootloaderConfig.from_options(
            idf_target="esp32p4", secure_boot=True, secure_signed_apps_scheme="ecdsa_v2"
        )
    assert (
        BootloaderConfig.from_options(idf_target="esp32p4", secure_boot=True).secure_boot_scheme
        == "rsa3072"
    )
    signed_only = BootloaderConfig.from_options(
        idf_target="esp32p4",
        secure_signed_apps_no_secure_boot=True,
        secure_signed_apps_scheme="ecdsa_v2",
    )
    assert signed_only.secure_boot_scheme == "ecdsa256"


def test_flash_encryption_defaults():
    cfg = BootloaderConfig.from_options(secure_flash_enc_enabled=True)
    assert cfg.secure_flash_encryption_mode is FlashEncryptionMode.DEVELOPMENT
    assert cfg.secure_flash_encryption_keysize is FlashEncryptionKeySize.AES128
    assert cfg.flash_encryption_key_bits == 256
    assert cfg.secure_flash_check_enc_en_in_app
    assert cfg.nvs_encryption
    release = BootloaderConfig.from_options(
        secure_flash_enc_enabled=True, secure_flash_encryption_mode="release"
    )
    assert release.secure_uart_rom_dl_mode is RomDownloadMode.SECURE
    assert not release.secure_flash_uart_bootloader_allow_enc


def test_key_size_choice_is_hidden_on_targets_without_one():
    cfg = BootloaderConfig.from_options(idf_target="esp32c3", secure_flash_enc_enabled=True)
    assert cfg.secure_flash_encryption_keysize is None
    assert cfg.flash_encryption_key_bits == 256


def test_secure_version_field_size_defaults_by_target(esp32c2, monkeypatch):
    monkeypatch.setitem(
        CHIPS,
        "esp32c5",
        dataclasses.replace(CHIPS["esp32c6"], name="esp32c5", secure_version_bits=9),
    )

    def bits(target):
        return BootloaderConfig.from_options(
            idf_target=target,
            bootloader_app_rollback_enable=True,
            bootloader_app_anti_rollback=True,
        ).bootloader_app_sec_ver_size_efuse_field

    assert bits("esp32s3") == 16
    assert bits("esp32c2") == 4
    assert bits("esp32c5") == 9
    assert (
        BootloaderConfig.from_options(idf_target="esp32c2").bootloader_app_sec_ver_size_efuse_field
        == 4
    )
    with pytest.raises(UsageError, match=r"1\.\.4 on ESP32-C2, got 5"):
        BootloaderConfig.from_options(
            idf_target="esp32c2",
            bootloader_app_rollback_enable=True,
            bootloader_app_anti_rollback=True,
            bootloader_app_sec_ver_size_efuse_field=5,
        )


def test_from_options_rejects_unknown_names_and_forbidden_combinations():
    with pytest.raises(UsageError):
        BootloaderConfig.from_options(secure_bot=True)
    with pytest.raises(UsageError):
        BootloaderConfig.from_options(bootloader_app_anti_rollback=True)
    with pytest.raises(UsageError):
        BootloaderConfig.from_options(secure_flash_encryption_mode="release")
    with pytest.raises(UsageError):
        BootloaderConfig.from_options(
            secure_flash_enc_enabled=True, secure_flash_encryption_mode="fast"
        )
    with pytest.raises(UsageError):
        BootloaderConfig.from_options(esptoolpy_flashsize="3MB")
    with pytest.raises(UsageError):
        BootloaderConfig.from_options(partition_table_offset=0x8800)


def test_signed_apps_without_secure_boot_have_a_scheme():
    cfg = BootloaderConfig.parse("CONFIG_SECURE_SIGNED_APPS_NO_SECURE_BOOT=y\n")
    assert cfg.secure_signed_apps_scheme is SignedAppsScheme.RSA
    assert not cfg.secure_boot_v2_enabled


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"secure_boot": True, "secure_flash_enc_enabled": True},
        {
            "secure_flash_enc_enabled": True,
            "secure_flash_encryption_mode": "release",
            "bootloader_app_rollback_enable": True,
            "bootloader_app_anti_rollback": True,
            "bootloader_app_secure_version": 3,
            "raw": {"FOO": "bar", "N": 5},
        },
        {"idf_target": "esp32c6", "secure_boot": True, "esptoolpy_flashsize": "4MB"},
        {"nvs_encryption": True, "nvs_sec_hmac_efuse_key_id": 3},
    ],
)
def test_kconfgen_json_form_reads_back(options):
    cfg = BootloaderConfig.from_options(**options)
    assert BootloaderConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg


@given(st.text(max_size=300))
def test_random_text_parses_or_format_error(text):
    with contextlib.suppress(FormatError):
        BootloaderConfig.parse(text)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "SECURE_BOOT",
                    "SECURE_FLASH_ENC_ENABLED",
                    "SECURE_FLASH_ENCRYPTION_MODE_RELEASE",
                    "BOOTLOADER_APP_ROLLBACK_ENABLE",
                    "BOOTLOADER_APP_ANTI_ROLLBACK",
                    "BOOTLOADER_APP_SECURE_VERSION",
                    "PARTITION_TABLE_OFFSET",
                    "SECURE_ENABLE_SECURE_ROM_DL_MODE",
                    "IDF_TARGET",
                    "NVS_ENCRYPTION",
                    "NVS_SEC_KEY_PROTECT_USING_HMAC",
                    "NVS_SEC_KEY_PROTECT_USING_FLASH_ENC",
                    "NVS_SEC_HMAC_EFUSE_KEY_ID",
                ]
            ),
            st.sampled_from(["y", "n", "0", "5", "0x9000", '"esp32c3"', '"x"', "bad"]),
        ),
        max_size=8,
    )
)
def test_random_known_options_parse_or_format_error(assignments):
    text = "".join(f"CONFIG_{name}={value}\n" for name, value in assignments)
    with contextlib.suppress(FormatError):
        cfg = BootloaderConfig.parse(text)
        assert BootloaderConfig.from_json(cfg.to_json()) == cfg


def test_nvs_key_protection_scheme_defaults_as_kconfig():
    fe = BootloaderConfig.from_options(secure_flash_enc_enabled=True)
    assert fe.nvs_encryption
    assert fe.nvs_sec_key_protection_scheme is NvsSecKeyProtection.FLASH_ENC
    assert fe.nvs_sec_hmac_efuse_key_id == -1
    # without flash encryption the FLASH_ENC member is hidden: Kconfig takes HMAC
    hmac = BootloaderConfig.from_options(nvs_encryption=True)
    assert hmac.nvs_sec_key_protection_scheme is NvsSecKeyProtection.HMAC
    assert BootloaderConfig.from_options().nvs_sec_key_protection_scheme is None


def test_nvs_hmac_scheme_parses_with_its_key_block():
    cfg = BootloaderConfig.parse(
        "CONFIG_SECURE_FLASH_ENC_ENABLED=y\n"
        "CONFIG_NVS_SEC_KEY_PROTECT_USING_HMAC=y\n"
        "CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID=2\n"
    )
    assert cfg.nvs_sec_key_protect_using_hmac and cfg.nvs_sec_hmac_efuse_key_id == 2
    assert "NVS_SEC_KEY_PROTECT_USING_HMAC" not in cfg.raw
    assert BootloaderConfig.from_json(cfg.to_json()) == cfg


def test_nvs_scheme_options_their_dependencies_forbid_are_rejected():
    with pytest.raises(UsageError, match="SECURE_FLASH_ENC_ENABLED"):
        BootloaderConfig.from_options(
            nvs_encryption=True, nvs_sec_key_protection_scheme="flash_enc"
        )
    with pytest.raises(UsageError, match="NVS_SEC_KEY_PROTECT_USING_HMAC"):
        BootloaderConfig.from_options(secure_flash_enc_enabled=True, nvs_sec_hmac_efuse_key_id=3)
    with pytest.raises(UsageError, match=r"-1\.\.5"):
        BootloaderConfig.from_options(nvs_encryption=True, nvs_sec_hmac_efuse_key_id=6)
    with pytest.raises(SdkconfigError, match="NVS_ENCRYPTION"):
        BootloaderConfig.parse("CONFIG_NVS_SEC_KEY_PROTECT_USING_HMAC=y\n")
