"""Device posture: reported at check-in, bound to the client certificate, aggregated, and
weak devices flagged (on SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from espsec.cli.main import main
from espsec.fleet import posture as rules
from espsec.ota import CheckIn, ManifestTrust, new_nonce
from espsec.ota.protocol import Posture

from .conftest import Fleet

STRONG = Posture(
    secure_boot=True,
    flash_encryption="release",
    jtag="hard-disabled",
    download_mode="secure",
    secure_version=3,
    app_version="2.0.0",
    idf_version="v5.5",
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


def test_weak_devices_are_flagged_and_listed(fleet: Fleet) -> None:
    _check_in(fleet, "dev-strong", STRONG)
    _check_in(fleet, "dev-weak", WEAK)
    _check_in(fleet, "dev-silent", None)  # never reports a posture
    with fleet.admin() as admin:
        weak = {d["device_id"]: d["posture_flags"] for d in admin.devices(weak=True)}
        assert admin.devices(flag="jtag-enabled")[0]["device_id"] == "dev-weak"
    assert set(weak) == {"dev-weak", "dev-silent"}
    assert weak["dev-silent"] == ["no-posture"]
    assert set(weak["dev-weak"]) == {
        "secure-boot-off",
        "flash-encryption-development",
        "jtag-enabled",
        "download-mode-open",
        "secure-version-zero",
    }
    env = {"ESPSEC_FLEET_TOKEN": fleet.token}
    conn = ["--url", fleet.admin_url, "--ca", str(fleet.state / "tls/ca.pem")]
    result = CliRunner().invoke(main, ["fleet", "posture", *conn, "--json"], env=env)
    assert result.exit_code == 1, result.output  # weak devices: the check fails
    summary = json.loads(result.output)
    assert (summary["devices"], summary["weak_devices"]) == (3, 2)
    assert summary["by_field"]["flash_encryption"] == {"development": 1, "release": 1}
    assert summary["weak"][0]["flags"][0] in ("secure-boot-off", "no-posture")
    text = CliRunner().invoke(main, ["fleet", "posture", *conn], env=env).output
    assert "[high] secure-boot-off (1)" in text and "dev-weak" in text


def test_a_later_check_in_without_posture_keeps_the_last_one(fleet: Fleet) -> None:
    _check_in(fleet, "dev-a", WEAK)
    _check_in(fleet, "dev-a", None)
    with fleet.admin() as admin:
        assert "jtag-enabled" in admin.device("dev-a")["posture_flags"]
    _check_in(fleet, "dev-a", STRONG)  # fixed in the field: no longer weak
    with fleet.admin() as admin:
        assert admin.device("dev-a")["posture_flags"] == []


def test_posture_rules_cover_each_weakness() -> None:
    assert rules.findings(STRONG) == ()
    assert rules.findings(None) == (rules.NO_POSTURE,)
    usb = Posture(**{**STRONG.__dict__, "usb_jtag_disabled": False})
    assert rules.findings(usb) == ("usb-jtag-enabled",)
    off = Posture(**{**STRONG.__dict__, "flash_encryption": "disabled"})
    assert rules.findings(off) == ("flash-encryption-off",)


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
