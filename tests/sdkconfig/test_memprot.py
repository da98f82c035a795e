"""Memory protection from the build configuration: v6.0 rows, v5.5 names through the
``components/esp_system/sdkconfig.rename`` of v6.0."""

from __future__ import annotations

import pytest

from espsec.sdkconfig import BootloaderConfig, SdkconfigError
from espsec.sdkconfig.memprot import memory_protection


def test_s3_defaults_to_locked_pms():
    mp = memory_protection(BootloaderConfig.from_options())
    assert (mp.scheme, mp.enabled, mp.locked) == ("PMS", True, True)


def test_v55_memprot_feature_name_resolves_to_the_v60_switch():
    config = BootloaderConfig.parse(
        "CONFIG_ESP_SYSTEM_MEMPROT_FEATURE=n\n# CONFIG_ESP_SYSTEM_MEMPROT_FEATURE_LOCK is not set\n"
    )
    assert config.values["ESP_SYSTEM_MEMPROT"] is False
    assert not memory_protection(config).enabled


def test_v55_lock_name_resolves_to_pms_lock():
    config = BootloaderConfig.parse("CONFIG_ESP_SYSTEM_MEMPROT_FEATURE_LOCK=n\n")
    assert memory_protection(config).locked is False


def test_v55_pmp_idram_split_name_resolves_on_p4():
    config = BootloaderConfig.parse(
        'CONFIG_IDF_TARGET="esp32p4"\n# CONFIG_ESP_SYSTEM_PMP_IDRAM_SPLIT is not set\n'
    )
    mp = memory_protection(config)
    assert (mp.scheme, mp.enabled, mp.apm) == ("PMP", False, True)


def test_v60_pms_choice_is_refused_on_a_pmp_chip():
    with pytest.raises(SdkconfigError, match="ESP_SYSTEM_MEMPROT_PMS"):
        BootloaderConfig.parse('CONFIG_IDF_TARGET="esp32p4"\nCONFIG_ESP_SYSTEM_MEMPROT_PMS=y\n')


def test_old_and_new_names_that_disagree_are_refused():
    with pytest.raises(SdkconfigError, match="conflicts"):
        BootloaderConfig.parse("CONFIG_ESP_SYSTEM_MEMPROT=y\nCONFIG_ESP_SYSTEM_MEMPROT_FEATURE=n\n")


def test_https_ota_allow_http_old_name_resolves():
    config = BootloaderConfig.parse("CONFIG_OTA_ALLOW_HTTP=y\n")
    assert config.values["ESP_HTTPS_OTA_ALLOW_HTTP"] is True


def test_skip_server_cert_verify_needs_the_insecure_menu():
    with pytest.raises(SdkconfigError, match="ESP_TLS_INSECURE"):
        BootloaderConfig.parse("CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY=y\n")
