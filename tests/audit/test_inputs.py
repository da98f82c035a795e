"""What the audit reads: projects, build folders, eFuse states (espefuse JSON summaries and
virtual files), images, bundles, manifests, Wi-Fi policies; and the sdkconfig corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from espsec import efuse, ota
from espsec.audit import load_inputs
from espsec.audit.inputs import load_path
from espsec.efuse.espefuse_summary import from_summary
from espsec.errors import FormatError, UsageError

from ..device.kit import OTA_TABLE, app, bootloader
from .conftest import DATA, rule_ids

CORPUS = DATA / "efuse"
STATES = ["s3-blank", "s3-development", "s3-release", "s3-readable-key", "p4-release"]


def make_project(root: Path, sdkconfig: str, *, idf: str = "v5.5.5") -> Path:
    """An ESP-IDF project as ``idf.py build`` leaves it (synthetic images)."""
    build = root / "build"
    (build / "bootloader").mkdir(parents=True)
    (build / "partition_table").mkdir()
    (build / "bootloader" / "bootloader.bin").write_bytes(bootloader())
    (build / "partition_table" / "partition-table.bin").write_bytes(OTA_TABLE.to_bytes())
    (build / "demo.bin").write_bytes(app("1.2.0", 3))
    args = {
        "flash_settings": {"flash_mode": "dio", "flash_size": "2MB", "flash_freq": "80m"},
        "flash_files": {
            "0x0": "bootloader/bootloader.bin",
            "0x8000": "partition_table/partition-table.bin",
            "0x10000": "demo.bin",
        },
        "partition-table": {"offset": "0x8000", "file": "partition_table/partition-table.bin"},
        "app": {"offset": "0x10000", "file": "demo.bin", "encrypted": "false"},
        "extra_esptool_args": {"chip": "esp32s3", "before": "default_reset", "after": "hard_reset"},
    }
    (build / "flasher_args.json").write_text(json.dumps(args))
    description = {"project_name": "demo", "git_revision": idf, "target": "esp32s3"}
    (build / "project_description.json").write_text(json.dumps(description))
    (root / "sdkconfig").write_text(sdkconfig)
    return root


@pytest.mark.parametrize("state", STATES)
def test_espefuse_summary_reads_back_the_file_espefuse_burned(state):
    chip = "esp32p4" if state.startswith("p4") else "esp32s3"
    from_file = efuse.load(CORPUS / f"{state}.bin", chip)
    from_json = from_summary(json.loads((CORPUS / f"{state}.summary.json").read_text()))
    assert from_json.chip == chip
    assert efuse.security_state(from_json) == efuse.security_state(from_file)
    for block in from_file.layout.blocks:
        assert from_json.read_block(block) == from_file.read_block(block), block.name


@pytest.mark.parametrize("state", STATES)
def test_summary_and_file_give_the_same_findings(run, state):
    chip = "esp32p4" if state.startswith("p4") else "esp32s3"
    by_file = run(load_inputs([CORPUS / f"{state}.bin"], chip=chip))
    by_summary = run(load_inputs([CORPUS / f"{state}.summary.json"]))
    assert [(f.rule, f.message) for f in by_file.findings] == [
        (f.rule, f.message) for f in by_summary.findings
    ]


def test_summary_with_a_value_wider_than_its_field_is_refused():
    doc = json.loads((CORPUS / "s3-blank.summary.json").read_text())
    doc["SPI_BOOT_CRYPT_CNT"]["raw_value"] = "0xff"
    with pytest.raises(FormatError, match="SPI_BOOT_CRYPT_CNT"):
        from_summary(doc, source="summary.json")


def test_summary_of_no_known_chip_is_refused():
    doc = json.loads((CORPUS / "s3-blank.summary.json").read_text())
    doc = {name: {**rec, "block": 9} for name, rec in doc.items()}
    with pytest.raises(FormatError, match="no eFuse table matches"):
        from_summary(doc)


def test_efuse_file_without_sidecar_needs_the_chip(tmp_path):
    path = tmp_path / "efuses.bin"
    shutil.copy(CORPUS / "s3-blank.bin", path)
    with pytest.raises(UsageError, match="--chip"):
        load_path(path)
    assert load_path(path, chip="esp32s3").devices[0].chip == "esp32s3"


def test_project_folder_gives_config_image_and_idf_version(tmp_path):
    project = make_project(tmp_path / "p", (DATA / "sdkconfig" / "production.esp32s3").read_text())
    found = load_path(project)
    (config,) = found.configs
    assert config.source.endswith("sdkconfig") and config.config.secure_boot
    (image,) = found.images
    assert (image.desc.secure_version, image.chip) == (3, "esp32s3")
    (version,) = found.versions
    assert (version.text, version.where) == ("v5.5.5", "project_description.json git_revision")
    assert version.config is config.config
    assert found.described == [f"project {project} (esp32s3, ESP-IDF v5.5.5)"]


def test_build_folder_alone_is_a_project(tmp_path):
    project = make_project(tmp_path / "p", 'CONFIG_IDF_TARGET="esp32s3"\n')
    assert load_path(project / "build").images


def test_production_project_on_the_latest_release_passes(run, tmp_path):
    text = (DATA / "sdkconfig" / "production.esp32s3").read_text()
    report = run(load_inputs([make_project(tmp_path / "p", text)]))
    assert report.findings == ()


def test_folder_of_no_known_kind(tmp_path):
    with pytest.raises(UsageError, match="not an ESP-IDF project"):
        load_path(tmp_path)


def test_unknown_json_is_refused(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(UsageError, match="JSON of no known kind"):
        load_path(path)


def test_wifi_policy_with_an_unknown_auth_mode_names_the_field(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text('{"min_auth_mode": "wpa9", "pmf_required": true}')
    with pytest.raises(FormatError, match="min_auth_mode"):
        load_path(path)


def test_manifest_lines(tmp_path):
    path = tmp_path / "manifest.jsonl"
    lines = [{"serial": f"s{i}", "public_keys": {"identity": f"k{i}"}} for i in range(3)]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    found = load_path(path)
    assert [(r.serial, r.line) for r in found.manifests] == [("s0", 1), ("s1", 2), ("s2", 3)]
    path.write_text(json.dumps(lines[0]) + '\n{"no": "serial"}\n')
    with pytest.raises(FormatError, match="line 2"):
        load_path(path)


def test_release_bundle_gives_its_version_and_statement(tmp_path, keys):
    path = tmp_path / "release.zip"
    path.write_bytes(ota.pack(app("2.0.0", 2), [keys[0]]).to_bytes())
    found = load_path(path)
    (bundle,) = found.bundles
    assert bundle.statement.secure_version == 2
    assert found.versions[0].where == "release.json idf_ver"


def test_malformed_sdkconfig_is_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "sdkconfig"
    path.write_text('CONFIG_IDF_TARGET="esp32s3"\nCONFIG_SECURE_BOOT=maybe\n')
    with pytest.raises(FormatError) as exc:
        load_path(path)
    assert "line 2" in str(exc.value) and str(path) in str(exc.value)


# -- the sdkconfig corpus ------------------------------------------------------------------


def test_idf_defaults_fail_production_on_the_missing_features(run):
    report = run(load_inputs([DATA / "sdkconfig" / "idf-defaults.esp32s3"]))
    assert rule_ids(report) == {
        "SB001",
        "FE001",
        "OTA002",
        "OTA003",
        "NVS001",
        "PROV001",
        "PROV002",
    }


def test_hardened_production_config_passes(run):
    assert run(load_inputs([DATA / "sdkconfig" / "production.esp32s3"])).findings == ()


def test_config_with_every_weakness_fails_every_kconfig_family(run):
    report = run(load_inputs([DATA / "sdkconfig" / "weak.esp32s3"]))
    families = {f.rule.rstrip("0123456789") for f in report.findings}
    assert families == {"SB", "FE", "DL", "DBG", "MP", "NVS", "TLS", "OTA", "CFG", "WIFI", "PROV"}
    assert len(rule_ids(report)) >= 25


def test_docs_list_every_rule():
    from espsec.audit import RULES

    table = (Path(__file__).parents[2] / "docs" / "audit.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    documented = {row.split("|")[1].strip() for row in rows}
    ids = {d for d in documented if d[:2].isupper() and d[-3:].isdigit()}
    assert ids == {r.id for r in RULES}
