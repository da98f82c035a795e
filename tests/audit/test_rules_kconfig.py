"""The Kconfig checklist rules: each fires on the weakness it names and not on a hardened
configuration; old option names (``sdkconfig.rename``) count as their current names."""

from __future__ import annotations

import pytest

from espsec.audit import Profile, Severity
from espsec.audit.subjects import Inputs, PolicySubject
from espsec.provisioning.wifi_prov import AuthMode, WifiPolicy

from .conftest import config_subject, rule_ids, sdkconfig_text

P4_ECDSA = {
    "IDF_TARGET": '"esp32p4"',
    "SECURE_BOOT_INSECURE": "y",
    "SECURE_BOOT_V2_FORCE_ENABLE_ECDSA": "y",
    "SECURE_SIGNED_APPS_ECDSA_V2_SCHEME": "y",
}

DEVELOPMENT = {
    "SECURE_FLASH_ENCRYPTION_MODE_RELEASE": None,
    "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT": "y",
}

# rule -> changes to the baseline that make it fire, and the option its evidence names
POSITIVE: dict[str, tuple[dict[str, str | None], str]] = {
    "SB001": ({"SECURE_BOOT": None}, "CONFIG_SECURE_BOOT"),
    "SB002": (
        {"SECURE_BOOT": None, "SECURE_SIGNED_APPS_NO_SECURE_BOOT": "y"},
        "CONFIG_SECURE_SIGNED_APPS_NO_SECURE_BOOT",
    ),
    "SB003": ({"SECURE_BOOT_INSECURE": "y"}, "CONFIG_SECURE_BOOT_INSECURE"),
    "SB005": (
        {"SECURE_BOOT_INSECURE": "y", "SECURE_BOOT_ALLOW_SHORT_APP_PARTITION": "y"},
        "CONFIG_SECURE_BOOT_ALLOW_SHORT_APP_PARTITION",
    ),
    "SB006": (
        {"SECURE_BOOT_INSECURE": "y", "SECURE_BOOT_ALLOW_UNUSED_DIGEST_SLOTS": "y"},
        "CONFIG_SECURE_BOOT_ALLOW_UNUSED_DIGEST_SLOTS",
    ),
    "SB007": (
        {"SECURE_BOOT_V2_ALLOW_EFUSE_RD_DIS": "y"},
        "CONFIG_SECURE_BOOT_V2_ALLOW_EFUSE_RD_DIS",
    ),
    "SB008": (
        {"SECURE_BOOT_ENABLE_AGGRESSIVE_KEY_REVOKE": "y"},
        "CONFIG_SECURE_BOOT_ENABLE_AGGRESSIVE_KEY_REVOKE",
    ),
    "SB010": (
        {**P4_ECDSA, "SECURE_BOOT_ECDSA_KEY_LEN_192_BITS": "y"},
        "CONFIG_SECURE_BOOT_ECDSA_KEY_LEN_192_BITS",
    ),
    "SB011": (P4_ECDSA, "CONFIG_SECURE_SIGNED_APPS_ECDSA_V2_SCHEME"),
    "FE001": (
        {"SECURE_FLASH_ENC_ENABLED": None, "SECURE_FLASH_ENCRYPTION_MODE_RELEASE": None},
        "CONFIG_SECURE_FLASH_ENC_ENABLED",
    ),
    "FE002": (
        {
            "SECURE_FLASH_ENCRYPTION_MODE_RELEASE": None,
            "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT": "y",
        },
        "CONFIG_SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",
    ),
    "FE003": (
        {
            "SECURE_FLASH_ENCRYPTION_MODE_RELEASE": None,
            "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT": "y",
            "SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE": "y",
        },
        "CONFIG_SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE",
    ),
    "FE004": (
        {"SECURE_FLASH_CHECK_ENC_EN_IN_APP": "n"},
        "CONFIG_SECURE_FLASH_CHECK_ENC_EN_IN_APP",
    ),
    "FE005": (
        {"SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE": "y"},
        "CONFIG_SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE",
    ),
    "DL001": ({"SECURE_INSECURE_ALLOW_DL_MODE": "y"}, "CONFIG_SECURE_INSECURE_ALLOW_DL_MODE"),
    "DBG001": (
        {"SECURE_BOOT_INSECURE": "y", "SECURE_BOOT_ALLOW_JTAG": "y"},
        "CONFIG_SECURE_BOOT_ALLOW_JTAG",
    ),
    # the v5.5 names, which v6.0's components/esp_system/sdkconfig.rename maps
    "MP001": ({"ESP_SYSTEM_MEMPROT_FEATURE": "n"}, "CONFIG_ESP_SYSTEM_MEMPROT"),
    "MP002": ({"ESP_SYSTEM_MEMPROT_FEATURE_LOCK": "n"}, "CONFIG_ESP_SYSTEM_MEMPROT_PMS_LOCK"),
    "NVS001": ({"NVS_ENCRYPTION": "n"}, "CONFIG_ESP_WIFI_NVS_ENABLED"),
    "NVS002": (
        {"NVS_ENCRYPTION": "n", "ESP_WIFI_NVS_ENABLED": "n"},
        "CONFIG_NVS_ENCRYPTION",
    ),
    "TLS001": (
        {"ESP_TLS_INSECURE": "y", "ESP_TLS_SKIP_SERVER_CERT_VERIFY": "y"},
        "CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY",
    ),
    "TLS002": ({"MBEDTLS_CERTIFICATE_BUNDLE": "n"}, "CONFIG_MBEDTLS_CERTIFICATE_BUNDLE"),
    "TLS003": ({"ESP_TLS_INSECURE": "y"}, "CONFIG_ESP_TLS_INSECURE"),
    "TLS004": (
        {"ESP_TLS_SERVER_MIN_AUTH_MODE_OPTIONAL": "y"},
        "CONFIG_ESP_TLS_SERVER_MIN_AUTH_MODE_OPTIONAL",
    ),
    # the old name of components/esp_https_ota/sdkconfig.rename
    "OTA001": ({"OTA_ALLOW_HTTP": "y"}, "CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP"),
    "OTA002": (
        {"BOOTLOADER_APP_ROLLBACK_ENABLE": None, "BOOTLOADER_APP_ANTI_ROLLBACK": None},
        "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE",
    ),
    "OTA003": ({"BOOTLOADER_APP_ANTI_ROLLBACK": "n"}, "CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK"),
    "OTA004": (
        {"IDF_TARGET": '"esp32p4"', "BOOTLOADER_RECOVERY_ENABLE": "y"},
        "CONFIG_BOOTLOADER_ANTI_ROLLBACK_ENABLE",
    ),
    "CFG001": (
        {"SECURE_BOOT_INSECURE": "y", "SECURE_BOOT_REQUIRE_ALREADY_ENABLED": "y"},
        "CONFIG_SECURE_BOOT_REQUIRE_ALREADY_ENABLED",
    ),
    # release-mode flash encryption is not offered with virtual eFuses
    "CFG002": ({**DEVELOPMENT, "EFUSE_VIRTUAL": "y"}, "CONFIG_EFUSE_VIRTUAL"),
    "CFG003": (
        {**DEVELOPMENT, "BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE": "y"},
        "CONFIG_BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE",
    ),
    "CFG004": (
        {
            "SECURE_FLASH_ENCRYPTION_MODE_RELEASE": None,
            "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT": "y",
            "PARTITION_TABLE_MD5": "n",
        },
        "CONFIG_PARTITION_TABLE_MD5",
    ),
    "WIFI001": (
        {"ESP_WIFI_AUTH_WPA2_PSK": None, "ESP_WIFI_AUTH_OPEN": "y"},
        "CONFIG_ESP_WIFI_AUTH_OPEN",
    ),
    "WIFI003": ({"ESP_WIFI_ENABLE_WPA3_SAE": "n"}, "CONFIG_ESP_WIFI_ENABLE_WPA3_SAE"),
    "PROV001": (
        {"ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_0": "y"},
        "CONFIG_ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_0",
    ),
    "PROV002": (
        {"ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_1": "y"},
        "CONFIG_ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_1",
    ),
}


def test_hardened_baseline_passes_every_rule(run):
    report = run(configs=[config_subject(sdkconfig_text())])
    assert report.findings == ()


@pytest.mark.parametrize("rule", sorted(POSITIVE))
def test_rule_fires_on_its_weakness(run, rule):
    changes, option = POSITIVE[rule]
    subject = config_subject(sdkconfig_text(changes))
    report = run(configs=[subject])
    found = report.by_rule(rule)
    assert found, f"{rule} did not fire"
    evidence = [e for f in found for e in f.evidence]
    assert option in {e.name for e in evidence}
    assert all(e.kind == "kconfig" and e.source == "sdkconfig" for e in evidence)


@pytest.mark.parametrize("rule", sorted(POSITIVE))
def test_rule_is_silent_without_its_weakness(run, rule):
    # the baseline differs from each positive case only in that rule's options
    report = run(configs=[config_subject(sdkconfig_text())])
    assert rule not in rule_ids(report)


def test_evidence_names_the_line_that_set_the_option(run):
    text = sdkconfig_text({"ESP_TLS_INSECURE": "y", "ESP_TLS_SKIP_SERVER_CERT_VERIFY": "y"})
    line = text.splitlines().index("CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY=y") + 1
    (finding,) = run(configs=[config_subject(text)]).by_rule("TLS001")
    (evidence,) = [e for e in finding.evidence if e.name.endswith("SKIP_SERVER_CERT_VERIFY")]
    assert evidence.line == line
    assert "components/esp-tls/Kconfig" in finding.message


def test_an_empty_default_bundle_without_a_custom_one_is_a_finding(run):
    text = sdkconfig_text({"MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_NONE": "y"})
    assert "TLS002" in rule_ids(run(configs=[config_subject(text)]))
    text = sdkconfig_text(
        {
            "MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_NONE": "y",
            "MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE": "y",
            "MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE_PATH": '"certs/ca.pem"',
        }
    )
    assert "TLS002" not in rule_ids(run(configs=[config_subject(text)]))


def test_development_profile_accepts_what_a_lab_build_needs(run):
    text = sdkconfig_text(
        {
            "SECURE_BOOT": None,
            "SECURE_FLASH_ENCRYPTION_MODE_RELEASE": None,
            "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT": "y",
            "ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_0": "y",
        }
    )
    production = run(configs=[config_subject(text)])
    development = run(configs=[config_subject(text)], profile=Profile.DEVELOPMENT)
    assert {"SB001", "FE002", "PROV001"} <= rule_ids(production)
    assert rule_ids(development).isdisjoint({"SB001", "FE002", "PROV001"})


def test_a_weakness_costs_less_in_development(run):
    text = sdkconfig_text({"OTA_ALLOW_HTTP": "y"})
    (prod,) = run(configs=[config_subject(text)]).by_rule("OTA001")
    (dev,) = run(configs=[config_subject(text)], profile=Profile.DEVELOPMENT).by_rule("OTA001")
    assert (prod.severity, dev.severity) == (Severity.HIGH, Severity.LOW)


def test_wifi_policy_with_weak_auth_and_no_pmf(run):
    weak = PolicySubject("policy.json", WifiPolicy(AuthMode.WEP, False, False))
    strong = PolicySubject("strong.json", WifiPolicy(AuthMode.WPA2_PSK, True, False))
    report = run(Inputs(policies=[weak, strong], described=["policies"]))
    assert {f.subject for f in report.by_rule("WIFI001")} == {"policy.json"}
    assert {f.subject for f in report.by_rule("WIFI002")} == {"policy.json"}


def test_pmf_required_policy_is_not_a_finding(run):
    strong = PolicySubject("strong.json", WifiPolicy(AuthMode.WPA3_PSK, True, True))
    report = run(Inputs(policies=[strong], described=["policy"]))
    assert rule_ids(report).isdisjoint({"WIFI001", "WIFI002"})
