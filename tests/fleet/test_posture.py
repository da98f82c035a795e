"""Device posture: reported at check-in, bound to the client certificate, judged by the
audit's rules (the same ids, titles and severities as ``espsec audit``), aggregated, and
weak devices flagged (on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from espsec import audit, efuse
from espsec.audit.advisories import IdfVersion
from espsec.audit.subjects import DeviceSubject, VersionSubject
from espsec.cli.main import main
from espsec.fleet.posture import NO_POSTURE, POSTURE_RULES, PostureAudit, posture_efuses
from espsec.ota import CheckIn, ManifestTrust, new_nonce
from espsec.ota.protocol import Posture

from .conftest import Fleet

NEWEST_IDF = "v" + audit.advisories.load().releases.newest().latest
"""The newest ESP-IDF release the advisory database knows: no version finding today."""
STRONG = Posture(
    secure_boot=True,
    flash_encryption="release",
    jtag="hard-disabled",
    download_mode="secure",
    secure_version=3,
    app_version="2.0.0",
    idf_version=NEWEST_IDF,
    revoked_key_slots=(1,),
    usb_jtag_disabled=True,
)
WEAK = Posture(
    secure_boot=False,
    flash_encryption="development",
    jtag="enabled",
    download_mode="normal",
    secure_version=0,
    app_version="1.0.0",
    idf_version="v5.1",
)
TODAY = dt.datetime.now(dt.UTC).date()


def _check_in(fleet: Fleet, device_id: str, posture: Posture | None) -> bytes:
    identity = fleet.identity(device_id)
    trust = ManifestTrust(device_id, fleet.manifest_key)  # type: ignore[arg-type]
    request = CheckIn(
        device_id, "esp32p4", "1.0.0", 1, "valid", trust.begin_check_in(), posture=posture
    )
    with fleet.client(identity=identity) as client:
        trust.accept(client.check_in(request), now=time.time())
    der = identity.chain[0].public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).digest()


def test_check_in_posture_is_recorded_against_the_client_certificate(fleet: Fleet) -> None:
    cert_sha = _check_in(fleet, "dev-strong", STRONG)
    with fleet.admin() as admin:
        row = admin.device("dev-strong")
    assert row["posture"] == STRONG.to_json() and row["posture_flags"] == []
    assert row["cert_sha256"] == cert_sha.hex()


def test_weak_devices_are_flagged_by_the_audit_rules_and_listed(fleet: Fleet) -> None:
    _check_in(fleet, "dev-strong", STRONG)
    _check_in(fleet, "dev-weak", WEAK)
    _check_in(fleet, "dev-silent", None)  # never reports a posture
    with fleet.admin() as admin:
        weak = {d["device_id"]: d["posture_flags"] for d in admin.devices(weak=True)}
        assert [d["device_id"] for d in admin.devices(flag="EF007")] == ["dev-weak"]
    assert set(weak) == {"dev-weak", "dev-silent"}
    assert weak["dev-silent"] == [NO_POSTURE]
    # The eFuse rules of `espsec audit`: Secure Boot off, flash encryption not in release
    # mode, JTAG enabled, download mode open; and ESP-IDF v5.1 is past its support period.
    assert {"EF001", "EF004", "EF007", "EF010", "IDF002"} <= set(weak["dev-weak"])
    assert set(weak["dev-weak"]) <= set(POSTURE_RULES)
    env = {"ESPSEC_FLEET_TOKEN": fleet.token}
    conn = ["--url", fleet.admin_url, "--ca", str(fleet.state / "tls/ca.pem")]
    result = CliRunner().invoke(main, ["fleet", "posture", *conn, "--json"], env=env)
    assert result.exit_code == 1, result.output  # weak devices: the check fails
    summary = json.loads(result.output)
    assert (summary["devices"], summary["weak_devices"]) == (3, 2)
    assert summary["by_field"]["flash_encryption"] == {"development": 1, "release": 1}
    listed = {d["device_id"]: d["flags"] for d in summary["weak"]}
    severities = {r["code"]: r["severity"] for r in summary["rules"]}
    assert severities[listed["dev-weak"][0]] == "high"  # most severe first
    rules = {r["code"]: r for r in summary["rules"]}
    assert rules["EF001"]["title"] == audit.RULES[_index("EF001")].title
    assert rules["EF001"]["severity"] == "high"
    text = CliRunner().invoke(main, ["fleet", "posture", *conn], env=env).output
    assert "[high] EF001 (1): Secure Boot is not enabled in eFuse" in text and "dev-weak" in text


def _index(rule_id: str) -> int:
    return next(i for i, r in enumerate(audit.RULES) if r.id == rule_id)


def test_a_later_check_in_without_posture_keeps_the_last_one(fleet: Fleet) -> None:
    _check_in(fleet, "dev-a", WEAK)
    _check_in(fleet, "dev-a", None)
    with fleet.admin() as admin:
        assert "EF007" in admin.device("dev-a")["posture_flags"]
    _check_in(fleet, "dev-a", STRONG)  # fixed in the field: no longer weak
    with fleet.admin() as admin:
        assert admin.device("dev-a")["posture_flags"] == []


def _posture_of(efuses: efuse.Efuses, idf_version: str | None) -> Posture:
    """The posture a device with these eFuses reports (as ``device.ota_client`` builds it)."""
    state = efuse.security_state(efuses)
    return Posture(
        secure_boot=state.secure_boot_enabled,
        flash_encryption=state.flash_encryption_mode,
        jtag=state.jtag.mode,
        download_mode=state.download_mode,
        secure_version=state.secure_version,
        app_version="1.0.0",
        idf_version=idf_version,
        usb_jtag_disabled=state.jtag.usb_jtag_disabled,
    )


_BURNS = {
    "secure boot": {"SECURE_BOOT_EN": 1},
    "flash encryption development": {"SPI_BOOT_CRYPT_CNT": 1},
    "flash encryption release": {
        "SPI_BOOT_CRYPT_CNT": 7,
        "DIS_DOWNLOAD_MANUAL_ENCRYPT": 1,
        "DIS_DOWNLOAD_ICACHE": 1,
        "DIS_DOWNLOAD_DCACHE": 1,
    },
    "jtag soft-disabled": {"SOFT_DIS_JTAG": 1},
    "jtag hard-disabled": {"DIS_PAD_JTAG": 1},
    "usb jtag disabled": {"DIS_USB_JTAG": 1},
    "secure download": {"ENABLE_SECURITY_DOWNLOAD": 1},
    "download disabled": {"DIS_DOWNLOAD_MODE": 1},
}


@pytest.mark.parametrize(
    ("burns", "idf_version"),
    [
        ((), None),
        (("secure boot", "flash encryption development", "jtag soft-disabled"), "v5.1"),
        (("flash encryption release", "jtag hard-disabled", "usb jtag disabled"), "v5.5"),
        (("secure boot", "flash encryption release", "jtag hard-disabled",
          "usb jtag disabled", "secure download"), NEWEST_IDF),
        (("secure boot", "download disabled"), "v9.9-dev"),
    ],
)  # fmt: skip
def test_posture_is_flagged_as_espsec_audit_flags_the_same_efuses(
    burns: tuple[str, ...], idf_version: str | None
) -> None:
    efuses = efuse.new("esp32s3")
    efuse.burn(efuses, {k: v for b in burns for k, v in _BURNS[b].items()})
    inputs = audit.Inputs(devices=[DeviceSubject("dev", "eFuse file", efuses)])
    if idf_version is not None:
        inputs.versions.append(
            VersionSubject("dev", idf_version, IdfVersion.parse(idf_version), "esp32s3", "idf")
        )
    report = audit.audit_inputs(inputs, as_of=TODAY)
    expected = {f.rule for f in report.findings if f.rule in POSTURE_RULES}
    judged = PostureAudit().flags("esp32s3", _posture_of(efuses, idf_version), TODAY)
    assert set(judged.split(",")) - {""} == expected


@pytest.mark.parametrize("chip", ["esp32s3", "esp32p4"])
def test_posture_efuses_decode_to_the_reported_posture(chip: str) -> None:
    for sb, fe, jtag, dl, usb in itertools.product(
        (False, True),
        ("disabled", "development", "release"),
        ("enabled", "soft-disabled", "hard-disabled"),
        ("normal", "secure", "disabled"),
        (None, False, True),
    ):
        posture = Posture(sb, fe, jtag, dl, 0, "1.0.0", usb_jtag_disabled=usb)
        efuses = posture_efuses(chip, posture)
        assert efuses is not None
        state = efuse.security_state(efuses)
        decoded = (state.secure_boot_enabled, state.flash_encryption_mode, state.jtag.mode)
        assert (*decoded, state.download_mode) == (sb, fe, jtag, dl)
        assert state.jtag.usb_jtag_disabled is bool(usb)


def test_a_posture_without_usb_jtag_is_not_judged_on_it() -> None:
    judge = PostureAudit()
    unknown = Posture(True, "release", "hard-disabled", "secure", 1, "1.0.0", NEWEST_IDF)
    assert judge.flags("esp32p4", unknown, TODAY) == ""
    open_usb = Posture(**{**unknown.__dict__, "usb_jtag_disabled": False})
    assert judge.flags("esp32p4", open_usb, TODAY) == "EF009"
    assert judge.flags("esp32p4", None, TODAY) == NO_POSTURE


def test_a_chip_without_an_efuse_model_is_judged_on_its_idf_version_only() -> None:
    judge = PostureAudit()
    weak = Posture(**{**WEAK.__dict__, "idf_version": NEWEST_IDF})
    assert posture_efuses("esp32c3", weak) is None
    assert judge.flags("esp32c3", weak, TODAY) == ""
    assert "IDF002" in judge.flags("esp32c3", WEAK, TODAY)
    summary = judge.aggregate([("dev-c3", "default", "esp32c3", json.dumps(weak.to_json()), "")])
    assert (summary["weak_devices"], summary["unchecked"]) == (0, 1)


def test_stored_flags_are_judged_again_at_start(fleet: Fleet) -> None:
    _check_in(fleet, "dev-old", WEAK)
    svc = fleet.server.service
    svc.db.set_posture_flags([("dev-old", "secure-boot-off,jtag-enabled")])  # older rules
    assert svc.refresh_posture_flags() == 1
    with fleet.admin() as admin:
        assert "EF001" in admin.device("dev-old")["posture_flags"]
    assert svc.refresh_posture_flags() == 0


def test_malformed_posture_is_a_400(fleet: Fleet, make_device: Callable[..., object]) -> None:
    body = CheckIn("dev-p", "esp32p4", "1.0.0", 1, "valid", new_nonce()).to_json()
    for posture in (
        {"secure_boot": "yes"},
        {**STRONG.to_json(), "jtag": "maybe"},
        {**STRONG.to_json(), "revoked_key_slots": [0, 0]},
        {**STRONG.to_json(), "extra": 1},
        [],
    ):
        with fleet.client(device_id="dev-p") as client:
            status, _, data = client.request(
                "POST",
                "/api/v1/device/checkin",
                body=json.dumps({**body, "posture": posture}).encode(),
            )
        assert status == 400, data


def test_judging_a_posture_loads_no_virtual_device_code() -> None:
    """The fleet never imports the device (it talks to devices over HTTPS only): the
    audit's rules and subjects it uses come without the audit's readers."""
    import subprocess
    import sys

    probe = (
        "import datetime as dt, sys\n"
        "from espsec.fleet.posture import PostureAudit\n"
        "from espsec.ota.protocol import Posture\n"
        "posture = Posture(secure_boot=False, flash_encryption='development', jtag='enabled',"
        " download_mode='normal', secure_version=0, app_version='1.0.0', idf_version='v5.1')\n"
        "flags = PostureAudit().flags('esp32s3', posture, dt.date(2026, 12, 1))\n"
        "assert flags, flags\n"
        "print(sorted(m for m in sys.modules if m.startswith('espsec.device')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
