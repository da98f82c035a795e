"""``espsec device provision-ota`` and ``espsec device ota DIR [--server URL]``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from espsec import ota
from espsec.cli.main import main
from espsec.device import VirtualDevice

from .kit import OTA0, ROLLBACK, app, bootloader, device
from .test_ota_e2e import HMAC_BLOCK, HMAC_KEY, Fleet, as_device, base, fleet, release

__all__ = ["base", "fleet", "release"]  # fixtures shared with test_ota_e2e


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def folder(tmp_path: Path, base: VirtualDevice, fleet: Fleet) -> Path:
    """The device saved in a folder, and the fleet's public files beside it."""
    as_device(base, "cli-1").save(tmp_path / "dev")
    (tmp_path / "ca.pem").write_bytes(fleet.ca_pem)
    (tmp_path / "manifest.pub.pem").write_bytes(fleet.manifest_pub)
    return tmp_path


def provision(
    folder: Path, fleet: Fleet, *extra: object, target: Path | None = None
) -> tuple[int, str, str]:
    return run(
        "device", "provision-ota", target or folder / "dev",
        "--server", fleet.url,
        "--ca", folder / "ca.pem",
        "--manifest-key", folder / "manifest.pub.pem",
        *extra,
    )  # fmt: skip


def test_provision_update_roll_back_and_report(
    folder: Path, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    code, out, err = provision(
        folder, fleet, "--device-id", "cli-1", "--hmac-key-block", HMAC_BLOCK,
        "--pub-key-output", folder / "dev.pub.pem", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    expected = ota.recipient_id(ota.device_public_key(HMAC_KEY))
    assert doc["recipient_id"] == expected and doc["decryption"] == "ecies-p256"
    assert doc["tls"] == "ca" and "PRIVATE" not in out
    public = ota.load_recipient_key((folder / "dev.pub.pem").read_bytes())
    assert ota.recipient_id(public) == expected

    fleet.publish(release("2.0.0", 2))
    code, out, err = run("device", "ota", folder / "dev")
    assert code == 0, err
    assert "[image-header] ok: esp_app_desc_t: app 2.0.0, secure_version 2 >= eFuse 1" in out
    assert "updated to 2.0.0: running ota_1 2.0.0 (VALID), eFuse secure version 2" in out

    fleet.publish(release("3.0.0", 3))
    code, out, _ = run("device", "ota", folder / "dev", "--self-test", "fail", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["outcome"] == "rolled_back" and report["reported"]
    assert report["running"] == {"partition": "ota_1", "version": "2.0.0", "ota_state": "VALID"}

    code, out, _ = run("device", "ota", folder / "dev", "--json")
    assert code == 0 and json.loads(out)["outcome"] == "no_update"
    code, out, _ = run("device", "boot", folder / "dev")
    assert "running ota_1 2.0.0, secure_version 2, VALID" in out


def test_device_generates_its_hmac_key_and_exports_its_public_key(
    folder: Path, fleet: Fleet
) -> None:
    code, _, err = provision(
        folder, fleet, "--device-id", "cli-2", "--hmac-key-block", "BLOCK_KEY5",
        "--generate-hmac-key",
    )  # fmt: skip
    assert code == 1 and "RD_DIS is write-protected" in err  # release mode locked it
    # a chip not yet in release mode can still burn a read-protected key
    dev = device(ROLLBACK, boot=bootloader(), apps={OTA0: app("1.0.0", 1)})
    assert dev.boot().ok
    dev.save(folder / "dev2")
    code, out, err = provision(
        folder, fleet, "--device-id", "cli-2", "--hmac-key-block", "BLOCK_KEY5",
        "--generate-hmac-key", "--pub-key-output", folder / "dev.pub.pem", target=folder / "dev2",
    )  # fmt: skip
    assert code == 0, err
    assert "burned a fresh HMAC_UP key into BLOCK_KEY5 (read-protected)" in out
    dev = VirtualDevice.open(folder / "dev2")
    assert dev.efuses.is_read_protected("BLOCK_KEY5")
    assert not any(dev.efuses.read_block("BLOCK_KEY5"))  # software reads zeros
    # provisioning again keeps the key it generated
    code, out, _ = provision(
        folder, fleet, "--device-id", "cli-2", "--hmac-key-block", "BLOCK_KEY5",
        "--generate-hmac-key", "--json", target=folder / "dev2",
    )  # fmt: skip
    assert code == 0 and not json.loads(out)["generated_hmac_key"]
    public = ota.load_recipient_key((folder / "dev.pub.pem").read_bytes())
    assert json.loads(out)["recipient_id"] == ota.recipient_id(public)


def test_usage_errors(folder: Path, fleet: Fleet) -> None:
    code, _, err = run("device", "ota", folder / "dev")
    assert code == 1 and "not provisioned for fleet OTA" in err
    code, _, err = provision(folder, fleet)  # a blank virtual chip has no MAC
    assert code == 2 and "--device-id" in err
    code, _, err = run(
        "device", "provision-ota", folder / "dev",
        "--server", fleet.url.replace("https", "http"), "--ca", folder / "ca.pem",
        "--manifest-key", folder / "manifest.pub.pem", "--device-id", "x",
    )  # fmt: skip
    assert code == 2 and "expected a URL starting https://" in err
    (folder / "app.bin").write_bytes(b"\xe9")
    code, _, err = run("device", "ota", folder / "dev", folder / "app.bin", "--server", fleet.url)
    assert code == 2 and "not both" in err
