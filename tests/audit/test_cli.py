"""``espsec audit`` and ``espsec advisories``: inputs, report files, --fail-on, exit codes,
one-line errors, and a chip read over download mode (``--port``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from espsec.audit import advisories
from espsec.cli.main import main

from .conftest import DATA, sdkconfig_text
from .test_inputs import make_project

WEAK = DATA / "sdkconfig" / "weak.esp32s3"
PRODUCTION = DATA / "sdkconfig" / "production.esp32s3"


@pytest.fixture
def cli(tmp_path: Path):
    env = {"ESPSEC_DATA_DIR": str(tmp_path / "data")}

    def invoke(*args: object) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, [str(a) for a in args], env=env)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return invoke


def test_audit_prints_findings_and_passes_without_fail_on(cli):
    code, out, _ = cli("audit", WEAK)
    assert code == 0
    assert "HIGH     DL001 rom-download-mode-open" in out
    assert "evidence: CONFIG_SECURE_INSECURE_ALLOW_DL_MODE = y" in out


def test_fail_on_high_gates_ci(cli):
    code, _, err = cli("audit", "--fail-on", "high", WEAK)
    assert code == 1 and "at or above --fail-on high" in err
    code, _, _ = cli("audit", "--fail-on", "high", PRODUCTION)
    assert code == 0


def test_fail_on_judges_the_chosen_profile(cli, tmp_path):
    config = tmp_path / "sdkconfig"
    config.write_text(sdkconfig_text({"SECURE_BOOT": None}))
    assert cli("audit", "--fail-on", "high", config)[0] == 1
    assert cli("audit", "--profile", "development", "--fail-on", "high", config)[0] == 0


def test_json_report(cli):
    code, out, _ = cli("audit", "--json", WEAK)
    doc = json.loads(out)
    assert code == 0 and doc["profile"] == "production"
    assert doc["counts"]["high"] == sum(f["severity"] == "high" for f in doc["findings"])
    assert {r["id"] for r in doc["rules"]} >= {"SB001", "EF001", "ADV001", "IDF001"}


def test_report_files_by_suffix(cli, tmp_path):
    sarif, html = tmp_path / "audit.sarif", tmp_path / "audit.html"
    assert cli("audit", "-o", sarif, WEAK)[0] == 0
    assert json.loads(sarif.read_text())["version"] == "2.1.0"
    code, out, _ = cli("audit", "-o", html, "--fail-on", "critical", WEAK)
    assert code == 0 and html.read_text().startswith("<!DOCTYPE html>")
    assert "PASS at --fail-on critical" in html.read_text()
    assert f"html report -> {html}" in out


def test_report_to_stdout(cli):
    code, out, _ = cli("audit", "--format", "sarif", "-o", "-", WEAK)
    assert code == 0 and json.loads(out)["runs"][0]["results"]


def test_a_report_never_overwrites_an_input(cli, tmp_path):
    config = tmp_path / "sdkconfig"
    config.write_text(sdkconfig_text())
    before = config.read_bytes()
    code, _, err = cli("audit", "--format", "json", "-o", config, config)
    assert code == 2 and "input" in err
    assert config.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give at least one INPUT or --port"),
        (("--format", "html", str(WEAK)), "needs -o"),
        (("--fail-on", "severe", str(WEAK)), "severe"),
        (("--json", "-o", "-", str(WEAK)), "standard output"),
    ],
)
def test_usage_errors_exit_2(cli, args, message):
    code, out, err = cli("audit", *args)
    assert code == 2 and message in err + out


def test_bad_input_is_one_line_naming_file_and_line(cli, tmp_path):
    config = tmp_path / "sdkconfig"
    config.write_text('CONFIG_IDF_TARGET="esp32s3"\nCONFIG_SECURE_BOOT=maybe\n')
    code, out, err = cli("audit", config)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and str(config) in err and "line 2" in err


def test_malformed_image_is_one_line_naming_the_file(cli, tmp_path):
    image = tmp_path / "app.bin"
    image.write_bytes(b"\xe9" + bytes(range(1, 64)))  # an image's magic, then nonsense
    code, out, err = cli("audit", image)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and f"{image}: offset" in err


def test_project_folder(cli, tmp_path):
    project = make_project(tmp_path / "p", PRODUCTION.read_text(), idf="v5.4.1")
    code, out, _ = cli("audit", "--brief", project)
    assert code == 0
    assert "IDF001 idf-not-latest-bugfix" in out and "evidence" not in out


def test_port_reads_the_chip_over_download_mode(cli, tmp_path, development_device):
    from espsec.device.download.host import serve_folder

    folder = tmp_path / "dev"
    development_device.save(folder)
    with serve_folder(folder) as url:
        code, out, _ = cli("audit", "--json", "--port", url)
    doc = json.loads(out)
    assert code == 0
    assert doc["inputs"] == [f"chip on {url} (ESP32-S3, eFuses read over download mode)"]
    assert "EF004" in {f["rule"] for f in doc["findings"]}  # development-mode encryption


def test_port_of_a_chip_in_secure_download_mode_is_one_line(cli, tmp_path, release_device):
    from espsec.device.download.host import serve_folder

    folder = tmp_path / "dev"
    release_device.save(folder)
    with serve_folder(folder) as url:
        code, out, err = cli("audit", "--port", url)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "Secure Download Mode" in err


# -- advisories -------------------------------------------------------------------------


def test_advisories_list(cli):
    code, out, _ = cli("advisories", "list", "--json")
    doc = json.loads(out)
    assert code == 0 and any(a["id"] == "CVE-2024-28183" for a in doc["advisories"])
    assert {b["branch"] for b in doc["releases"]["branches"]} >= {"5.5", "6.0"}


def test_advisories_list_for_a_chip(cli):
    code, out, _ = cli("advisories", "list", "--chip", "esp32s3")
    assert code == 0 and "CVE-2026-46532" not in out and "CVE-2024-28183" in out


def test_advisories_check_a_version(cli):
    code, out, _ = cli("advisories", "check", "--chip", "esp32s3", "v5.2.6")
    assert code == 1 and "CVE-2026-25532" in out
    code, out, _ = cli("advisories", "check", "--chip", "esp32s3", "v5.5.5")
    assert code == 0 and "no advisory applies" in out


def test_advisories_check_an_image(cli, tmp_path):
    from ..device.kit import app

    image = tmp_path / "app.bin"
    image.write_bytes(app())  # built as ESP-IDF v5.5
    code, out, _ = cli("advisories", "check", "--json", image)
    found = {f["advisory"] for f in json.loads(out)["findings"] if f["advisory"]}
    assert code == 1 and "CVE-2026-45160" in found


def test_advisories_check_of_neither_version_nor_file(cli):
    code, _, err = cli("advisories", "check", "latest")
    assert code == 2 and "neither an ESP-IDF version nor an existing file" in err


def _signed(tmp_path: Path, key: Ed25519PrivateKey, serial: int) -> Path:
    data, _ = advisories.packaged()
    doc = json.loads(data)
    doc["serial"] = serial
    path = tmp_path / f"db-{serial}.json"
    path.write_bytes(json.dumps(doc).encode())
    Path(str(path) + ".sig").write_bytes(advisories.sign(path.read_bytes(), key))
    return path


def test_advisories_import_refuses_an_unpinned_signer(cli, tmp_path):
    code, _, err = cli("advisories", "import", _signed(tmp_path, Ed25519PrivateKey.generate(), 2))
    assert code == 1 and "not signed by a pinned advisory database key" in err
    assert not (tmp_path / "data" / "advisories.json").exists()


def test_advisories_import_installs_and_refuses_a_rollback(cli, tmp_path, monkeypatch):
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    monkeypatch.setattr(advisories, "PINNED_KEYS", (*advisories.PINNED_KEYS, public))
    code, out, _ = cli("advisories", "import", _signed(tmp_path, key, 5))
    assert code == 0 and "serial 5" in out
    assert "serial 5" in cli("advisories", "list")[1]
    code, _, err = cli("advisories", "import", _signed(tmp_path, key, 4))
    assert code == 1 and "rollback" in err


def test_importing_the_database_in_use_is_a_no_op(cli, tmp_path):
    data, sig = advisories.packaged()
    path = tmp_path / "advisories.json"
    path.write_bytes(data)
    Path(str(path) + ".sig").write_bytes(sig)
    code, out, _ = cli("advisories", "import", path)
    assert code == 0 and out.startswith("already in use:")
    assert not (tmp_path / "data" / "advisories.json").exists()
