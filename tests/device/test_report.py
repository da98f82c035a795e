"""The boot report: stage by stage, JSON-ready, and free of key material."""

from __future__ import annotations

import json

from espsec.device import Outcome, Stage
from espsec.device.flash import flash_encryption_key

from .kit import LOCKED, OTA0, app, device, signed


def test_first_boot_report_tells_what_was_read_verified_chosen_and_burned(sb_bootloader, k0):
    dev = device(LOCKED, boot=sb_bootloader, apps={OTA0: signed(app("1.0.0", 1), k0)})
    report = dev.boot()
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["outcome"] == "running"
    assert doc["app"] == {
        "partition": "ota_0",
        "offset": "0x10000",
        "version": "1.0.0",
        "project_name": "app",
        "secure_version": 1,
        "idf_ver": "v5.5",
        "ota_state": "VALID",
        "efuse_slot": 0,
    }
    first, second = doc["passes"]
    assert first["ended"] == "reset: flash encryption enabled"
    assert [s["stage"] for s in second["stages"]] == ["rom", "bootloader", "app-startup"]
    bootloader = second["stages"][1]
    assert "otadata[0] is active (seq 1, VALID) -> ota_0" in bootloader["notes"]
    assert bootloader["images"][0]["signature"]["blocks"][0]["efuse_slot"] == 0
    burned = [b["reason"] for p in doc["passes"] for s in p["stages"] for b in s["efuse_burns"]]
    assert "esp_secure_boot_v2_permanently_enable" in burned
    # 7 programs, plus the deferred WR_DIS program of two batches (ESP-IDF v6.1+)
    assert doc["efuse_writes_made"] == 9 and doc["flash_writes_made"] > 40


def test_report_never_contains_key_material(sb_bootloader, k0):
    dev = device(LOCKED, boot=sb_bootloader, apps={OTA0: signed(app("1.0.0", 1), k0)})
    report = dev.boot()
    found = flash_encryption_key(dev.efuses)
    assert found is not None
    key = found[1].material
    text = json.dumps(report.to_json()) + repr(report)
    for form in (key, key[::-1]):
        assert form.hex() not in text
        assert form.hex()[:16] not in text
    assert "<32-byte key>" in " ".join(report.burned)


def test_refused_boot_names_the_stage_and_the_reason(sb_bootloader, k0, rogue):
    dev = device(LOCKED, boot=sb_bootloader, apps={OTA0: signed(app(), rogue)})
    report = dev.boot()
    assert report.outcome is Outcome.REFUSED
    assert report.refusal.startswith("bootloader: no bootable app partition")
    assert report.stage(Stage.BOOTLOADER).error == report.refusal
