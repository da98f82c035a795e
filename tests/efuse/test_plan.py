"""Burn plans: every changed bit, irreversibility, and the combinations that brick or
weaken a chip refused before anything is burned."""

from __future__ import annotations

import pytest

from espsec import efuse
from espsec.efuse import BurnField, BurnKey, BurnKeyDigest, BurnPlan, WriteProtect
from espsec.errors import UsageError

KEY = bytes(range(32))
DIGEST = bytes(range(100, 132))


class Files:
    """A resolver over an in-memory dict of files."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def key(self, path: str, purpose: str) -> bytes:
        return self.files[path]

    def digest(self, path: str) -> bytes:
        return self.files[path]

    def scheme(self, path: str) -> str | None:
        return None


def codes(report: efuse.PlanReport, severity: str | None = None) -> set[str]:
    return {f.code for f in report.findings if severity is None or f.severity == severity}


def secured_s3() -> efuse.Efuses:
    """A sensible production state: FE key + SB digest burned, nothing enabled yet."""
    e = efuse.new("esp32s3")
    efuse.burn_key(e, "BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    efuse.burn_key_digest(e, "BLOCK_KEY1", DIGEST, "SECURE_BOOT_DIGEST0")
    return e


def test_parse_plan_accepts_espefuse_commands_and_comments():
    text = """
    # production plan
    burn-key BLOCK_KEY0 fe.bin XTS_AES_128_KEY --no-read-protect
    burn-key-digest BLOCK_KEY1 "sb pub.pem" SECURE_BOOT_DIGEST0
    burn-efuse SPI_BOOT_CRYPT_CNT 1 SECURE_BOOT_EN 1   # both postponed
    burn DIS_PAD_JTAG
    write-protect-efuse DIS_DOWNLOAD_MANUAL_ENCRYPT
    read-protect BLOCK_KEY0
    """
    lines = efuse.parse_plan(text)
    assert [ln.command for ln in lines] == [
        "burn-key",
        "burn-key-digest",
        "burn",
        "burn",
        "write-protect",
        "read-protect",
    ]
    assert lines[1].args == ("BLOCK_KEY1", "sb pub.pem", "SECURE_BOOT_DIGEST0")
    assert lines[0].options == {"--no-read-protect"}
    layout = efuse.layout_for("esp32s3")
    ops = efuse.build_operations(layout, lines, Files({"fe.bin": KEY, "sb pub.pem": DIGEST}))
    assert ops[0] == BurnKey("BLOCK_KEY0", KEY, "XTS_AES_128_KEY", True, False)
    assert ops[1] == BurnKeyDigest("BLOCK_KEY1", DIGEST, "SECURE_BOOT_DIGEST0", True)
    assert ops[2:5] == [
        BurnField("SPI_BOOT_CRYPT_CNT", 1),
        BurnField("SECURE_BOOT_EN", 1),
        BurnField("DIS_PAD_JTAG", None),
    ]


@pytest.mark.parametrize(
    "text,match",
    [
        ("burn-everything X", "line 1: unknown command 'burn-everything'"),
        ("\nburn-key BLOCK_KEY0 k.bin", "line 2: burn-key takes groups of BLOCK FILE PURPOSE"),
        ("burn-efuse SECURE_VERSION", None),
        ("burn-key BLOCK_KEY0 k XTS_AES_128_KEY --force", "has no option --force"),
        ('burn-efuse "unterminated', "line 1"),
    ],
)
def test_plan_syntax_errors_name_the_line(text, match):
    if match is None:
        efuse.parse_plan(text)
        return
    with pytest.raises(UsageError, match=match):
        efuse.parse_plan(text)


def test_bad_values_in_a_plan_name_line_and_field():
    layout = efuse.layout_for("esp32s3")
    lines = efuse.parse_plan("\n\nburn-efuse SECURE_VERSION banana")
    with pytest.raises(UsageError, match="line 3: SECURE_VERSION: 'banana' is not a valid"):
        efuse.build_operations(layout, lines, Files({}))


def test_bytes_values_follow_espefuse_byte_order():
    layout = efuse.layout_for("esp32s3")
    assert efuse.parse_field_value(layout, "CUSTOM_MAC", "0x010203040506") == bytes(
        [6, 5, 4, 3, 2, 1]
    )
    assert efuse.parse_field_value(layout, "CUSTOM_MAC", "010203040506") == bytes(
        [1, 2, 3, 4, 5, 6]
    )
    assert efuse.parse_field_value(layout, "SECURE_VERSION", "0b11") == 3


def test_secure_boot_without_digest_is_refused():
    e = efuse.new("esp32s3")
    report = BurnPlan([BurnField("SECURE_BOOT_EN", 1)]).check(e)
    assert report.refused and "SB_NO_DIGEST" in codes(report, "refuse")
    with pytest.raises(efuse.PlanRefused, match="SB_NO_DIGEST"):
        BurnPlan([BurnField("SECURE_BOOT_EN", 1)]).apply(e)
    assert e == efuse.new("esp32s3")


def test_revoking_the_only_digest_under_secure_boot_is_refused():
    e = secured_s3()
    BurnPlan([BurnField("SECURE_BOOT_EN", 1)], allow=["DIGEST_UNREVOKED"]).apply(e)
    report = BurnPlan([BurnField("SECURE_BOOT_KEY_REVOKE0", 1)]).check(e)
    assert "SB_NO_DIGEST" in codes(report, "refuse")
    assert "all key digests are revoked" in report.findings[0].message


def test_flash_encryption_without_key_is_refused_and_with_key_is_fine():
    e = efuse.new("esp32p4")
    assert "FE_NO_KEY" in codes(BurnPlan([BurnField("SPI_BOOT_CRYPT_CNT", 1)]).check(e), "refuse")
    report = BurnPlan(
        [BurnKey("BLOCK_KEY0", KEY, "XTS_AES_128_KEY"), BurnField("SPI_BOOT_CRYPT_CNT", 1)]
    ).check(e)
    assert not report.refused and "FE_DEVELOPMENT" in codes(report, "warn")


def test_half_of_a_512_bit_key_is_not_a_key():
    e = efuse.new("esp32s3")
    ops = [BurnKey("BLOCK_KEY0", KEY, "XTS_AES_256_KEY_1"), BurnField("SPI_BOOT_CRYPT_CNT", 1)]
    assert "FE_NO_KEY" in codes(BurnPlan(ops).check(e), "refuse")


def test_turning_flash_encryption_off_is_refused():
    e = secured_s3()
    efuse.burn(e, {"SPI_BOOT_CRYPT_CNT": 1})
    report = BurnPlan([BurnField("SPI_BOOT_CRYPT_CNT", 3)]).check(e)
    assert "FE_TURNED_OFF" in codes(report, "refuse")


def test_download_mode_off_in_development_mode_is_refused():
    e = secured_s3()
    efuse.burn(e, {"SPI_BOOT_CRYPT_CNT": 1})
    report = BurnPlan([BurnField("DIS_DOWNLOAD_MODE", 1)]).check(e)
    assert "DL_OFF_FE_DEV" in codes(report, "refuse")
    allowed = BurnPlan([BurnField("DIS_DOWNLOAD_MODE", 1)], allow=["dl_off_fe_dev"]).check(e)
    assert not allowed.refused and any(f.allowed for f in allowed.findings)


def test_readable_hardware_key_warns_and_locking_rd_dis_then_refuses():
    e = efuse.new("esp32s3")
    plan = BurnPlan([BurnKey("BLOCK_KEY2", KEY, "HMAC_UP", read_protect=False)])
    report = plan.check(e)
    assert "KEY_READABLE" in codes(report, "warn") and not report.refused
    plan.apply(e)
    report = BurnPlan([WriteProtect("RD_DIS")]).check(e)
    assert "KEY_READABLE_FOREVER" in codes(report, "refuse")


def test_full_secure_boot_and_release_plan_passes_clean():
    e = secured_s3()
    ops = efuse.build_operations(
        e.layout,
        efuse.parse_plan(
            """
            burn-efuse SPI_BOOT_CRYPT_CNT 7 SECURE_BOOT_EN 1
            burn-efuse SECURE_BOOT_KEY_REVOKE1 1 SECURE_BOOT_KEY_REVOKE2 1
            burn-efuse ENABLE_SECURITY_DOWNLOAD 1 DIS_PAD_JTAG 1 DIS_USB_JTAG 1
            burn-efuse DIS_DOWNLOAD_MANUAL_ENCRYPT 1 DIS_DOWNLOAD_ICACHE 1
            burn-efuse DIS_DOWNLOAD_DCACHE 1
            """
        ),
        Files({}),
    )
    report = BurnPlan(ops).apply(e)
    assert report.findings == (), report.findings
    s = efuse.security_state(e)
    assert s.secure_boot_enabled and s.flash_encryption_mode == "release"
    assert s.download_mode == "secure" and s.jtag.mode == "hard-disabled"


def test_s3_usb_jtag_pair_is_refused_like_espefuse():
    e = efuse.new("esp32s3")
    report = BurnPlan([BurnField("DIS_USB_JTAG", 1), BurnField("DIS_USB_SERIAL_JTAG", 1)]).check(e)
    assert "ROM_INCOMPATIBLE" in codes(report, "refuse")


def test_an_existing_bad_state_is_a_warning_not_a_refusal():
    e = efuse.new("esp32s3")
    efuse.burn(e, {"SECURE_BOOT_EN": 1})  # the library itself is the hardware: it obeys
    report = BurnPlan([BurnField("SECURE_VERSION", 1)]).check(e)
    assert not report.refused
    assert any(f.code == "SB_NO_DIGEST" and "already" in f.message for f in report.findings)


def test_invalid_operation_is_reported_as_a_refusal():
    report = BurnPlan([BurnField("SECURE_VERSION", 1 << 17)]).check(efuse.new("esp32p4"))
    assert report.refused and report.findings[0].code == "INVALID"
    assert "does not fit in 16 bits" in report.findings[0].message


def test_changes_list_every_bit_and_hide_key_material():
    e = efuse.new("esp32s3")
    report = BurnPlan(
        [BurnKey("BLOCK_KEY0", KEY, "XTS_AES_128_KEY"), BurnField("SPI_BOOT_CRYPT_CNT", 1)]
    ).check(e)
    by = {c.field: c for c in report.changes}
    assert set(by) == {"WR_DIS", "RD_DIS", "KEY_PURPOSE_0", "SPI_BOOT_CRYPT_CNT", "BLOCK_KEY0"}
    assert by["WR_DIS"].bits == (8, 23) and "WR_DIS[23] locks BLOCK_KEY0" in by["WR_DIS"].effect
    assert by["RD_DIS"].bits == (32,)
    assert by["KEY_PURPOSE_0"].after == "0x4"
    key = by["BLOCK_KEY0"]
    assert key.secret and key.bits == () and key.before == key.after == "<hidden>"
    assert KEY.hex() not in str(report.to_dict()) and KEY[::-1].hex() not in str(report.to_dict())
    # SPI_BOOT_CRYPT_CNT 0 -> 1 can still be flipped back: not irreversible
    assert not by["SPI_BOOT_CRYPT_CNT"].irreversible and by["WR_DIS"].irreversible
    assert "switches on; 2 bits left" in by["SPI_BOOT_CRYPT_CNT"].effect


def test_digest_changes_are_shown():
    e = efuse.new("esp32p4")
    report = BurnPlan([BurnKeyDigest("BLOCK_KEY4", DIGEST, "SECURE_BOOT_DIGEST1")]).check(e)
    change = next(c for c in report.changes if c.field == "BLOCK_KEY4")
    assert not change.secret and change.after == DIGEST.hex()


def test_secure_version_must_be_a_thermometer_code():
    report = BurnPlan([BurnField("SECURE_VERSION", 0b101)]).check(efuse.new("esp32s3"))
    assert "SECURE_VERSION_CODE" in codes(report, "warn")


def test_all_zero_key_is_refused_though_espefuse_accepts_it():
    e = efuse.new("esp32s3")
    report = BurnPlan([BurnKey("BLOCK_KEY0", bytes(32), "XTS_AES_128_KEY")]).check(e)
    assert "KEY_ZERO" in codes(report, "refuse")
    efuse.burn_key(e, "BLOCK_KEY1", b"\xff" * 32, "HMAC_UP", read_protect=False)
    subset = BurnKey("BLOCK_KEY1", KEY, "HMAC_UP", read_protect=False)
    report = BurnPlan([subset]).check(e)  # the OTP rules refuse it (a different key)
    assert codes(report, "refuse") == {"INVALID"}
    assert "other than this key" in report.findings[0].message
    same = BurnKey("BLOCK_KEY1", b"\xff" * 32, "HMAC_UP", read_protect=False)
    assert not BurnPlan([same]).check(e).refused


DIGEST = bytes(range(1, 33))


def test_an_ecdsa_key_digest_on_a_chip_whose_rom_takes_only_rsa_warns():
    burn = BurnKeyDigest("BLOCK_KEY1", DIGEST, "SECURE_BOOT_DIGEST0", scheme="ecdsa256")
    report = BurnPlan([burn]).check(efuse.new("esp32s3"))
    (warning,) = [f for f in report.findings if f.code == "SB_SCHEME_UNSUPPORTED"]
    assert warning.severity == "warn" and not report.refused
    assert "ecdsa256 key digest on ESP32-S3, whose ROM verifies only rsa3072" in warning.message
    for chip, scheme in (("esp32p4", "ecdsa256"), ("esp32s3", "rsa3072"), ("esp32s3", None)):
        burn = BurnKeyDigest("BLOCK_KEY1", DIGEST, "SECURE_BOOT_DIGEST0", scheme=scheme)
        assert "SB_SCHEME_UNSUPPORTED" not in codes(BurnPlan([burn]).check(efuse.new(chip)))


def test_a_digest_burned_into_a_revoked_slot_warns():
    e = efuse.new("esp32s3")
    efuse.burn(e, {"SECURE_BOOT_KEY_REVOKE1": 1})
    burn = BurnKeyDigest("BLOCK_KEY2", DIGEST, "SECURE_BOOT_DIGEST1")
    report = BurnPlan([burn]).check(e)
    (warning,) = [f for f in report.findings if f.code == "DIGEST_REVOKED"]
    assert "SECURE_BOOT_DIGEST1, which is revoked (SECURE_BOOT_KEY_REVOKE1)" in warning.message
    assert not report.refused
    other = BurnKeyDigest("BLOCK_KEY2", DIGEST, "SECURE_BOOT_DIGEST0")
    assert "DIGEST_REVOKED" not in codes(BurnPlan([other]).check(e))


def test_a_secure_version_above_every_app_on_the_device_warns():
    e = efuse.new("esp32s3")
    burn = BurnField("SECURE_VERSION", 0b111)  # secure version 3
    report = BurnPlan([burn], app_secure_versions=[1, 2]).check(e)
    (warning,) = [f for f in report.findings if f.code == "SECURE_VERSION_ABOVE_APPS"]
    assert "eFuse secure version 3 is above every app on the device" in warning.message
    assert "highest app secure version is 2" in warning.message and not report.refused
    assert "SECURE_VERSION_ABOVE_APPS" not in codes(
        BurnPlan([burn], app_secure_versions=[3, 1]).check(e)
    )
    assert "SECURE_VERSION_ABOVE_APPS" not in codes(BurnPlan([burn]).check(e))  # apps unknown


def test_an_unknown_allow_code_is_a_usage_error_naming_the_valid_codes():
    with pytest.raises(UsageError, match=r"unknown --allow code NOPE .*SB_NO_DIGEST"):
        BurnPlan([BurnField("SECURE_BOOT_EN", 1)], allow=["NOPE"])
    assert "SB_NO_DIGEST" in efuse.plan.REFUSAL_CODES
    report = BurnPlan([BurnField("SECURE_BOOT_EN", 1)], allow=["sb_no_digest"]).check(
        efuse.new("esp32s3")
    )
    assert not report.refused
