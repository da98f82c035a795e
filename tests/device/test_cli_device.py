"""``espsec device``: create, flash, boot, ota, revoke-key, status, jtag; exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from espsec import efuse
from espsec.cli.main import main

from .kit import OTA_TABLE, app, signed


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture()
def files(tmp_path: Path, sb_bootloader: bytes, k0) -> Path:
    (tmp_path / "bootloader.bin").write_bytes(sb_bootloader)
    (tmp_path / "app.bin").write_bytes(signed(app("1.0.0", 1), k0))
    (tmp_path / "app2.bin").write_bytes(signed(app("2.0.0", 2), k0))
    (tmp_path / "old.bin").write_bytes(signed(app("0.9.0", 0), k0))
    (tmp_path / "partitions.csv").write_text(OTA_TABLE.to_csv())
    (tmp_path / "sdkconfig").write_text(
        "CONFIG_SECURE_BOOT=y\nCONFIG_SECURE_FLASH_ENC_ENABLED=y\n"
        "CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y\n"
        "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y\nCONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y\n"
    )
    return tmp_path


def flashed(files: Path) -> Path:
    dev = files / "dev"
    assert run("device", "create", "--chip", "esp32s3", "--flash-size", "1MB", dev)[0] == 0
    code, out, err = run(
        "device", "flash", dev, "--sdkconfig", files / "sdkconfig",
        "--write", "0x0", files / "bootloader.bin",
        "--partition-table", files / "partitions.csv",
        "--write", "0x10000", files / "app.bin",
    )  # fmt: skip
    assert code == 0, err
    assert "bootloader options recorded" in out
    return dev


def test_first_boot_then_second_boot_and_status(files):
    dev = flashed(files)
    code, out, _ = run("device", "boot", dev)
    assert code == 0
    assert "[secure-boot-enable] ok" in out and "[flash-encryption-enable] ok" in out
    assert "running ota_0 1.0.0, secure_version 1, VALID, verified with SECURE_BOOT_DIGEST0" in out
    code, out, _ = run("device", "boot", dev, "--json")
    report = json.loads(out)
    assert code == 0 and report["outcome"] == "running" and report["app"]["efuse_slot"] == 0
    assert report["passes"][0]["stages"][0]["images"][0]["decrypted"] is True
    code, out, _ = run("device", "status", dev)
    assert code == 0 and "production (locked)" in out
    # every download interface by name, as the eFuses leave it (UART in secure mode here)
    assert "  uart: secure" in out and "usb-serial-jtag:" in out
    assert json.loads(run("device", "status", dev, "--json")[1])["posture"] == "production (locked)"


def test_boot_exits_1_with_the_refusal(files):
    dev = files / "dev"
    run("device", "create", "--chip", "esp32s3", "--flash-size", "1MB", dev)
    code, out, _ = run("device", "boot", dev)
    assert code == 1 and "refused: ROM: bootloader at 0x0 refused: magic" in out


def test_boot_with_a_power_cut_reports_it(files):
    dev = flashed(files)
    code, out, _ = run("device", "boot", dev, "--cut-after", "20", "--json")
    report = json.loads(out)
    assert code == 1 and report["outcome"] == "power-lost"
    assert report["power_cut"]["after_writes"] == 20
    assert report["power_cut"]["next_boot"].startswith("refused: ROM")


def test_ota_updates_confirms_and_refuses_downgrades(files):
    dev = flashed(files)
    run("device", "boot", dev)
    code, out, _ = run("device", "ota", dev, files / "app2.bin", "--confirm")
    assert code == 0, out
    assert "running ota_1 2.0.0, secure_version 2, PENDING_VERIFY" in out
    assert "esp_ota_mark_app_valid_cancel_rollback: ok" in out
    code, out, _ = run("device", "ota", dev, files / "old.bin", "--json")
    assert code == 1
    assert json.loads(out)["update"]["error"] == "ESP_ERR_OTA_SMALL_SEC_VER"


def test_revoke_key_then_ota_signed_by_it_is_refused(files, k1):
    dev = flashed(files)
    run("device", "boot", dev)
    code, out, _ = run("device", "revoke-key", dev, "1")
    assert code == 0 and "SECURE_BOOT_KEY_REVOKE1 burned" in out
    (files / "k1.bin").write_bytes(signed(app("3.0.0", 3), k1))
    code, out, _ = run("device", "ota", dev, files / "k1.bin")
    assert code == 1 and "ESP_ERR_OTA_VALIDATE_FAILED (signature: block 0: key revoked)" in out


def test_jtag_token_reenables_soft_disabled_jtag(files):
    dev = files / "dev"
    run("device", "create", "--chip", "esp32s3", "--flash-size", "1MB", dev)
    chip = efuse.load(dev / "efuse.bin")
    key = bytes(range(32))
    efuse.burn_key(chip, "BLOCK_KEY5", key, "HMAC_DOWN_JTAG")
    efuse.burn(chip, {"SOFT_DIS_JTAG": 1})
    efuse.save(chip, dev / "efuse.bin")
    assert "disabled (HMAC token under BLOCK_KEY5)" in run("device", "jtag", dev)[1]
    token = files / "jtag.token"
    token.write_text(efuse.jtag_token(key).hex() + "\n")
    code, out, _ = run("device", "jtag", dev, "--token-file", token)
    assert code == 0 and "re-enabled until reset" in out
    wrong = files / "wrong.token"
    wrong.write_bytes(b"\0" * 32)  # raw bytes work too
    code, _, err = run("device", "jtag", dev, "--token-file", wrong)
    assert code == 1 and "does not match" in err


def test_jtag_token_comes_from_a_file_never_from_argv(files):
    dev = files / "dev"
    run("device", "create", "--chip", "esp32s3", "--flash-size", "1MB", dev)
    code, _, err = run("device", "jtag", dev, "--token", "00" * 32)
    assert code == 2 and "No such option '--token'" in err
    short = files / "short.token"
    short.write_text("abcd")
    code, _, err = run("device", "jtag", dev, "--token-file", short)
    assert code == 1 and f"{short}: not a JTAG token" in err
    assert "expected 32 bytes or 64 hex digits" in err


def test_usage_errors_exit_2(files):
    dev = files / "dev"
    run("device", "create", "--chip", "esp32s3", dev)
    code, _, err = run("device", "create", "--chip", "esp32s3", dev)
    assert code == 2 and "refusing to overwrite" in err
    code, _, err = run("device", "flash", dev)
    assert code == 2 and "nothing to flash" in err
    code, _, err = run(
        "device", "flash", dev, "--config", "SECURE_BOOT", "--write", "0", files / "app.bin"
    )
    assert code == 2 and "NAME=VALUE" in err


def test_bad_device_folders_and_offsets_end_in_one_line(files):
    dev = files / "dev"
    code, _, err = run("device", "status", files)
    assert code == 1 and err.strip().endswith("virtual device description not found")
    run("device", "create", "--chip", "esp32s3", "--flash-size", "1MB", dev)
    code, _, err = run("device", "flash", dev, "--write", "-1", files / "app.bin")
    assert code == 2 and "app.bin: negative flash offset -1" in err
    meta = json.loads((dev / "device.json").read_text())
    (dev / "device.json").write_text(json.dumps({**meta, "flash_size": "1MB"}))
    code, _, err = run("device", "status", dev)
    assert code == 1 and "flash_size: not a flash size in bytes" in err
    (dev / "device.json").write_text("{not json")
    code, _, err = run("device", "boot", dev)
    assert code == 1 and "bad JSON" in err and len(err.strip().splitlines()) == 1


def test_app_commands_without_a_running_app_exit_1_with_the_boot_report(files):
    dev = files / "dev"
    run("device", "create", "--chip", "esp32s3", "--flash-size", "1MB", dev)
    code, out, err = run("device", "revoke-key", dev, "0")
    assert code == 1 and "refused: ROM: bootloader at 0x0 refused" in out and not err
    code, out, _ = run("device", "ota", dev, files / "app2.bin", "--json")
    assert code == 1 and json.loads(out)["outcome"] == "refused"


def test_provision_ota_checks_inputs_before_power_on(files):
    dev = flashed(files)
    run("device", "boot", dev)
    before = {p.name: p.read_bytes() for p in dev.iterdir()}
    (files / "ca.pem").write_text("not a certificate")
    (files / "manifest.pem").write_bytes((files / "app.bin").read_bytes())
    common = ["--server", "https://fleet.example", "--ca", files / "ca.pem"]
    code, _, err = run(
        "device", "provision-ota", dev, *common, "--manifest-key", files / "manifest.pem",
        "--pub-key-output", files / "out.pem",
    )  # fmt: skip
    assert code == 2 and "--pub-key-output: the device decrypts nothing" in err
    code, _, err = run(
        "device", "provision-ota", dev, *common, "--manifest-key", files / "manifest.pem",
        "--device-id", "d1",
    )  # fmt: skip
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"{files / 'ca.pem'}: not a usable certificate file" in err
    code, _, err = run(
        "device", "provision-ota", dev, "--server", "https://fleet.example",
        "--pin", files / "app.bin", "--manifest-key", files / "manifest.pem",
    )  # fmt: skip
    assert code == 1 and f"{files / 'app.bin'}: not a usable certificate file" in err
    assert {p.name: p.read_bytes() for p in dev.iterdir()} == before


def test_create_refuses_a_flash_size_the_chip_cannot_have_before_any_work(files):
    dev = files / "dev"
    code, _, err = run("device", "create", "--chip", "esp32s3", "--flash-size", "0x100000000", dev)
    assert code == 2 and "flash size 0x100000000 is larger than the chip's largest flash" in err
    assert len(err.strip().splitlines()) == 1 and not dev.exists()


def test_boot_mark_invalid_that_is_refused_exits_1(files):
    dev = flashed(files)
    run("device", "boot", dev)  # first boot: the app is VALID, nothing to roll back to
    code, out, _ = run("device", "boot", dev, "--mark-invalid")
    assert code == 1 and "refused: ESP_ERR_OTA_ROLLBACK_FAILED" in out


def test_contradictory_flags_are_usage_errors(files):
    dev = flashed(files)
    code, _, err = run(
        "device", "flash", dev, "--encrypt", "--pre-encrypted", "--write", "0x10000",
        files / "app.bin",
    )  # fmt: skip
    assert code == 2 and "--encrypt and --pre-encrypted exclude each other" in err
    code, _, err = run("device", "boot", dev, "--mark-valid", "--mark-invalid")
    assert code == 2 and "--mark-valid and --mark-invalid exclude each other" in err
    code, _, err = run("device", "flash", "--write", "0x10000", files / "app.bin")
    assert code == 2 and "give a device folder DIR or --port PORT" in err


def test_ota_with_an_unsigned_image_says_image_is_not_signed(files):
    dev = flashed(files)
    run("device", "boot", dev)
    (files / "plain.bin").write_bytes(app("2.0.0", 2))
    code, out, _ = run("device", "ota", dev, files / "plain.bin")
    assert code == 1 and "plain.bin: image is not signed" in out
    assert "digest mismatch" not in out


def test_ota_over_a_slot_holding_an_old_signature_still_says_not_signed(files, k0):
    dev = flashed(files)
    run("device", "boot", dev)
    assert run("device", "ota", dev, files / "app2.bin", "--confirm")[0] == 0
    assert run("device", "ota", dev, files / "app2.bin", "--confirm")[0] == 0  # ota_0 again
    (files / "plain.bin").write_bytes(app("3.0.0", 3))  # over ota_1: 2.0.0's sector stays
    code, out, _ = run("device", "ota", dev, files / "plain.bin", "--json")
    assert code == 1 and json.loads(out)["update"]["reasons"] == ["plain.bin: image is not signed"]


@pytest.mark.parametrize("url", ["https://[::1", "https://fleet.example:99999", "ftp://x"])
def test_provision_ota_refuses_a_malformed_server_url_in_one_line(files, url):
    dev = files / "dev"
    (files / "ca.pem").write_text("x")
    code, _, err = run(
        "device", "provision-ota", dev, "--server", url, "--ca", files / "ca.pem",
        "--manifest-key", files / "ca.pem",
    )  # fmt: skip
    assert code == 2 and "Invalid value for '--server'" in err and url in err
    assert "Traceback" not in err


def test_provision_ota_writes_no_public_key_over_an_input(files):
    dev = flashed(files)
    run("device", "boot", dev)
    before = {p.name: p.read_bytes() for p in dev.iterdir()}
    (files / "manifest.pem").write_text("m")
    (files / "ca.pem").write_text("c")
    code, _, err = run(
        "device", "provision-ota", dev, "--server", "https://fleet.example", "--ca",
        files / "ca.pem", "--manifest-key", files / "manifest.pem", "--device-id", "d",
        "--hmac-key-block", "BLOCK_KEY5", "--pub-key-output", files / "manifest.pem",
    )  # fmt: skip
    assert code == 2 and "refusing to write over an input" in err
    assert (files / "manifest.pem").read_text() == "m"
    assert {p.name: p.read_bytes() for p in dev.iterdir()} == before
