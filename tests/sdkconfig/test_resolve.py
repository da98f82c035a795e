"""The table resolver: select, depends on, choices, renames and names, from table rows.

The first half runs a small table made for the test, so each Kconfig rule is pinned on
its own; the second half pins the rules of the real table that change security outcomes
(components/bootloader/Kconfig.projbuild, ESP-IDF v5.5).
"""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espsec.chips import CHIPS, get_chip
from espsec.errors import UsageError
from espsec.sdkconfig import (
    TABLE,
    BootloaderConfig,
    FlashEncryptionMode,
    SdkconfigError,
    read_json,
    read_name_values,
    read_sdkconfig,
    resolve,
)
from espsec.sdkconfig.table import BOOL, HEX, INT, Choice, Option, Rename, Table, TableError

TOY = Table.of(
    [
        Option("TOY_A", BOOL, default=("n",)),
        Option("TOY_B", BOOL, depends="TOY_A", default=("y",)),
        Option("TOY_C", BOOL, select=("TOY_D if TOY_A", "OTHER_SELECTED")),
        Option("TOY_D", BOOL, depends="TOY_NEVER"),
        Option("TOY_NEVER", BOOL, prompt=False),
        Option("TOY_DERIVED", BOOL, prompt=False, default=("y if SOC_HMAC_SUPPORTED",)),
        Choice("TOY_MODE", depends="TOY_A", default=("TOY_MODE_Y if TOY_C",)),
        Option("TOY_MODE_X", BOOL, choice="TOY_MODE"),
        Option("TOY_MODE_Y", BOOL, choice="TOY_MODE"),
        Option("TOY_MODE_Z", BOOL, choice="TOY_MODE", depends="TOY_B && !TOY_C"),
        Option("TOY_BITS", INT, depends="TOY_A", default=("CHIP_SECURE_VERSION_BITS",)),
        Option("TOY_SLOT", INT, default=("-1",), range=("-1 5",)),
        Option("TOY_OFFSET", HEX, default=("ESP_ROM_BOOTLOADER_OFFSET_FLASH",)),
        Option("TOY_P4_ONLY", BOOL, chips=frozenset({"esp32p4"})),
    ],
    [Rename("OLD_A", "TOY_A"), Rename("TOY_NO_C", "TOY_C", inverted=True)],
    namespaces=("TOY_",),
    external=("OTHER_SELECTED",),
    derived=("SOC_", "CHIP_", "ESP_ROM_", "IDF_TARGET"),
)


def toy(text: str, *, target: str = "esp32s3"):
    found = read_sdkconfig(f'CONFIG_IDF_TARGET="{target}"\n' + text, source="toy", table=TOY)
    return resolve(found, table=TOY)


def refused(text: str, match: str, *, line: int | None = None) -> SdkconfigError:
    with pytest.raises(SdkconfigError, match=match) as err:
        toy(text)
    if line is not None:
        assert err.value.line == line
    return err.value


# --- depends on, defaults ----------------------------------------------------------------


def test_option_whose_dependency_fails_is_off_and_takes_no_default():
    values = toy("").values
    assert "TOY_B" not in values and "TOY_BITS" not in values
    on = toy("CONFIG_TOY_A=y\n").values
    assert on["TOY_B"] is True  # default y once TOY_A holds
    assert on["TOY_BITS"] == 16  # chip record: esp32s3 SECURE_VERSION width


def test_assigning_an_option_its_dependency_forbids_is_refused_with_its_line():
    err = refused("# x\nCONFIG_TOY_B=y\n", "cannot be set: it depends on TOY_A", line=3)
    assert "CONFIG_TOY_B" in str(err)


def test_option_without_prompt_ignores_the_input_as_kconfig_does():
    found = toy("CONFIG_TOY_NEVER=y\n# CONFIG_TOY_DERIVED is not set\n").values
    assert found["TOY_NEVER"] is False
    assert found["TOY_DERIVED"] is True  # SOC_HMAC_SUPPORTED, from the chip record


def test_option_of_another_chip_is_refused():
    refused("CONFIG_TOY_P4_ONLY=y\n", "a target other than ESP32-S3")
    assert toy("CONFIG_TOY_P4_ONLY=y\n", target="esp32p4").values["TOY_P4_ONLY"] is True


def test_chip_symbols_come_from_the_chip_record():
    assert toy("", target="esp32p4").values["TOY_OFFSET"] == get_chip("esp32p4").bootloader_offset
    assert toy("", target="esp32s3").values["TOY_OFFSET"] == 0


def test_target_architecture_symbols_come_from_the_chip_record():
    """``IDF_TARGET_ARCH_RISCV`` / ``_XTENSA`` (components/soc Kconfig) are not chip names."""
    from espsec.sdkconfig.resolve import chip_symbol

    p4, s3 = get_chip("esp32p4"), get_chip("esp32s3")
    assert chip_symbol(p4, "IDF_TARGET_ARCH_RISCV") is True
    assert chip_symbol(p4, "IDF_TARGET_ARCH_XTENSA") is False
    assert chip_symbol(s3, "IDF_TARGET_ARCH_XTENSA") is True
    assert chip_symbol(s3, "IDF_TARGET_ARCH") == "xtensa"
    assert chip_symbol(s3, "IDF_TARGET_ESP32S3") is True


def test_range_is_checked():
    assert toy("CONFIG_TOY_SLOT=5\n").values["TOY_SLOT"] == 5
    refused("CONFIG_TOY_SLOT=6\n", r"must be -1\.\.5 on ESP32-S3, got 6", line=2)


def test_value_of_the_wrong_type_is_refused():
    refused('CONFIG_TOY_SLOT="3"\n', "wrong type", line=2)
    refused("CONFIG_TOY_A=1\n", "wrong type", line=2)


# --- select ------------------------------------------------------------------------------


def test_select_forces_an_option_on_whatever_its_own_dependencies_say():
    found = toy("CONFIG_TOY_A=y\nCONFIG_TOY_C=y\n").values
    assert found["TOY_D"] is True  # depends on TOY_NEVER, selected anyway


def test_select_with_a_false_condition_does_nothing():
    assert "TOY_D" not in toy("CONFIG_TOY_C=y\n").values


def test_switching_off_a_selected_option_is_refused_naming_the_selector():
    refused(
        "CONFIG_TOY_A=y\nCONFIG_TOY_C=y\n# CONFIG_TOY_D is not set\n",
        "is selected by TOY_C and cannot be off",
        line=4,
    )


def test_selected_option_of_another_component_is_reported_in_raw():
    assert toy("CONFIG_TOY_C=y\n").raw == {"OTHER_SELECTED": True}


# --- choices -----------------------------------------------------------------------------


def test_choice_takes_its_default_then_its_first_visible_member():
    assert toy("CONFIG_TOY_A=y\n").values["TOY_MODE_X"] is True  # default's condition fails
    found = toy("CONFIG_TOY_A=y\nCONFIG_TOY_C=y\n").values
    assert found["TOY_MODE_Y"] is True and found["TOY_MODE_X"] is False


def test_choice_takes_its_assigned_member():
    assert toy("CONFIG_TOY_A=y\nCONFIG_TOY_MODE_Z=y\n").values["TOY_MODE_Z"] is True


def test_hidden_choice_member_cannot_be_picked():
    refused(
        "CONFIG_TOY_A=y\nCONFIG_TOY_C=y\nCONFIG_TOY_MODE_Z=y\n",
        "cannot be set: it depends on TOY_B && !TOY_C",
        line=4,
    )


def test_member_of_a_hidden_choice_cannot_be_picked():
    refused("CONFIG_TOY_MODE_X=y\n", "cannot be set: it depends on TOY_A")


def test_two_members_of_one_choice_conflict():
    refused(
        "CONFIG_TOY_A=y\nCONFIG_TOY_MODE_X=y\nCONFIG_TOY_MODE_Y=y\n",
        "conflicts with line 3: TOY_MODE is a choice of one",
        line=4,
    )


# --- renames -----------------------------------------------------------------------------


def test_old_name_resolves_through_the_rename_table():
    assert toy("CONFIG_OLD_A=y\n").values["TOY_B"] is True


def test_inverted_rename_negates_the_value():
    assert toy("# CONFIG_TOY_NO_C is not set\n").values["TOY_C"] is True
    assert toy("CONFIG_TOY_NO_C=y\n").values["TOY_C"] is False


def test_inverted_rename_of_a_non_bool_value_is_refused():
    refused("CONFIG_TOY_NO_C=3\n", "wrong type", line=2)


def test_old_and_new_names_that_disagree_are_refused():
    refused("CONFIG_TOY_A=y\n# CONFIG_OLD_A is not set\n", "conflicts with line 2", line=3)
    assert toy("CONFIG_TOY_A=y\nCONFIG_OLD_A=y\n").values["TOY_B"] is True


def test_rename_names_the_old_name_in_errors():
    refused("CONFIG_OLD_A=3\n", "CONFIG_OLD_A: wrong type")


def test_renames_of_the_real_table():
    # components/bootloader/sdkconfig.rename
    cfg = BootloaderConfig.parse(
        "CONFIG_FLASH_ENCRYPTION_ENABLED=y\nCONFIG_FLASH_ENCRYPTION_UART_BOOTLOADER_ALLOW_CACHE=y\n"
    )
    assert cfg.secure_flash_enc_enabled and cfg.secure_flash_uart_bootloader_allow_cache


# --- names -------------------------------------------------------------------------------


def test_file_refuses_unknown_names_in_the_tables_namespaces_and_keeps_the_rest():
    refused("CONFIG_TOY_TYPO=y\n", "CONFIG_TOY_TYPO: unknown option", line=2)
    assert toy("CONFIG_FREERTOS_HZ=100\n").raw == {"FREERTOS_HZ": 100}


def test_name_values_refuse_every_unknown_name():
    with pytest.raises(SdkconfigError, match="CONFIG_FREERTOS_HZ: unknown option"):
        read_name_values(["FREERTOS_HZ=100"], table=TOY)
    with pytest.raises(SdkconfigError, match="--config: CONFIG_SECURE_BOT: unknown option"):
        BootloaderConfig.from_name_values(["SECURE_BOT=y"])


def test_name_values_without_an_equals_sign_are_a_usage_error():
    with pytest.raises(UsageError, match="NAME=VALUE"):
        read_name_values(["SECURE_BOOT"])


def test_json_refuses_unknown_names_and_bad_values():
    with pytest.raises(SdkconfigError, match="CONFIG_SECURE_BOOT_ALOW_JTAG: unknown option"):
        read_json({"SECURE_BOOT_ALOW_JTAG": True})
    with pytest.raises(SdkconfigError, match="malformed value"):
        read_json({"SECURE_BOOT": None})
    with pytest.raises(SdkconfigError, match="not a kconfgen"):
        read_json(["SECURE_BOOT"])


def test_table_refuses_rows_that_read_undeclared_symbols():
    with pytest.raises(TableError, match="TOY_MISSING"):
        Table.of([Option("TOY_X", BOOL, depends="TOY_MISSING")])
    with pytest.raises(TableError, match="defined twice"):
        Table.of([Option("TOY_X", BOOL), Option("TOY_X", BOOL)])
    with pytest.raises(TableError, match="unknown option"):
        Table.of([Option("TOY_X", BOOL)], [Rename("OLD", "TOY_Y")])
    with pytest.raises(TableError, match="inverts non-bool"):
        Table.of([Option("TOY_X", INT)], [Rename("OLD", "TOY_X", inverted=True)])


# --- every input kind builds the same object -----------------------------------------------

SETTINGS = {
    "IDF_TARGET": "esp32p4",
    "SECURE_BOOT": True,
    "SECURE_FLASH_ENC_ENABLED": True,
    "SECURE_FLASH_ENCRYPTION_MODE_RELEASE": True,
    "SECURE_FLASH_ENCRYPTION_AES256": True,
    "BOOTLOADER_APP_ROLLBACK_ENABLE": True,
    "BOOTLOADER_APP_ANTI_ROLLBACK": True,
    "BOOTLOADER_APP_SECURE_VERSION": 3,
    "PARTITION_TABLE_OFFSET": 0x10000,
    "SECURE_BOOT_SIGNING_KEY": "keys/sb.pem",
    "ESPTOOLPY_FLASHSIZE_8MB": True,
}


def _text(value: object) -> str:
    if value is True:
        return "y"
    if isinstance(value, int):
        return hex(value) if value > 0xFFF else str(value)
    return f'"{value}"'


def test_every_input_kind_yields_the_same_configuration():
    text = "".join(f"CONFIG_{name}={_text(value)}\n" for name, value in SETTINGS.items())
    from_text = BootloaderConfig.parse(text)
    from_json = BootloaderConfig.from_json(json.loads(json.dumps(SETTINGS)))
    from_name_values = BootloaderConfig.from_name_values(
        [f"{name}={_text(value).strip(chr(34))}" for name, value in SETTINGS.items()]
    )
    from_options = BootloaderConfig.from_options(
        idf_target="esp32p4",
        secure_boot=True,
        secure_flash_enc_enabled=True,
        secure_flash_encryption_mode=FlashEncryptionMode.RELEASE,
        secure_flash_encryption_keysize="aes256",
        bootloader_app_rollback_enable=True,
        bootloader_app_anti_rollback=True,
        bootloader_app_secure_version=3,
        partition_table_offset=0x10000,
        secure_boot_signing_key="keys/sb.pem",
        esptoolpy_flashsize="8MB",
    )
    assert from_text == from_json == from_name_values == from_options
    assert from_text.chip.name == "esp32p4" and from_text.flash_encryption_key_bits == 512
    assert BootloaderConfig.from_json(from_text.to_json()) == from_text


def test_file_and_name_values_merge_before_resolution():
    merged = {
        **read_sdkconfig("CONFIG_APP_ROLLBACK_ENABLE=y\n"),
        **read_name_values(["BOOTLOADER_APP_ROLLBACK_ENABLE=n"]),
    }
    assert not BootloaderConfig.resolve(merged).bootloader_app_rollback_enable


# --- security-relevant selects of components/bootloader/Kconfig.projbuild -------------------


def config(*items: str, target: str = "esp32s3") -> BootloaderConfig:
    return BootloaderConfig.from_name_values([f"IDF_TARGET={target}", *items])


def test_development_mode_selects_uart_bootloader_encryption_and_skips_cache_write_protection():
    # MODE_DEVELOPMENT selects ALLOW_ENC, which selects SKIP_WRITE_PROTECTION_CACHE
    # if SECURE_FLASH_HAS_WRITE_PROTECTION_CACHE (the chip has DIS_ICACHE)
    cfg = config("SECURE_FLASH_ENC_ENABLED=y")
    assert cfg.secure_flash_encryption_mode is FlashEncryptionMode.DEVELOPMENT
    assert cfg.secure_flash_uart_bootloader_allow_enc
    assert cfg.secure_flash_has_write_protection_cache
    assert cfg.secure_flash_skip_write_protection_cache


def test_release_mode_write_protects_the_cache_eFuses():
    cfg = config("SECURE_FLASH_ENC_ENABLED=y", "SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y")
    assert not cfg.secure_flash_uart_bootloader_allow_enc
    assert cfg.secure_flash_has_write_protection_cache
    assert not cfg.secure_flash_skip_write_protection_cache


@pytest.mark.parametrize(
    "items",
    [
        ("SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE=y",),  # development mode only
        (
            "SECURE_BOOT=y",
            "SECURE_BOOT_INSECURE=y",
            "SECURE_BOOT_ALLOW_JTAG=y",
            "SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y",  # ALLOW_ENC off: JTAG alone selects
        ),
    ],
    ids=["allow-cache", "allow-jtag"],
)
def test_allow_cache_and_allow_jtag_select_skipping_cache_write_protection(items):
    cfg = config("SECURE_FLASH_ENC_ENABLED=y", *items)
    assert cfg.secure_flash_skip_write_protection_cache
    with pytest.raises(SdkconfigError, match=r"is selected by .* and cannot be off"):
        config("SECURE_FLASH_ENC_ENABLED=y", *items, "SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE=n")


def test_esp32p4_has_no_cache_write_protection_to_skip():
    cfg = config("SECURE_FLASH_ENC_ENABLED=y", target="esp32p4")
    assert cfg.secure_flash_uart_bootloader_allow_enc
    assert not cfg.secure_flash_has_write_protection_cache
    assert not cfg.secure_flash_skip_write_protection_cache


def test_uart_bootloader_cache_cannot_be_left_on_where_the_rom_has_no_such_eFuse():
    # ALLOW_CACHE depends on SOC_EFUSE_DIS_DOWNLOAD_ICACHE / _DCACHE: not on the P4
    with pytest.raises(SdkconfigError, match="SOC_EFUSE_DIS_DOWNLOAD_ICACHE"):
        config(
            "SECURE_FLASH_ENC_ENABLED=y",
            "SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE=y",
            target="esp32p4",
        )


def test_release_mode_selects_partition_table_md5():
    assert config("SECURE_FLASH_ENC_ENABLED=y", "SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y").values[
        "PARTITION_TABLE_MD5"
    ]
    with pytest.raises(SdkconfigError, match="selected by SECURE_FLASH_ENCRYPTION_MODE_RELEASE"):
        config(
            "SECURE_FLASH_ENC_ENABLED=y",
            "SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y",
            "PARTITION_TABLE_MD5=n",
        )


def test_secure_boot_and_secure_download_mode_select_no_stub():
    assert not config().values["ESPTOOLPY_NO_STUB"]
    assert config("SECURE_BOOT=y").values["ESPTOOLPY_NO_STUB"]
    assert config(
        "SECURE_FLASH_ENC_ENABLED=y",
        "SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y",
        "SECURE_ENABLE_SECURE_ROM_DL_MODE=y",
    ).values["ESPTOOLPY_NO_STUB"]
    with pytest.raises(SdkconfigError, match="selected by SECURE_BOOT"):
        config("SECURE_BOOT=y", "ESPTOOLPY_NO_STUB=n")


def test_flash_encryption_selects_encrypted_flash_access_of_spi_flash():
    assert config("SECURE_FLASH_ENC_ENABLED=y").raw == {
        "SPI_FLASH_ENABLE_ENCRYPTED_READ_WRITE": True
    }


def test_secure_version_emulation_selects_virtual_eFuses_which_rule_out_release_mode():
    base = ("BOOTLOADER_APP_ROLLBACK_ENABLE=y", "BOOTLOADER_APP_ANTI_ROLLBACK=y")
    assert config(*base, "BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE=y").raw["EFUSE_VIRTUAL"]
    with pytest.raises(SdkconfigError, match="EFUSE_VIRTUAL"):
        config(
            *base,
            "BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE=y",
            "SECURE_FLASH_ENC_ENABLED=y",
            "SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y",
        )


def test_skipping_image_validation_is_refused_when_the_bootloader_checks_signatures():
    cfg = config("BOOTLOADER_SKIP_VALIDATE_ALWAYS=y")
    assert cfg.values["BOOTLOADER_SKIP_VALIDATE_ON_POWER_ON"]
    assert cfg.values["BOOTLOADER_SKIP_VALIDATE_IN_DEEP_SLEEP"]
    with pytest.raises(SdkconfigError, match="!SECURE_SIGNED_ON_BOOT"):
        config("SECURE_BOOT=y", "BOOTLOADER_SKIP_VALIDATE_ALWAYS=y")


def test_secure_signed_on_boot_is_computed_not_read():
    assert config("SECURE_BOOT=y").secure_signed_on_boot
    assert config("SECURE_BOOT=y", "SECURE_SIGNED_ON_BOOT=n").secure_signed_on_boot
    assert not config("SECURE_SIGNED_ON_BOOT=y").secure_signed_on_boot


def test_hmac_nvs_scheme_and_aggressive_revoke_follow_soc_capabilities():
    assert config("NVS_ENCRYPTION=y").nvs_sec_key_protect_using_hmac
    assert config("SECURE_BOOT=y", "SECURE_BOOT_ENABLE_AGGRESSIVE_KEY_REVOKE=y").values[
        "SECURE_BOOT_ENABLE_AGGRESSIVE_KEY_REVOKE"
    ]


# --- the chip records the table reads --------------------------------------------------------


def test_no_chip_lists_a_soc_capability_another_field_already_states():
    for chip in CHIPS.values():
        implied = chip.soc_caps - chip.extra_soc_caps
        assert not (implied & chip.extra_soc_caps), chip.name
        assert all(cap.startswith("SOC_") for cap in chip.soc_caps)


def test_every_row_cites_its_upstream_file():
    for row in TABLE.rows.values():
        assert row.option.source.startswith("components/"), row.name


# --- any assignment resolves or is refused in one line ------------------------------------

_TYPED = [name for name, value in vars(BootloaderConfig).items() if hasattr(value, "option")]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*sorted(TABLE.rows), "IDF_TARGET", "APP_ROLLBACK_ENABLE"]),
            st.sampled_from(["y", "n", "0", "3", "-1", "0x9000", '"esp32p4"', '"x"']),
        ),
        max_size=12,
    )
)
def test_any_assignments_resolve_to_a_stable_configuration_or_one_error(assignments):
    text = "".join(f"CONFIG_{name}={value}\n" for name, value in assignments)
    try:
        cfg = BootloaderConfig.parse(text, source="fuzz")
    except SdkconfigError as exc:
        assert str(exc).startswith("fuzz: ") and "\n" not in str(exc)
        return
    assert BootloaderConfig.from_json(cfg.to_json()) == cfg
    for name in _TYPED:
        with contextlib.suppress(SdkconfigError):
            getattr(cfg, name)
